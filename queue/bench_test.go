package queue_test

// Throughput benchmarks of the SQL store, on SQLite and PostgreSQL, each
// beside a raw-SQL baseline measured in the same run on the same table (the
// store's own, created by its migrations) with no ferry code in the path:
//
//	BenchmarkEnqueue      ↔ BenchmarkRawInsert           (multi-row INSERT)
//	BenchmarkReceiveAck   ↔ BenchmarkRawDeleteReturning  (DELETE … RETURNING loop)
//
// The …Prepared variants of the baselines run the same SQL as prepared
// statements, to show what statement caching would be worth.
//
// b.N is the number of messages; every benchmark reports msgs/s. Run with a
// fixed count so that each run moves the same number of messages, e.g.
//
//	go test -run '^$' -bench . -benchtime=5000x -count=3 ./queue/
//
// The baselines use the store's own pool (Store.DB), so they get the same
// driver settings as ferry (binary_parameters on PostgreSQL, the statement
// cache on SQLite). Messages carry a 128-byte body and no headers. SQLite files live in the
// test's temporary folder (WAL, synchronous=NORMAL, as ferry opens them).
//
// PostgreSQL comes from internal/testdb (a fresh schema per benchmark run);
// the postgres sub-benchmarks are skipped when it is unreachable, unless
// FERRY_REQUIRE_POSTGRES=1.

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/queue"
)

const (
	benchQueue = "bench.work"
	benchType  = "bench.message"
	benchBody  = 128 // bytes of payload per message
	benchLease = time.Minute
)

var benchBatches = []int{1, 100}

// benchStore opens a migrated store on a fresh database of the dialect.
func benchStore(b *testing.B, dialect string) queue.Store {
	b.Helper()
	ctx := context.Background()
	s, err := queue.Open(ctx, testdb.DSN(b, dialect), queue.Options{Name: "bench", AutoMigrate: true})
	if err != nil {
		b.Fatalf("open %s store: %v", dialect, err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// benchMessages builds n messages with distinct ids, outside the timer.
func benchMessages(n int) []queue.Message {
	body := []byte(strings.Repeat("x", benchBody))
	msgs := make([]queue.Message, n)
	for i := range msgs {
		msgs[i] = queue.Message{MessageID: "m-" + strconv.Itoa(i), Type: benchType, Body: body}
	}
	return msgs
}

// benchForEachCase runs fn as sub-benchmarks DIALECT/batch=N.
func benchForEachCase(b *testing.B, fn func(b *testing.B, dialect string, batch int)) {
	for _, dialect := range testdb.Dialects() {
		b.Run(dialect, func(b *testing.B) {
			for _, batch := range benchBatches {
				b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) { fn(b, dialect, batch) })
			}
		})
	}
}

func benchReportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkEnqueue stores b.N messages with SQLQueue.Enqueue, batch at a time.
func BenchmarkEnqueue(b *testing.B) {
	benchForEachCase(b, func(b *testing.B, dialect string, batch int) {
		ctx := context.Background()
		q, err := benchStore(b, dialect).Queue(benchQueue)
		if err != nil {
			b.Fatal(err)
		}
		msgs := benchMessages(b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for start := 0; start < len(msgs); start += batch {
			if err := q.Enqueue(ctx, msgs[start:min(start+batch, len(msgs))]...); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		benchReportRate(b)
	})
}

// BenchmarkRawInsert is the baseline of BenchmarkEnqueue: the same multi-row
// INSERT into the same table through database/sql, without ferry.
func BenchmarkRawInsert(b *testing.B) { benchRawInsert(b, false) }

// BenchmarkRawInsertPrepared is BenchmarkRawInsert with prepared statements:
// what statement caching would give (one round trip less per INSERT with
// lib/pq, no SQL compilation per call on SQLite).
func BenchmarkRawInsertPrepared(b *testing.B) { benchRawInsert(b, true) }

func benchRawInsert(b *testing.B, prepared bool) {
	benchForEachCase(b, func(b *testing.B, dialect string, batch int) {
		ctx := context.Background()
		s := benchStore(b, dialect)
		ins := newBenchRawInserter(s, prepared)
		defer ins.close()
		msgs := benchMessages(b.N)
		b.ReportAllocs()
		b.ResetTimer()
		if err := ins.insert(ctx, msgs, batch); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		benchReportRate(b)
	})
}

// BenchmarkReceiveAck drains b.N preloaded messages: Receive a batch, Ack it.
func BenchmarkReceiveAck(b *testing.B) {
	benchForEachCase(b, func(b *testing.B, dialect string, batch int) {
		ctx := context.Background()
		s := benchStore(b, dialect)
		q, err := s.Queue(benchQueue)
		if err != nil {
			b.Fatal(err)
		}
		benchPreload(b, s, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		got, calls := 0, 0
		var inReceive, inAck time.Duration
		for {
			t0 := time.Now()
			ds, err := q.Receive(ctx, batch, benchLease)
			t1 := time.Now()
			inReceive += t1.Sub(t0)
			if err != nil {
				b.Fatal(err)
			}
			if len(ds) == 0 {
				break
			}
			if err := q.Ack(ctx, ds...); err != nil {
				b.Fatal(err)
			}
			inAck += time.Since(t1)
			got += len(ds)
			calls++
		}
		b.StopTimer()
		if got != b.N {
			b.Fatalf("received %d messages, want %d", got, b.N)
		}
		benchReportRate(b)
		// Where the time goes: mean wall time of one Receive and one Ack call
		// (the final, empty Receive included).
		b.ReportMetric(float64(inReceive.Microseconds())/float64(calls+1), "recv-us/call")
		b.ReportMetric(float64(inAck.Microseconds())/float64(max(calls, 1)), "ack-us/call")
	})
}

// BenchmarkRawDeleteReturning is the baseline of BenchmarkReceiveAck: take
// and remove a batch in one DELETE … RETURNING until the queue is empty
// (at-most-once: no lease, no second statement). On PostgreSQL it runs on one
// session with synchronous_commit=off, as ferry's leases and acks do by
// default (Options.SyncConsume false), so that the ratio compares code and
// round trips, not durability settings.
func BenchmarkRawDeleteReturning(b *testing.B) { benchRawDeleteReturning(b, false) }

// BenchmarkRawDeleteReturningPrepared is BenchmarkRawDeleteReturning with a
// prepared statement.
func BenchmarkRawDeleteReturningPrepared(b *testing.B) { benchRawDeleteReturning(b, true) }

func benchRawDeleteReturning(b *testing.B, prepared bool) {
	benchForEachCase(b, func(b *testing.B, dialect string, batch int) {
		ctx := context.Background()
		s := benchStore(b, dialect)
		db := s.DB()
		query := `DELETE FROM ferry_messages WHERE id IN (SELECT id FROM ferry_messages WHERE queue = ?
ORDER BY priority DESC, id LIMIT ?) RETURNING id, message_id, type, priority, attempts, enqueued_at, visible_at, lease_token, headers, body`
		if s.Dialect() == queue.Postgres {
			query = `DELETE FROM ferry_messages WHERE id IN (SELECT id FROM ferry_messages WHERE queue = $1
ORDER BY priority DESC, id LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id, message_id, type, priority, attempts, enqueued_at, visible_at, lease_token, headers, body`
		}
		conn, err := db.Conn(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		if s.Dialect() == queue.Postgres {
			if _, err := conn.ExecContext(ctx, "SET synchronous_commit = off"); err != nil {
				b.Fatal(err)
			}
		}
		run := func(ctx context.Context, args ...any) (*sql.Rows, error) {
			return conn.QueryContext(ctx, query, args...)
		}
		if prepared {
			st, err := conn.PrepareContext(ctx, query)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			run = st.QueryContext
		}
		benchPreload(b, s, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		got := 0
		for {
			n, err := benchRawTake(ctx, run, batch)
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				break
			}
			got += n
		}
		b.StopTimer()
		if got != b.N {
			b.Fatalf("took %d messages, want %d", got, b.N)
		}
		benchReportRate(b)
	})
}

// benchPreload fills the bench queue with n visible messages (raw inserts of 500
// rows, so ferry and raw benchmarks start from the same table), then
// refreshes the planner statistics (autovacuum may be off).
func benchPreload(b *testing.B, s queue.Store, n int) {
	b.Helper()
	ctx := context.Background()
	ins := newBenchRawInserter(s, false)
	if err := ins.insert(ctx, benchMessages(n), 500); err != nil {
		b.Fatalf("preload: %v", err)
	}
	if _, err := s.DB().ExecContext(ctx, "ANALYZE ferry_messages"); err != nil {
		b.Fatalf("preload: analyze: %v", err)
	}
}

// benchRawInserter runs multi-row INSERTs of the values ferry would store
// (visible now, no headers), with one statement text per row count.
type benchRawInserter struct {
	db       *sql.DB
	pg       bool
	prepared bool
	stmts    map[int]*sql.Stmt
	texts    map[int]string
}

func newBenchRawInserter(s queue.Store, prepared bool) *benchRawInserter {
	return &benchRawInserter{db: s.DB(), pg: s.Dialect() == queue.Postgres, prepared: prepared,
		stmts: map[int]*sql.Stmt{}, texts: map[int]string{}}
}

func (r *benchRawInserter) close() {
	for _, st := range r.stmts {
		st.Close()
	}
}

func (r *benchRawInserter) insert(ctx context.Context, msgs []queue.Message, batch int) error {
	args := make([]any, 0, 8*batch)
	for start := 0; start < len(msgs); start += batch {
		chunk := msgs[start:min(start+batch, len(msgs))]
		text, ok := r.texts[len(chunk)]
		if !ok {
			text = benchInsertSQL(len(chunk), r.pg)
			r.texts[len(chunk)] = text
		}
		now := time.Now().UnixMicro()
		args = args[:0]
		for _, m := range chunk {
			args = append(args, benchQueue, m.MessageID, m.Type, m.Priority, now, now, "{}", m.Body)
		}
		var err error
		if r.prepared {
			st, ok := r.stmts[len(chunk)]
			if !ok {
				if st, err = r.db.PrepareContext(ctx, text); err != nil {
					return fmt.Errorf("prepare insert: %w", err)
				}
				r.stmts[len(chunk)] = st
			}
			_, err = st.ExecContext(ctx, args...)
		} else {
			_, err = r.db.ExecContext(ctx, text, args...)
		}
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
	}
	return nil
}

func benchInsertSQL(rows int, pg bool) string {
	var sb strings.Builder
	sb.WriteString("INSERT INTO ferry_messages (queue, message_id, type, priority, visible_at, enqueued_at, headers, body) VALUES ")
	p := 0
	for i := range rows {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('(')
		for j := range 8 {
			if j > 0 {
				sb.WriteByte(',')
			}
			if pg {
				p++
				sb.WriteString("$" + strconv.Itoa(p))
			} else {
				sb.WriteByte('?')
			}
		}
		sb.WriteByte(')')
	}
	return sb.String()
}

// benchRawTake runs one DELETE … RETURNING and scans its rows; it returns how
// many it took.
func benchRawTake(ctx context.Context, run func(context.Context, ...any) (*sql.Rows, error), batch int) (int, error) {
	rows, err := run(ctx, benchQueue, batch)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var (
			id, enq, vis, tok   int64
			prio, attempts      int
			msgID, typ, headers string
			body                []byte
		)
		if err := rows.Scan(&id, &msgID, &typ, &prio, &attempts, &enq, &vis, &tok, &headers, &body); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}
