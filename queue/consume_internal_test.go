package queue

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ferrybus/ferry/internal/testdb"
)

// The consume pool commits asynchronously on PostgreSQL, unless SyncConsume;
// the main pool, which enqueues, always waits for the flush.
func TestConsumePoolCommitMode(t *testing.T) {
	dsn := testdb.Postgres(t)
	ctx := context.Background()
	for _, tc := range []struct {
		sync        bool
		main, fresh string
	}{{false, "on", "off"}, {true, "on", "on"}} {
		st, err := Open(ctx, dsn, Options{SyncConsume: tc.sync})
		s, _ := st.(*sqlStore)
		if err != nil {
			t.Fatal(err)
		}
		var main, consume string
		if err := s.db.GetContext(ctx, &main, "SHOW synchronous_commit"); err != nil {
			t.Fatal(err)
		}
		if err := s.consume.GetContext(ctx, &consume, "SHOW synchronous_commit"); err != nil {
			t.Fatal(err)
		}
		if main != tc.main || consume != tc.fresh {
			t.Errorf("SyncConsume=%v: main pool %s, consume pool %s; want %s and %s", tc.sync, main, consume, tc.main, tc.fresh)
		}
		s.Close()
	}
}

// Hot statements are prepared on PostgreSQL unless NoPrepare, and both ways work.
func TestPreparedStatements(t *testing.T) {
	ctx := context.Background()
	for _, noPrepare := range []bool{false, true} {
		st, err := Open(ctx, testdb.Postgres(t), Options{NoPrepare: noPrepare, AutoMigrate: true})
		s, _ := st.(*sqlStore)
		if err != nil {
			t.Fatal(err)
		}
		q, _ := s.Queue("p")
		if err := q.Enqueue(ctx, Message{MessageID: "m"}); err != nil {
			t.Fatal(err)
		}
		ds, err := q.Receive(ctx, 1, time.Minute)
		if err != nil || len(ds) != 1 {
			t.Fatalf("NoPrepare=%v: receive %v %v", noPrepare, ds, err)
		}
		if acked, err := q.AckMany(ctx, ds); err != nil || !acked[ds[0].ID] {
			t.Fatalf("NoPrepare=%v: ack %v %v", noPrepare, acked, err)
		}
		if got := s.prepared(s.q.receive) != nil; got == noPrepare {
			t.Errorf("NoPrepare=%v: receive prepared = %v", noPrepare, got)
		}
		s.Close()
	}
}

// A schema name too long for a NOTIFY channel still gets wake-ups working.
func TestLongSchemaNotifyChannel(t *testing.T) {
	// The channel's name itself: TestNotifyChannel in queue/postgres.
	ctx := context.Background()
	base := testdb.Postgres(t) // for its server; make a long schema beside it
	u, _ := url.Parse(base)
	admin, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	// Long, and unique: test runs may share the server.
	schema := "ferry_test_" + strings.Repeat("l", 34) + fmt.Sprintf("_%016x", rand.Uint64())
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatal(err)
	}
	defer admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	st, err := Open(ctx, u.String(), Options{AutoMigrate: true})
	s, _ := st.(*sqlStore)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	qu, _ := s.Queue("q")
	if err := qu.Enqueue(ctx, Message{MessageID: "m"}); err != nil {
		t.Fatalf("enqueue with a %d-character schema: %v", len(schema), err)
	}
}
