package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/queue"
)

// TestStopEndsByItsDeadlineWhileFrozen: with the database frozen (it keeps
// the connections open and never answers) and a handler running, Stop
// returns an error soon after its deadline instead of waiting for the
// database; once the database answers again the message is handled by
// another endpoint: nothing is lost.
func TestStopEndsByItsDeadlineWhileFrozen(t *testing.T) {
	ctx := context.Background()
	o := newOutage(t, queue.Options{})
	direct, p := o.direct, o.proxy

	running := make(chan struct{}, 1)
	mux := bus.NewMux()
	bus.Handle(mux, "ping", func(ctx context.Context, m *bus.Message, v Ping) error {
		running <- struct{}{}
		<-ctx.Done() // runs until the stop gives up on it
		return ctx.Err()
	})
	cfg := inbox("frozen", 1)
	cfg.Lease = 2 * time.Second
	ep := launch(t, o.conns, bus.Config{Name: "frozen", Inbox: cfg}, mux)
	sender := pingSender(t, direct, "sender", bus.Route{Types: []string{"ping"}, Queue: "sql://default/frozen"})
	mustSend(t, sender, Ping{N: 1})
	select {
	case <-running:
	case <-time.After(30 * time.Second):
		t.Fatal("the handler never started")
	}

	p.Freeze()
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- ep.Stop(sctx) }()
	select {
	case err := <-stopped:
		if err == nil {
			t.Error("Stop with a frozen database and a handler running returned no error")
		}
		t.Logf("Stop: %v", err)
	case <-time.After(20 * time.Second):
		// Without the bound it waits for the database's answer timeout
		// (statement_timeout + 5s) once per release.
		t.Fatal("Stop did not return within 20s of a 1s deadline while the database was frozen")
	}
	p.Thaw()

	got := make(chan Ping, 1)
	mux2 := bus.NewMux()
	bus.Handle(mux2, "ping", func(ctx context.Context, m *bus.Message, v Ping) error {
		got <- v
		return nil
	})
	start(t, direct, bus.Config{Name: "after", Inbox: inbox("frozen", 1)}, mux2)
	select {
	case v := <-got:
		if v.N != 1 {
			t.Fatalf("handled ping %d, want 1", v.N)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the message was not handled after the database came back")
	}
}
