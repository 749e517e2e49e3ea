package queue_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/ferrybus/ferry/queue"
)

// exampleDir makes a temporary folder for an example's SQLite file; remove
// it when done.
func exampleDir() string {
	dir, err := os.MkdirTemp("", "ferry-queue-example-")
	if err != nil {
		log.Fatalf("temp dir: %v", err)
	}
	return dir
}

// exampleQueues resolves the queue URIs against connection "default", a
// SQLite file in a temporary folder; call done to close it and remove the
// folder.
func exampleQueues(ctx context.Context, uris ...string) (qs []queue.Queue, done func()) {
	dir := exampleDir()
	conns := queue.NewConnections(map[string]string{"default": "sqlite://" + filepath.Join(dir, "ferry.db")},
		queue.Options{AutoMigrate: true})
	done = func() {
		if err := conns.Close(); err != nil {
			log.Printf("close: %v", err)
		}
		os.RemoveAll(dir)
	}
	for _, uri := range uris {
		q, err := conns.Queue(ctx, uri)
		if err != nil {
			done()
			log.Fatalf("resolve %s: %v", uri, err)
		}
		qs = append(qs, q)
	}
	return qs, done
}

// Open a store, enqueue a message, receive it under a lease and ack it once
// handled.
func ExampleOpen() {
	ctx := context.Background()
	dir := exampleDir()
	defer os.RemoveAll(dir)

	store, err := queue.Open(ctx, "sqlite://"+filepath.Join(dir, "ferry.db"), queue.Options{AutoMigrate: true})
	if err != nil {
		log.Fatalf("open: %v", err)
	}
	defer store.Close()
	q, err := store.Queue("orders")
	if err != nil {
		log.Fatalf("queue: %v", err)
	}

	if err := q.Enqueue(ctx, queue.Message{MessageID: "m-1", Type: "order.placed", Body: []byte(`{"id":"o-1"}`)}); err != nil {
		log.Fatalf("enqueue: %v", err)
	}
	ds, err := q.Receive(ctx, 10, 30*time.Second)
	if err != nil {
		log.Fatalf("receive: %v", err)
	}
	for _, d := range ds {
		fmt.Printf("received %s (%s), attempt %d: %s\n", d.MessageID, d.Type, d.Attempts, d.Body)
	}
	c, err := q.Count(ctx)
	if err != nil {
		log.Fatalf("count: %v", err)
	}
	fmt.Printf("while leased: ready %d, in flight %d\n", c.Ready, c.InFlight)

	if err := q.Ack(ctx, ds...); err != nil {
		log.Fatalf("ack: %v", err)
	}
	if c, err = q.Count(ctx); err != nil {
		log.Fatalf("count: %v", err)
	}
	fmt.Printf("after ack: %d messages\n", c.Total())
	// Output:
	// received m-1 (order.placed), attempt 1: {"id":"o-1"}
	// while leased: ready 0, in flight 1
	// after ack: 0 messages
}

// A message with VisibleAt in the future waits in the queue, deferred:
// Receive does not see it until then.
func ExampleMessage_visibleAt() {
	ctx := context.Background()
	qs, done := exampleQueues(ctx, "sql://default/reminders")
	defer done()
	q := qs[0]

	if err := q.Enqueue(ctx,
		queue.Message{MessageID: "now", Type: "reminder"},
		queue.Message{MessageID: "tomorrow", Type: "reminder", VisibleAt: time.Now().Add(24 * time.Hour)},
	); err != nil {
		log.Fatalf("enqueue: %v", err)
	}
	c, err := q.Count(ctx)
	if err != nil {
		log.Fatalf("count: %v", err)
	}
	fmt.Printf("ready %d, deferred %d\n", c.Ready, c.Deferred)
	ds, err := q.Receive(ctx, 10, time.Minute)
	if err != nil {
		log.Fatalf("receive: %v", err)
	}
	for _, d := range ds {
		fmt.Println("received", d.MessageID)
	}
	// Output:
	// ready 1, deferred 1
	// received now
}

// Connections resolves queue URIs, sql://CONNECTION/QUEUE, against named
// connection strings, opening each store once.
func ExampleConnections() {
	ctx := context.Background()
	dir := exampleDir()
	defer os.RemoveAll(dir)

	conns := queue.NewConnections(map[string]string{"default": "sqlite://" + filepath.Join(dir, "ferry.db")},
		queue.Options{AutoMigrate: true})
	defer conns.Close()

	q, err := conns.Queue(ctx, "sql://default/orders")
	if err != nil {
		log.Fatalf("resolve: %v", err)
	}
	if err := q.Enqueue(ctx, queue.Message{MessageID: "m-1", Type: "order.placed"}); err != nil {
		log.Fatalf("enqueue: %v", err)
	}
	fmt.Println("queue", q.Name(), "at", q.URI(), "on", q.Store().Dialect())

	if _, err := conns.Queue(ctx, "sql://archive/orders"); err != nil {
		fmt.Println("unknown connection:", errors.Is(err, queue.ErrUnknownConnection))
	}
	// Output:
	// queue orders at sql://default/orders on sqlite
	// unknown connection: true
}

// Move takes a leased message to another queue of the same store, where it
// starts afresh: visible, attempt count zero, with the headers given.
func ExampleMover_Move() {
	ctx := context.Background()
	qs, done := exampleQueues(ctx, "sql://default/orders", "sql://default/parked")
	defer done()
	orders, parked := qs[0], qs[1]

	if err := orders.Enqueue(ctx, queue.Message{MessageID: "m-1", Type: "order.placed"}); err != nil {
		log.Fatalf("enqueue: %v", err)
	}
	ds, err := orders.Receive(ctx, 1, time.Minute)
	if err != nil {
		log.Fatalf("receive: %v", err)
	}
	if len(ds) != 1 {
		log.Fatalf("received %d messages, want 1", len(ds))
	}
	if err := orders.Move(ctx, ds[0], parked, map[string]string{"reason": "payment down"}); err != nil {
		log.Fatalf("move: %v", err)
	}

	for _, q := range []queue.Queue{orders, parked} {
		c, err := q.Count(ctx)
		if err != nil {
			log.Fatalf("count: %v", err)
		}
		fmt.Printf("%s: %d ready\n", q.Name(), c.Ready)
	}
	moved, err := parked.Peek(ctx, 0, 10)
	if err != nil {
		log.Fatalf("peek: %v", err)
	}
	for _, d := range moved {
		fmt.Printf("%s in %s, reason %q\n", d.MessageID, d.Queue, d.Headers["reason"])
	}
	// Output:
	// orders: 0 ready
	// parked: 1 ready
	// m-1 in parked, reason "payment down"
}
