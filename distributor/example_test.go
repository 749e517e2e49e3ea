package distributor_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor"
	"github.com/ferrybus/ferry/queue"
	"github.com/ferrybus/ferry/worker"
)

// Resize is a job of the example cluster.
type Resize struct {
	Image int `json:"image"`
}

// An in-process cluster on one SQLite file: a distributor hands the jobs
// sent to its inbox to two workers, one batch per idle thread. Which worker
// takes how many varies from run to run; every job is handled.
func Example_cluster() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ferry-cluster-example-")
	if err != nil {
		log.Fatalf("temp dir: %v", err)
	}
	defer os.RemoveAll(dir)
	conns := queue.NewConnections(map[string]string{"default": "sqlite://" + filepath.Join(dir, "ferry.db")},
		queue.Options{AutoMigrate: true})
	defer conns.Close()
	quiet := slog.New(slog.DiscardHandler) // the example prints its own story

	const (
		jobs    = "sql://default/jobs"
		control = "sql://default/jobs-control"
		errorQ  = "sql://default/error"
		n       = 20
	)
	d, err := distributor.New(ctx, conns, distributor.Config{
		Name:         "jobs",
		Distribute:   true, // only distribute; the workers handle
		Inbox:        bus.InboxConfig{WorkQueue: jobs, ErrorQueue: errorQ},
		ControlInbox: bus.InboxConfig{WorkQueue: control, ErrorQueue: errorQ},
		Logger:       quiet,
	}, nil)
	if err != nil {
		log.Fatalf("distributor: %v", err)
	}
	if err := d.Start(ctx); err != nil {
		log.Fatalf("start distributor: %v", err)
	}

	// Both workers note each image they resized; done closes at the last.
	var (
		mu      sync.Mutex
		handled = map[int]bool{}
		done    = make(chan struct{})
	)
	var workers []*worker.Worker
	for _, id := range []string{"w1", "w2"} {
		mux := bus.NewMux()
		bus.Handle(mux, "resize", func(ctx context.Context, m *bus.Message, r Resize) error {
			mu.Lock()
			defer mu.Unlock()
			handled[r.Image] = true
			if len(handled) == n {
				close(done)
			}
			return nil
		})
		w, err := worker.New(ctx, conns, bus.Config{
			Name:   id,
			Logger: quiet,
			Inbox:  &bus.InboxConfig{WorkQueue: "sql://default/worker-" + id, ErrorQueue: errorQ, Threads: 2},
		}, mux, worker.Config{ID: id, DistributorControlQueue: control})
		if err != nil {
			log.Fatalf("worker %s: %v", id, err)
		}
		if err := w.Start(ctx); err != nil {
			log.Fatalf("start worker %s: %v", id, err)
		}
		workers = append(workers, w)
	}

	// A client sends the jobs to the distributor's inbox.
	cmux := bus.NewMux()
	bus.RegisterType[Resize](cmux, "resize")
	client, err := bus.New(ctx, conns, bus.Config{
		Name:   "client",
		Logger: quiet,
		Routes: []bus.Route{{Types: []string{"resize"}, Queue: jobs}},
	}, cmux)
	if err != nil {
		log.Fatalf("client: %v", err)
	}
	for i := range n {
		if err := client.Send(ctx, Resize{Image: i}); err != nil {
			log.Fatalf("send: %v", err)
		}
	}

	select {
	case <-done:
	case <-time.After(30 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		log.Fatalf("timed out: %d of %d jobs handled", len(handled), n)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, w := range workers {
		if err := w.Stop(stopCtx); err != nil {
			log.Fatalf("stop worker: %v", err)
		}
	}
	if err := d.Stop(stopCtx); err != nil {
		log.Fatalf("stop distributor: %v", err)
	}
	left, err := d.Inbox().Count(ctx)
	if err != nil {
		log.Fatalf("count: %v", err)
	}
	fmt.Printf("handled %d jobs; %d left in the inbox\n", len(handled), left.Total())
	// Output: handled 20 jobs; 0 left in the inbox
}
