package worker_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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

// The queues of the example's distributor, on connection "default".
const (
	invoices = "sql://default/invoices"         // its inbox: senders address it
	control  = "sql://default/invoices-control" // where its workers announce themselves
	errorQ   = "sql://default/error"
)

// A worker is an endpoint whose inbox is its own work queue: it announces
// itself and each idle thread to the distributor's control inbox, and the
// distributor moves work from its inbox into that queue. Stop lets
// in-flight handlers finish and tells the distributor the worker left.
// (The distributor package's Example_cluster shows a whole cluster.)
func ExampleNew() {
	ctx := context.Background()
	conns, stopDistributor := runDistributor(ctx)
	defer stopDistributor()

	handled := make(chan string, 3)
	mux := bus.NewMux()
	bus.Handle(mux, "invoice", func(ctx context.Context, m *bus.Message, inv Invoice) error {
		handled <- inv.Number
		return nil
	})
	w, err := worker.New(ctx, conns, bus.Config{
		Name:   "billing-1",
		Logger: slog.New(slog.DiscardHandler),
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
	var seen []string
	for len(seen) < 3 {
		select {
		case n := <-handled:
			seen = append(seen, n)
		case <-time.After(30 * time.Second):
			log.Fatalf("timed out: %d of 3 invoices handled", len(seen))
		}
	}

	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := w.Stop(stopCtx); err != nil {
		log.Fatalf("stop worker: %v", err)
	}
	slices.Sort(seen) // two threads: the order of handling varies
	fmt.Println("handled:", seen)
	// Output:
	// worker started with a session: true
	// handled: [2026-001 2026-002 2026-003]
}

// runDistributor starts the distributor the example's worker serves, on a
// SQLite file in a temporary folder. The function it returns stops the
// distributor and removes the folder.
func runDistributor(ctx context.Context) (*queue.Connections, func()) {
	dir, err := os.MkdirTemp("", "ferry-worker-example-")
	if err != nil {
		log.Fatalf("temp dir: %v", err)
	}
	conns := queue.NewConnections(map[string]string{"default": "sqlite://" + filepath.Join(dir, "ferry.db")},
		queue.Options{AutoMigrate: true})
	d, err := distributor.New(ctx, conns, distributor.Config{
		Name:         "invoices",
		Distribute:   true, // only distribute: the workers handle
		Inbox:        bus.InboxConfig{WorkQueue: invoices, ErrorQueue: errorQ},
		ControlInbox: bus.InboxConfig{WorkQueue: control, ErrorQueue: errorQ},
		Logger:       slog.New(slog.DiscardHandler),
	}, nil)
	if err != nil {
		log.Fatalf("distributor: %v", err)
	}
	if err := d.Start(ctx); err != nil {
		log.Fatalf("start distributor: %v", err)
	}
	return conns, func() {
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := d.Stop(stopCtx); err != nil {
			log.Printf("stop distributor: %v", err)
		}
		if err := conns.Close(); err != nil {
			log.Printf("close: %v", err)
		}
		os.RemoveAll(dir)
	}
}
