package queue_test

// Tests of the bulk methods (MoveRows, DeleteRows, FindMessages, LastRowID)
// on both dialects, within one database and across two.

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/queue"
)

// bulkStore opens a migrated store on a fresh database of the dialect.
func bulkStore(t *testing.T, dialect, name string) queue.Store {
	t.Helper()
	s, err := queue.Open(context.Background(), testdb.DSN(t, dialect), queue.Options{Name: name, AutoMigrate: true})
	if err != nil {
		t.Fatalf("open %s store: %v", dialect, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func bulkQueue(t *testing.T, s queue.Store, name string) queue.Queue {
	t.Helper()
	q, err := s.Queue(name)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// bulkFill enqueues n messages m-0…m-(n-1) with two headers and returns
// their row ids in order.
func bulkFill(t *testing.T, q queue.Queue, n int) []int64 {
	t.Helper()
	ctx := context.Background()
	msgs := make([]queue.Message, n)
	for i := range msgs {
		msgs[i] = queue.Message{
			MessageID: fmt.Sprintf("m-%d", i),
			Type:      "t",
			Headers:   map[string]string{"keep": fmt.Sprint(i), "x.drop": "gone", "x.also": "gone"},
			Body:      []byte(fmt.Sprintf(`{"n":%d}`, i)),
		}
	}
	if err := q.Enqueue(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for after := int64(0); ; {
		ds, err := q.Peek(ctx, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			break
		}
		for _, d := range ds {
			ids = append(ids, d.ID)
		}
		after = ds[len(ds)-1].ID
	}
	if len(ids) != n {
		t.Fatalf("filled %d messages, peeked %d", n, len(ids))
	}
	return ids
}

func bulkPeekAll(t *testing.T, q queue.Queue) []queue.Delivery {
	t.Helper()
	ds, err := q.Peek(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func bulkForEach(t *testing.T, fn func(t *testing.T, dialect string)) {
	for _, d := range testdb.Dialects() {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

func TestMoveRowsSameDatabase(t *testing.T) {
	bulkForEach(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		s := bulkStore(t, dialect, "default")
		src, dst, other := bulkQueue(t, s, "src"), bulkQueue(t, s, "dst"), bulkQueue(t, s, "other")
		ids := bulkFill(t, src, 10)
		otherIDs := bulkFill(t, other, 1)
		// A leased message belongs to its receiver: it is skipped.
		leased, err := src.Receive(ctx, 1, time.Minute)
		if err != nil || len(leased) != 1 {
			t.Fatalf("receive: %v %v", leased, err)
		}
		wake := dst.Wake()
		var batches []int
		n, err := src.MoveRows(ctx, append(slices.Clone(ids), otherIDs[0], 999999), dst, queue.BulkOptions{
			BatchSize:   4,
			DropHeaders: []string{"x.drop", "x.also"},
			OnBatch:     func(n int) { batches = append(batches, n) },
		})
		if err != nil {
			t.Fatal(err)
		}
		if n != 9 {
			t.Errorf("moved %d, want 9 (10 less the leased one)", n)
		}
		if !slices.Equal(batches, []int{3, 4, 2}) {
			t.Errorf("batches %v, want [3 4 2] (4 ids per statement, the leased first one skipped)", batches)
		}
		select {
		case <-wake:
		default:
			t.Error("receivers of dst were not woken")
		}
		moved := bulkPeekAll(t, dst)
		if len(moved) != 9 {
			t.Fatalf("dst holds %d", len(moved))
		}
		now := time.Now()
		for i, d := range moved {
			if d.MessageID != fmt.Sprintf("m-%d", i+1) || d.Attempts != 0 || d.LeaseToken != 0 || d.VisibleAt.After(now) {
				t.Errorf("moved message %+v", d)
			}
			if len(d.Headers) != 1 || d.Headers["keep"] != fmt.Sprint(i+1) {
				t.Errorf("moved message %s headers %v, want only keep=%d", d.MessageID, d.Headers, i+1)
			}
			if string(d.Body) != fmt.Sprintf(`{"n":%d}`, i+1) {
				t.Errorf("body %q", d.Body)
			}
		}
		if left := bulkPeekAll(t, src); len(left) != 1 || left[0].ID != leased[0].ID {
			t.Errorf("src holds %v, want the leased message only", left)
		}
		if c := bulkPeekAll(t, other); len(c) != 1 {
			t.Errorf("a row of another queue was moved: other holds %d", len(c))
		}
		if _, err := src.MoveRows(ctx, ids, src, queue.BulkOptions{}); err == nil {
			t.Error("move to the same queue: no error")
		}
		// No headers to drop keeps them all.
		if n, err := dst.MoveRows(ctx, []int64{moved[0].ID}, src, queue.BulkOptions{}); err != nil || n != 1 {
			t.Fatalf("move back: %d %v", n, err)
		}
		back, err := src.FindMessages(ctx, []string{"m-1"})
		if err != nil || len(back) != 1 || len(back[0].Headers) != 1 {
			t.Errorf("moved back: %+v %v", back, err)
		}
	})
}

func TestMoveRowsAcrossDatabases(t *testing.T) {
	bulkForEach(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		other := "postgres"
		if dialect == "postgres" {
			other = "sqlite"
		}
		srcStore, dstStore := bulkStore(t, dialect, "a"), bulkStore(t, other, "b")
		src, dst := bulkQueue(t, srcStore, "src"), bulkQueue(t, dstStore, "dst")
		ids := bulkFill(t, src, 25)
		leased, err := src.Receive(ctx, 1, time.Minute)
		if err != nil || len(leased) != 1 {
			t.Fatalf("receive: %v %v", leased, err)
		}
		var batches []int
		n, err := src.MoveRows(ctx, ids, dst, queue.BulkOptions{
			BatchSize: 10, DropHeaders: []string{"x.drop"},
			OnBatch: func(n int) { batches = append(batches, n) },
		})
		if err != nil {
			t.Fatal(err)
		}
		if n != 24 || !slices.Equal(batches, []int{9, 10, 5}) {
			t.Errorf("moved %d in batches %v, want 24 in [9 10 5]", n, batches)
		}
		moved := bulkPeekAll(t, dst)
		if len(moved) != 24 {
			t.Fatalf("dst holds %d", len(moved))
		}
		for i, d := range moved {
			if d.MessageID != fmt.Sprintf("m-%d", i+1) {
				t.Errorf("position %d: %s, want arrival order kept", i, d.MessageID)
			}
			if _, ok := d.Headers["x.drop"]; ok || d.Headers["x.also"] != "gone" || d.Headers["keep"] != fmt.Sprint(i+1) {
				t.Errorf("headers %v", d.Headers)
			}
		}
		if left := bulkPeekAll(t, src); len(left) != 1 || left[0].ID != leased[0].ID {
			t.Errorf("src holds %d, want the leased message only", len(left))
		}
	})
}

func TestDeleteRowsAndFind(t *testing.T) {
	bulkForEach(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		s := bulkStore(t, dialect, "default")
		q, other := bulkQueue(t, s, "q"), bulkQueue(t, s, "other")
		if last, err := q.LastRowID(ctx); err != nil || last != 0 {
			t.Errorf("last row id of an empty queue: %d %v", last, err)
		}
		ids := bulkFill(t, q, 7)
		otherIDs := bulkFill(t, other, 2)
		if last, err := q.LastRowID(ctx); err != nil || last != ids[6] {
			t.Errorf("last row id %d %v, want %d", last, err, ids[6])
		}
		found, err := q.FindMessages(ctx, []string{"m-5", "m-1", "nope"})
		if err != nil {
			t.Fatal(err)
		}
		if len(found) != 2 || found[0].MessageID != "m-1" || found[1].MessageID != "m-5" || found[0].Headers["keep"] != "1" {
			t.Errorf("found %+v, want m-1 then m-5", found)
		}
		if _, err := q.Receive(ctx, 1, time.Minute); err != nil { // leases m-0
			t.Fatal(err)
		}
		calls := 0
		n, err := q.DeleteRows(ctx, append(slices.Clone(ids), otherIDs...), queue.BulkOptions{BatchSize: 3, OnBatch: func(int) { calls++ }})
		if err != nil {
			t.Fatal(err)
		}
		if n != 6 || calls != 3 {
			t.Errorf("deleted %d in %d statements, want 6 in 3", n, calls)
		}
		if left := bulkPeekAll(t, q); len(left) != 1 || left[0].MessageID != "m-0" {
			t.Errorf("left %v, want the leased m-0", left)
		}
		if left := bulkPeekAll(t, other); len(left) != 2 {
			t.Errorf("rows of another queue deleted: %d left", len(left))
		}
	})
}

// TestMoveRowsBatched moves 20,000 messages with 1,000 per statement: 20
// statements, not 20,000 round trips.
func TestMoveRowsBatched(t *testing.T) {
	bulkForEach(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		const total = 20000
		s := bulkStore(t, dialect, "default")
		src, dst := bulkQueue(t, s, "src"), bulkQueue(t, s, "dst")
		ids := bulkFill(t, src, total)
		statements := 0
		started := time.Now()
		n, err := src.MoveRows(ctx, ids, dst, queue.BulkOptions{
			BatchSize: 1000, DropHeaders: []string{"x.drop"},
			OnBatch: func(int) { statements++ },
		})
		took := time.Since(started)
		if err != nil {
			t.Fatal(err)
		}
		if n != total || statements != total/1000 {
			t.Errorf("moved %d with %d statements, want %d with %d", n, statements, total, total/1000)
		}
		if c, _ := dst.Count(ctx); c.Ready != total {
			t.Errorf("dst counts %+v", c)
		}
		t.Logf("%s: moved %d messages in %s", dialect, total, took)
		statements = 0
		n, err = dst.DeleteRows(ctx, ids, queue.BulkOptions{OnBatch: func(int) { statements++ }})
		if err != nil || n != total || statements != total/queue.DefaultBatchSize {
			t.Errorf("deleted %d with %d statements (%v)", n, statements, err)
		}
	})
}
