package bus_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/queue"
)

// must stops an example at its first error: examples check every one.
func must[T any](v T, err error) T {
	check(err)
	return v
}

// check stops an example when err is not nil.
func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// exampleConns opens a fresh SQLite database in a temporary folder.
func exampleConns() (*queue.Connections, func()) {
	dir := must(os.MkdirTemp("", "ferry-example-"))
	conns := queue.NewConnections(map[string]string{"default": "sqlite://" + filepath.Join(dir, "ferry.db")},
		queue.Options{AutoMigrate: true})
	return conns, func() { conns.Close(); os.RemoveAll(dir) }
}

type Greeting struct {
	Name string `json:"name"`
}

// Handle registers a typed handler; Send routes a message to it.
func ExampleHandle() {
	conns, cleanup := exampleConns()
	defer cleanup()
	ctx := context.Background()

	done := make(chan struct{})
	mux := bus.NewMux()
	bus.Handle(mux, "greetings.hello", func(ctx context.Context, m *bus.Message, g Greeting) error {
		fmt.Printf("hello, %s (type %s)\n", g.Name, m.Type)
		close(done)
		return nil
	})
	ep := must(bus.New(ctx, conns, bus.Config{
		Name:   "greeter",
		Inbox:  &bus.InboxConfig{WorkQueue: "sql://default/greeter", ErrorQueue: "sql://default/error", Threads: 1},
		Routes: []bus.Route{{Types: []string{"greetings.*"}, Queue: "sql://default/greeter"}},
	}, mux))
	check(ep.Start(ctx))
	defer ep.Stop(ctx)

	check(ep.Send(ctx, Greeting{Name: "ferry"}))
	<-done
	// Output: hello, ferry (type greetings.hello)
}

// Publish delivers an event to every subscribed inbox.
func ExampleEndpoint_Publish() {
	conns, cleanup := exampleConns()
	defer cleanup()
	ctx := context.Background()

	got := make(chan string, 2)
	for _, name := range []string{"billing", "shipping"} {
		mux := bus.NewMux()
		bus.Handle(mux, "orders.accepted", func(ctx context.Context, m *bus.Message, o OrderAccepted) error {
			got <- name + " got " + o.ID
			return nil
		})
		ep := must(bus.New(ctx, conns, bus.Config{
			Name:      name,
			Inbox:     &bus.InboxConfig{WorkQueue: "sql://default/" + name, ErrorQueue: "sql://default/error"},
			Subscribe: []string{"orders.accepted"},
		}, mux))
		check(ep.Start(ctx))
		defer ep.Stop(ctx)
	}

	mux := bus.NewMux()
	bus.RegisterType[OrderAccepted](mux, "orders.accepted")
	pub := must(bus.New(ctx, conns, bus.Config{Name: "orders"}, mux))
	check(pub.Publish(ctx, OrderAccepted{ID: "o-1"}))
	a, b := <-got, <-got
	if a > b {
		a, b = b, a
	}
	fmt.Println(a)
	fmt.Println(b)
	// Output:
	// billing got o-1
	// shipping got o-1
}

// Reply answers the sender of the message being handled, with the same
// correlation id.
func ExampleMessage_Reply() {
	conns, cleanup := exampleConns()
	defer cleanup()
	ctx := context.Background()

	server := bus.NewMux()
	bus.RegisterType[Pong](server, "pong")
	bus.Handle(server, "ping", func(ctx context.Context, m *bus.Message, p Ping) error {
		return m.Reply(ctx, Pong{N: p.N + 1})
	})
	srv := must(bus.New(ctx, conns, bus.Config{Name: "server",
		Inbox: &bus.InboxConfig{WorkQueue: "sql://default/server", ErrorQueue: "sql://default/error"}}, server))
	check(srv.Start(ctx))
	defer srv.Stop(ctx)

	reply := make(chan string, 1)
	client := bus.NewMux()
	bus.RegisterType[Ping](client, "ping")
	bus.Handle(client, "pong", func(ctx context.Context, m *bus.Message, p Pong) error {
		reply <- fmt.Sprintf("pong %d, correlation %s", p.N, m.CorrelationID)
		return nil
	})
	cl := must(bus.New(ctx, conns, bus.Config{Name: "client",
		Inbox: &bus.InboxConfig{WorkQueue: "sql://default/client", ErrorQueue: "sql://default/error"}}, client))
	check(cl.Start(ctx))
	defer cl.Stop(ctx)

	check(cl.Send(ctx, Ping{N: 1}, bus.To("sql://default/server"), bus.CorrelationID("conversation-1")))
	fmt.Println(<-reply)
	// Output: pong 2, correlation conversation-1
}

// DeliverAt sends a message to be delivered later; until then it waits in
// the queue, invisible.
func ExampleDeliverAt() {
	conns, cleanup := exampleConns()
	defer cleanup()
	ctx := context.Background()

	mux := bus.NewMux()
	bus.RegisterType[Greeting](mux, "greetings.hello")
	ep := must(bus.New(ctx, conns, bus.Config{Name: "scheduler"}, mux))
	check(ep.Send(ctx, Greeting{Name: "later"}, bus.To("sql://default/reminders"), bus.DeliverAt(time.Now().Add(time.Hour))))

	q := must(conns.Queue(ctx, "sql://default/reminders"))
	c := must(q.Count(ctx))
	fmt.Printf("ready %d, deferred %d\n", c.Ready, c.Deferred)
	// Output: ready 0, deferred 1
}
