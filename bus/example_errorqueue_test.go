package bus_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/queue"
)

// An endpoint parks orders while the payment service is down; an operator
// lists the error queue, looks at one message's history, then returns them
// all to the queue they failed in once the service is back.
func ExampleErrorQueue() {
	ctx := context.Background()
	dir := must(os.MkdirTemp("", "ferry-example"))
	defer os.RemoveAll(dir)
	conns := queue.NewConnections(map[string]string{"default": "sqlite://" + filepath.Join(dir, "ferry.db")},
		queue.Options{AutoMigrate: true})
	defer conns.Close()

	var paymentsDown atomic.Bool
	paymentsDown.Store(true)
	mux := bus.NewMux()
	bus.Handle(mux, "orders.placed", func(ctx context.Context, m *bus.Message, o OrderPlaced) error {
		if paymentsDown.Load() {
			return errors.New("payment service unavailable")
		}
		return nil
	})
	ep := must(bus.New(ctx, conns, bus.Config{
		Name:   "orders",
		Logger: slog.New(slog.DiscardHandler),
		Inbox: &bus.InboxConfig{
			WorkQueue:  "sql://default/orders",
			ErrorQueue: "sql://default/orders-error",
			Threads:    1,
			Retry:      &bus.RetryPolicy{MaxAttempts: 2},
		},
	}, mux))
	events, stop := ep.Events(16)
	defer stop()
	check(ep.Start(ctx))
	defer ep.Stop(ctx)
	for _, id := range []string{"o-1", "o-2", "o-3"} {
		check(ep.Send(ctx, OrderPlaced{ID: id, Total: 10}, bus.To("sql://default/orders"), bus.MessageID("msg-"+id)))
	}
	waitEvents(events, bus.EventErrorQueued, 3)

	eq := must(bus.OpenErrorQueue(ctx, conns, "sql://default/orders-error"))
	page := must(eq.List(ctx, bus.ListOptions{Filter: bus.Filter{Type: "orders.*", Error: "payment"}}))
	for _, m := range page.Messages {
		fmt.Printf("%s %s: %d failures, %s: %q from %s\n", m.ID, m.Type, m.Failures, m.Kind, m.Error, m.SourceQueue)
	}
	shown := must(eq.Show(ctx, "msg-o-2"))
	for i, f := range shown.Envelope.Failures {
		fmt.Printf("attempt %d at endpoint %s: %s\n", i+1, f.Endpoint, f.Error)
	}

	paymentsDown.Store(false)
	n := must(eq.Retry(ctx, bus.Filter{Type: "orders.placed"}, bus.RetryOptions{}))
	fmt.Println("returned:", n)
	waitEvents(events, bus.EventHandled, 3)
	left := must(eq.Count(ctx, bus.Filter{}))
	fmt.Println("handled:", ep.Stats().Handled, "left in the error queue:", left)

	// Output:
	// msg-o-1 orders.placed: 2 failures, error: "payment service unavailable" from sql://default/orders
	// msg-o-2 orders.placed: 2 failures, error: "payment service unavailable" from sql://default/orders
	// msg-o-3 orders.placed: 2 failures, error: "payment service unavailable" from sql://default/orders
	// attempt 1 at endpoint orders: payment service unavailable
	// attempt 2 at endpoint orders: payment service unavailable
	// returned: 3
	// handled: 3 left in the error queue: 0
}

// waitEvents waits until n events of kind have come, or ten seconds.
func waitEvents(events <-chan bus.Event, kind bus.EventKind, n int) {
	timeout := time.After(10 * time.Second)
	for n > 0 {
		select {
		case ev := <-events:
			if ev.Kind == kind {
				n--
			}
		case <-timeout:
			log.Fatalf("still waiting for %d %s events", n, kind)
		}
	}
}
