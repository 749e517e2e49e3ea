// Command distributor is the distributor of the cluster example: it owns
// the inbox and the control inbox, and hands jobs to the workers that
// announce idle threads. With -send N it first queues N jobs.
//
//	go run ./examples/cluster/distributor -db sqlite://./cluster.db -send 1000
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
	"github.com/ferrybus/ferry/distributor"
	"github.com/ferrybus/ferry/examples/cluster/jobs"
)

func main() {
	dsn := flag.String("db", "sqlite://./cluster.db", "database: sqlite://PATH or postgres://…")
	send := flag.Int("send", 0, "queue this many jobs before distributing")
	count := flag.Int("count", 5, "distributeSendCount: jobs moved per worker availability")
	flag.Parse()
	if err := run(*dsn, *send, *count); err != nil {
		fmt.Fprintln(os.Stderr, "distributor:", err)
		os.Exit(1)
	}
}

func run(dsn string, send, count int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := jobs.Logger()
	conns := jobs.Connections(dsn, log)
	defer conns.Close()

	d, err := distributor.New(ctx, conns, distributor.Config{
		Name:                "images",
		Inbox:               bus.InboxConfig{WorkQueue: jobs.Inbox, ErrorQueue: jobs.Errors},
		Distribute:          true,
		DistributeSendCount: count,
		ControlInbox:        bus.InboxConfig{WorkQueue: jobs.Control, ErrorQueue: jobs.Errors},
		ReclaimAfter:        10 * time.Second,
		Logger:              log,
	}, nil)
	if err != nil {
		return err
	}
	if send > 0 {
		client, err := bus.New(ctx, conns, bus.Config{Name: "producer", Logger: log,
			Routes: []bus.Route{{Types: []string{"images.*"}, Queue: jobs.Inbox}}}, nil)
		if err != nil {
			return err
		}
		for i := range send {
			if err := client.Send(ctx, jobs.Resize{Image: fmt.Sprintf("img-%05d.png", i), Width: 640}); err != nil {
				return err
			}
		}
		log.Info("queued jobs", "count", send)
	}
	if err := d.Start(ctx); err != nil {
		return err
	}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			log.Info("stopping", "stats", d.Stats())
			return d.Stop(stopCtx)
		case <-tick.C:
			c, err := d.Inbox().Count(ctx)
			if err != nil {
				log.Warn("count failed", "err", err)
				continue
			}
			r := d.Registry()
			log.Info("status", "active", d.Active(), "inbox", c.Ready, "distributed", d.Stats().Distributed,
				"reclaimed", d.Stats().Reclaimed, "workers", len(r.Workers), "idleThreads", r.Available)
		}
	}
}
