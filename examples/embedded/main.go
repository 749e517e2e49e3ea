// Command embedded shows ferry embedded in a Go program on SQLite, with no
// setup: it sends orders to an orders endpoint, whose handler publishes an
// OrderAccepted event that two subscribers (billing and shipping) receive.
//
//	go run ./examples/embedded
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/queue"
)

// OrderPlaced is a command: place this order.
type OrderPlaced struct {
	ID    string  `json:"id"`
	Total float64 `json:"total"`
}

// OrderAccepted is an event: the order was accepted.
type OrderAccepted struct {
	ID    string  `json:"id"`
	Total float64 `json:"total"`
}

const orders = 5

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "embedded:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ferry-embedded-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dsn := "sqlite://" + filepath.Join(dir, "ferry.db")
	// Only warnings and errors from the bus itself; the program prints the story.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	conns := queue.NewConnections(map[string]string{"default": dsn}, queue.Options{AutoMigrate: true, Logger: log})
	defer conns.Close()

	var (
		mu   sync.Mutex
		done = map[string]int{}
		wg   sync.WaitGroup
	)
	wg.Add(orders * 2) // each order reaches billing and shipping
	note := func(who, line string) {
		mu.Lock()
		defer mu.Unlock()
		done[who]++
		fmt.Println(line)
	}

	// The orders endpoint handles OrderPlaced and publishes OrderAccepted.
	ordersMux := bus.NewMux()
	bus.RegisterType[OrderAccepted](ordersMux, "orders.accepted")
	bus.Handle(ordersMux, "orders.placed", func(ctx context.Context, m *bus.Message, o OrderPlaced) error {
		note("orders", fmt.Sprintf("orders:   placed %s (%.2f)", o.ID, o.Total))
		return m.Publish(ctx, OrderAccepted(o))
	})

	// Two subscribers of OrderAccepted.
	subscriber := func(name string) *bus.Mux {
		mux := bus.NewMux()
		bus.Handle(mux, "orders.accepted", func(ctx context.Context, m *bus.Message, o OrderAccepted) error {
			defer wg.Done()
			note(name, fmt.Sprintf("%-9s accepted %s (correlation %s)", name+":", o.ID, m.CorrelationID[len(m.CorrelationID)-8:]))
			return nil
		})
		return mux
	}

	endpoints := []*bus.Endpoint{}
	for _, ep := range []struct {
		name string
		mux  *bus.Mux
		subs []string
	}{
		{"orders", ordersMux, nil},
		{"billing", subscriber("billing"), []string{"orders.accepted"}},
		{"shipping", subscriber("shipping"), []string{"orders.accepted"}},
	} {
		e, err := bus.New(ctx, conns, bus.Config{
			Name:      ep.name,
			Logger:    log,
			Subscribe: ep.subs,
			Inbox: &bus.InboxConfig{
				WorkQueue:  "sql://default/" + ep.name,
				ErrorQueue: "sql://default/error",
				Threads:    2,
			},
		}, ep.mux)
		if err != nil {
			return err
		}
		if err := e.Start(ctx); err != nil {
			return err
		}
		endpoints = append(endpoints, e)
	}

	// A send-only client routes OrderPlaced to the orders endpoint.
	clientMux := bus.NewMux()
	bus.RegisterType[OrderPlaced](clientMux, "orders.placed")
	client, err := bus.New(ctx, conns, bus.Config{
		Name:   "client",
		Logger: log,
		Routes: []bus.Route{{Types: []string{"orders.*"}, Queue: "sql://default/orders"}},
	}, clientMux)
	if err != nil {
		return err
	}
	for i := 1; i <= orders; i++ {
		o := OrderPlaced{ID: fmt.Sprintf("order-%d", i), Total: float64(i) * 10.5}
		if err := client.Send(ctx, o); err != nil {
			return err
		}
		fmt.Printf("client:   sent %s\n", o.ID)
	}

	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("timed out: handled %v", done)
	}

	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, e := range endpoints {
		if err := e.Stop(stopCtx); err != nil {
			return err
		}
	}
	store, err := conns.Store(ctx, "default")
	if err != nil {
		return err
	}
	left, err := store.Queues(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("\nhandled: orders %d, billing %d, shipping %d; messages left in queues: %d\n",
		done["orders"], done["billing"], done["shipping"], len(left))
	return nil
}
