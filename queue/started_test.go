package queue_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/queue"
)

// TestMarkStarted: the count of handler starts without an outcome grows
// with each mark, survives a release that records nothing, starts again at a
// release that records headers (a failure) and at a move, and refuses a
// lost lease.
func TestMarkStarted(t *testing.T) {
	for _, dialect := range testdb.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, err := queue.Open(ctx, testdb.DSN(t, dialect), queue.Options{AutoMigrate: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			q, _ := s.Queue("started")
			other, _ := s.Queue("started-other")
			if err := q.Enqueue(ctx, queue.Message{MessageID: "m"}); err != nil {
				t.Fatal(err)
			}
			receive := func(from queue.Queue) queue.Delivery {
				t.Helper()
				ds, err := from.Receive(ctx, 1, time.Minute)
				if err != nil || len(ds) != 1 {
					t.Fatalf("receive: %d messages, %v", len(ds), err)
				}
				return ds[0]
			}
			mark := func(d queue.Delivery, want int) {
				t.Helper()
				if n, err := q.MarkStarted(ctx, d); err != nil || n != want {
					t.Fatalf("MarkStarted = %d, %v; want %d", n, err, want)
				}
			}
			d := receive(q)
			mark(d, 0)
			if err := q.Release(ctx, d, queue.ReleaseOptions{}); err != nil {
				t.Fatal(err)
			}
			d = receive(q)
			mark(d, 1)
			if err := q.Release(ctx, d, queue.ReleaseOptions{Uncount: true}); err != nil {
				t.Fatal(err)
			}
			d = receive(q)
			mark(d, 2)
			if err := q.Release(ctx, d, queue.ReleaseOptions{Headers: map[string]string{"failed": "once"}}); err != nil {
				t.Fatal(err)
			}
			d = receive(q)
			mark(d, 0)
			if err := q.Release(ctx, d, queue.ReleaseOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := q.MarkStarted(ctx, d); !errors.Is(err, queue.ErrLeaseLost) {
				t.Errorf("MarkStarted of a released delivery: %v, want ErrLeaseLost", err)
			}
			d = receive(q)
			mark(d, 1)
			if err := q.Move(ctx, d, other, nil); err != nil {
				t.Fatal(err)
			}
			d = receive(other)
			if n, err := other.MarkStarted(ctx, d); err != nil || n != 0 {
				t.Errorf("MarkStarted after a move = %d, %v; want 0", n, err)
			}
		})
	}
}
