package distributor_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// A worker restarted with the same id takes back at once what its dead
// predecessor held leased in its queue, rather than waiting for the
// leases to end; each comes back as a redelivery.
func TestRestartedWorkerTakesBackItsLeases(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		const id = "w1"
		wq := "sql://default/worker-" + id + "-work"
		mux := bus.NewMux()
		bus.RegisterType[Job](mux, "job")
		client, err := bus.New(ctx, conns, bus.Config{Name: "client", Logger: quiet,
			Routes: []bus.Route{{Types: []string{"job"}, Queue: wq}}}, mux)
		if err != nil {
			t.Fatal(err)
		}
		for n := range 3 {
			if err := client.Send(ctx, Job{N: n}); err != nil {
				t.Fatal(err)
			}
		}
		q, err := conns.Queue(ctx, wq)
		if err != nil {
			t.Fatal(err)
		}
		// The predecessor took them under long leases, then died.
		if ds, err := q.Receive(ctx, 10, time.Hour); err != nil || len(ds) != 3 {
			t.Fatalf("receive: %d, %v", len(ds), err)
		}

		var mu sync.Mutex
		attempts := map[int]int{}
		startWorker(t, conns, id, workerOpts{threads: 2, work: func(ctx context.Context, _ string, j Job) error {
			return nil
		}, attempt: func(n, attempt int) {
			mu.Lock()
			defer mu.Unlock()
			attempts[n] = attempt
		}})
		testkit.Eventually(t, 20*time.Second, "the predecessor's messages handled", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(attempts) == 3
		})
		mu.Lock()
		defer mu.Unlock()
		for n, a := range attempts {
			if a != 2 {
				t.Errorf("job %d: attempt %d, want 2 (a redelivery)", n, a)
			}
		}
	})
}
