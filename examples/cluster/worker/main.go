// Command worker is a worker of the cluster example: it handles the jobs the
// distributor moves into its own work queue, and announces each idle thread.
//
//	go run ./examples/cluster/worker -db sqlite://./cluster.db -id w1
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/examples/cluster/jobs"
	"github.com/ferrybus/ferry/worker"
)

func main() {
	dsn := flag.String("db", "sqlite://./cluster.db", "database: sqlite://PATH or postgres://…")
	id := flag.String("id", "", "worker id (required, unique per worker)")
	threads := flag.Int("threads", 4, "handler threads")
	work := flag.Duration("work", 20*time.Millisecond, "simulated time per job")
	flag.Parse()
	if *id == "" {
		fmt.Fprintln(os.Stderr, "worker: -id is required")
		os.Exit(2)
	}
	if err := run(*dsn, *id, *threads, *work); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(dsn, id string, threads int, work time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := jobs.Logger().With("worker", id)
	conns := jobs.Connections(dsn, log)
	defer conns.Close()

	mux := bus.NewMux()
	bus.Handle(mux, "images.resize", func(ctx context.Context, m *bus.Message, r jobs.Resize) error {
		select {
		case <-time.After(work): // the "resize"
		case <-ctx.Done():
			return ctx.Err()
		}
		log.Info("resized", "image", r.Image, "width", r.Width, "attempt", m.Attempt)
		return nil
	})
	w, err := worker.New(ctx, conns, bus.Config{
		Name:   id,
		Logger: log,
		Inbox:  &bus.InboxConfig{WorkQueue: jobs.WorkerQueue(id), ErrorQueue: jobs.Errors, Threads: threads},
	}, mux, worker.Config{ID: id, DistributorControlQueue: jobs.Control, AvailabilityInterval: 2 * time.Second})
	if err != nil {
		return err
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = w.Stop(stopCtx)
	log.Info("stopped", "stats", w.Endpoint().Stats())
	return err
}
