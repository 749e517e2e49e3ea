package queue_test

import (
	"sync"
	"testing"
	"time"

	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
	"github.com/ferrybus/ferry/queue/queuetest"
)

// TestConformance runs the store contract on every dialect: each subtest
// gets fresh SQLite files or fresh PostgreSQL schemas from testdb. The
// dialects run in parallel; within one, the subtests run one by one.
func TestConformance(t *testing.T) {
	for _, dialect := range testdb.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			queuetest.Run(t, sqlDriver(dialect))
		})
	}
}

// sqlDriver is the contract's driver for queue.Open's stores of a dialect.
func sqlDriver(dialect string) queuetest.Driver {
	// Reopen needs the DSN a store was opened on.
	var dsns sync.Map // queue.Store -> string
	features := queuetest.Features{queuetest.TxEnqueue, queuetest.SessionLocks}
	if dialect == "postgres" {
		// LISTEN/NOTIFY reaches every connection and is sent at commit; a
		// SQLite store wakes only its own process's receivers, and at once.
		features = append(features, queuetest.CrossProcessWake, queuetest.WakeAtCommit)
	}
	return queuetest.Driver{
		Open: func(t testing.TB) queue.Store {
			dsn := testdb.DSN(t, dialect)
			s := queuetest.OpenStore(t, dsn)
			dsns.Store(s, dsn)
			return s
		},
		Reopen: func(t testing.TB, s queue.Store) queue.Store {
			dsn, ok := dsns.Load(s)
			if !ok {
				t.Fatal("Reopen of a store the driver did not open")
			}
			return queuetest.OpenStore(t, dsn.(string))
		},
		OpenUnmigrated: func(t testing.TB) queue.Store {
			opts := queuetest.Options()
			opts.AutoMigrate = false
			return queuetest.OpenStoreWith(t, testdb.DSN(t, dialect), opts)
		},
		// Moves between the two databases ferry speaks.
		OpenOther: func(t testing.TB) queue.Store {
			return queuetest.OpenStore(t, testdb.DSN(t, otherDialect(dialect)))
		},
		InsertRawRow: insertRawRow,
		Features:     features,
	}
}

// otherDialect is the dialect that is not d.
func otherDialect(d string) string {
	if d == "postgres" {
		return "sqlite"
	}
	return "postgres"
}

// insertRawRow writes a ready row with headers text that ferry's encoder
// would never write, as another producer could.
func insertRawRow(t testing.TB, s queue.Store, queueName, messageID, headers string) {
	t.Helper()
	db := testkit.SQLX(s)
	now := time.Now().UnixMicro()
	if _, err := db.ExecContext(t.Context(), db.Rebind(`INSERT INTO ferry_messages
 (queue, message_id, type, priority, visible_at, enqueued_at, headers, body) VALUES (?, ?, ?, 0, ?, ?, ?, ?)`),
		queueName, messageID, "t", now, now, headers, []byte("{}")); err != nil {
		t.Fatalf("insert raw row %s into %s: %v", messageID, queueName, err)
	}
}
