package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/queue"
)

// TestAckerClosesOnlyWhenAllAnswered: acks handed over without waiting are
// all carried out and answered by close, in batches, with lost leases
// reported one by one; an ack after close is done directly.
func TestAckerClosesOnlyWhenAllAnswered(t *testing.T) {
	for _, dialect := range testdb.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			conns := queue.NewConnections(map[string]string{"default": testdb.DSN(t, dialect)}, queue.Options{AutoMigrate: true})
			t.Cleanup(func() { conns.Close() })
			q, err := conns.Queue(ctx, "sql://default/acks")
			if err != nil {
				t.Fatal(err)
			}
			const n = 300
			msgs := make([]queue.Message, n)
			for i := range msgs {
				msgs[i] = queue.Message{MessageID: fmt.Sprint("m", i), Type: "t", Body: []byte("{}")}
			}
			if err := q.Enqueue(ctx, msgs...); err != nil {
				t.Fatal(err)
			}
			ds, err := q.Receive(ctx, n+1, time.Minute)
			if err != nil || len(ds) != n {
				t.Fatalf("received %d, %v; want %d", len(ds), err, n)
			}
			stale := ds[0]
			stale.LeaseToken++ // a lease this acker does not hold

			a := newAcker(q, 0, slog.New(slog.DiscardHandler))
			var mu sync.Mutex
			outcomes := map[string]error{}
			record := func(id string) func(error) {
				return func(err error) {
					mu.Lock()
					outcomes[id] = err
					mu.Unlock()
				}
			}
			a.ackAsync(stale, record("stale"))
			var wg sync.WaitGroup
			for _, d := range ds[1:] {
				wg.Add(1)
				go func() { defer wg.Done(); a.ackAsync(d, record(d.MessageID)) }()
			}
			wg.Wait()
			a.close(context.Background())

			mu.Lock()
			defer mu.Unlock()
			if len(outcomes) != n {
				t.Fatalf("%d outcomes after close, want %d", len(outcomes), n)
			}
			if !errors.Is(outcomes["stale"], queue.ErrLeaseLost) {
				t.Errorf("ack with a wrong token: %v, want ErrLeaseLost", outcomes["stale"])
			}
			for id, err := range outcomes {
				if id != "stale" && err != nil {
					t.Errorf("%s: %v", id, err)
				}
			}
			if c, err := q.Count(ctx); err != nil || c.Total() != 1 {
				t.Errorf("after close the queue holds %+v (%v); want only the one whose ack lost its lease", c, err)
			}
			// Closed: the ack is done directly, and still answered.
			if err := a.ack(ctx, ds[0]); err != nil {
				t.Errorf("ack after close: %v", err)
			}
			var direct error = errors.New("not called")
			a.ackAsync(ds[0], func(err error) { direct = err })
			if !errors.Is(direct, queue.ErrLeaseLost) {
				t.Errorf("second ack after close: %v, want ErrLeaseLost", direct)
			}
		})
	}
}
