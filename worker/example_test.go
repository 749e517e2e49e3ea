package worker_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor"
	"github.com/ferrybus/ferry/queue"
	"github.com/ferrybus/ferry/worker"
)

// Invoice is the work of the example.
type Invoice struct {
	Number string `json:"number"`
}

// A worker is an endpoint whose inbox is its own work queue: it announces
// itself to the distributor's control inbox, which moves work into that
// queue while the worker has idle threads. Stop lets in-flight handlers
// finish and tells the distributor the worker left.
func ExampleNew() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ferry-worker-example-")
	if err != nil {
		log.Fatalf("temp dir: %v", err)
	}
	defer os.RemoveAll(dir)
	conns := queue.NewConnections(map[string]string{"default": "sqlite://" + filepath.Join(dir, "ferry.db")},
		queue.Options{AutoMigrate: true})
	defer conns.Close()
	quiet := slog.New(slog.DiscardHandler)

	const (
		invoices = "sql://default/invoices"
		control  = "sql://default/invoices-control"
		errorQ   = "sql://default/error"
	)
	d, err := distributor.New(ctx, conns, distributor.Config{
		Name:         "invoices",
		Distribute:   true,
		Inbox:        bus.InboxConfig{WorkQueue: invoices, ErrorQueue: errorQ},
		ControlInbox: bus.InboxConfig{WorkQueue: control, ErrorQueue: errorQ},
		Logger:       quiet,
	}, nil)
	if err != nil {
		log.Fatalf("distributor: %v", err)
	}
	if err := d.Start(ctx); err != nil {
		log.Fatalf("start distributor: %v", err)
	}

	var (
		mu   sync.Mutex
		seen []string
		done = make(chan struct{})
	)
	mux := bus.NewMux()
	bus.Handle(mux, "invoice", func(ctx context.Context, m *bus.Message, inv Invoice) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, inv.Number)
		if len(seen) == 3 {
			close(done)
		}
		return nil
	})
	w, err := worker.New(ctx, conns, bus.Config{
		Name:   "billing-1",
		Logger: quiet,
		// The worker's own work queue: only the distributor puts messages here.
		Inbox: &bus.InboxConfig{WorkQueue: "sql://default/billing-1", ErrorQueue: errorQ, Threads: 2},
	}, mux, worker.Config{
		ID:                      "billing-1",
		DistributorControlQueue: control,
		AvailabilityInterval:    5 * time.Second, // how often an idle thread says so again
	})
	if err != nil {
		log.Fatalf("worker: %v", err)
	}
	if err := w.Start(ctx); err != nil {
		log.Fatalf("start worker: %v", err)
	}
	fmt.Println("worker started with a session:", w.Session() != "")

	// Senders address the distributor's inbox, never the worker.
	for _, number := range []string{"2026-001", "2026-002", "2026-003"} {
		if err := w.Endpoint().Send(ctx, Invoice{Number: number}, bus.To(invoices)); err != nil {
			log.Fatalf("send: %v", err)
		}
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		log.Fatal("timed out waiting for the invoices")
	}

	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := w.Stop(stopCtx); err != nil {
		log.Fatalf("stop worker: %v", err)
	}
	if err := d.Stop(stopCtx); err != nil {
		log.Fatalf("stop distributor: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(seen) // two threads: the order of handling varies
	fmt.Println("handled:", seen)
	// Output:
	// worker started with a session: true
	// handled: [2026-001 2026-002 2026-003]
}
