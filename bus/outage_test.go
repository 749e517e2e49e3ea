package bus_test

import (
	"context"
	"github.com/ferrybus/ferry/internal/testkit"
	"log/slog"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/queue"
)

// TestReceiveRecoversPromptly: while the database is unreachable the
// receive loop retries with a backoff that never grows past its cap, logs
// the outage once and its end once, and a message sent once the database
// is back is handled.
func TestReceiveRecoversPromptly(t *testing.T) {
	ctx := context.Background()
	rec, log := testkit.NewLog()
	o := newOutage(t, queue.Options{MaxPoll: 100 * time.Millisecond, Logger: log})
	direct, p := o.direct, o.proxy

	got := make(chan Ping, 10)
	mux := bus.NewMux()
	bus.Handle(mux, "ping", func(ctx context.Context, m *bus.Message, v Ping) error {
		got <- v
		return nil
	})
	start(t, o.conns, bus.Config{Name: "pinged", Inbox: inbox("pings", 2), Logger: log}, mux)
	sender := pingSender(t, direct, "sender", bus.Route{Types: []string{"ping"}, Queue: "sql://default/pings"})
	waitPing := func(n int) {
		t.Helper()
		select {
		case v := <-got:
			if v.N != n {
				t.Fatalf("handled ping %d, want %d", v.N, n)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("ping %d not handled within 60s", n)
		}
	}
	if err := sender.Send(ctx, Ping{N: 1}); err != nil {
		t.Fatal(err)
	}
	waitPing(1)
	// Its ack goes out after the handler returns: let it through first, so
	// that what the outage meets is the receive loop, not an ack.
	testkit.Eventually(t, 30*time.Second, "ping 1 acked", func() bool {
		return testkit.Count(t, direct, "sql://default/pings").Total() == 0
	})

	// The database goes away: open connections drop, new ones are refused.
	p.Refuse()
	p.DropAll()
	// Enough retries for the backoff to have reached its cap.
	testkit.Eventually(t, 60*time.Second, "eight failed receives", func() bool {
		return len(rec.Matching("receive failed")) >= 8
	})
	p.Accept()
	if err := sender.Send(ctx, Ping{N: 2}); err != nil {
		t.Fatal(err)
	}
	waitPing(2)
	rec.Wait(t, 30*time.Second, "receiving again")

	var warns int
	for _, r := range rec.Matching("receive failed") {
		if in := r.Attrs["in"].Duration(); in <= 0 || in > bus.MaxErrorBackoff {
			t.Errorf("receive retried in %s, want within (0, %s]: %v", in, bus.MaxErrorBackoff, r)
		}
		if r.Level >= slog.LevelWarn {
			warns++
		}
	}
	if warns != 1 {
		t.Errorf("%d WARN/ERROR lines about failed receives for one outage, want 1", warns)
	}
	if n := len(rec.Matching("receiving again")); n != 1 {
		t.Errorf("%d 'receiving again' lines, want 1", n)
	}
	if r := rec.Matching("receiving again")[0]; r.Attrs["down"].Duration() <= 0 || r.Attrs["failures"].Int64() < 8 {
		t.Errorf("recovery line %v: want how long receives failed and how many times", r)
	}
}
