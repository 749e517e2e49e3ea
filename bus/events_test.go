package bus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// The event stream tells each message's outcome with its identity.
func TestEventsTellOutcomes(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		mux := bus.NewMux()
		bus.Handle(mux, "ping", func(ctx context.Context, m *bus.Message, p Ping) error {
			if p.N == 2 {
				return bus.Permanent(errors.New("refused"))
			}
			return nil
		})
		ep := start(t, conns, bus.Config{Name: "ev", Inbox: inbox("ev", 1)}, mux)
		events := watch(t, ep)
		to := bus.To("sql://default/ev")
		for _, o := range []struct {
			n    int
			opts []bus.SendOption
		}{{1, nil}, {2, nil}, {3, []bus.SendOption{bus.ExpiresAt(time.Now().Add(-time.Second))}}} {
			if err := ep.Send(ctx, Ping{N: o.n}, append(o.opts, to)...); err != nil {
				t.Fatal(err)
			}
		}
		events.waitFor(t, 10*time.Second, bus.EventHandled, 1)
		events.waitFor(t, 10*time.Second, bus.EventErrorQueued, 1)
		events.waitFor(t, 10*time.Second, bus.EventDiscarded, 1)
		want := map[bus.EventKind]string{
			bus.EventHandled: "", bus.EventFailed: bus.KindPermanent, bus.EventErrorQueued: bus.KindPermanent,
			bus.EventExpired: bus.KindExpired, bus.EventDiscarded: bus.KindExpired,
		}
		for _, ev := range events.all {
			failure, ok := want[ev.Kind]
			if !ok {
				t.Errorf("unexpected event %+v", ev)
				continue
			}
			delete(want, ev.Kind)
			if ev.Failure != failure || ev.Type != "ping" || ev.Queue != "sql://default/ev" || ev.Attempt != 1 || ev.MessageID == "" || ev.At.IsZero() {
				t.Errorf("event %+v, want failure %q of a first ping delivery from sql://default/ev", ev, failure)
			}
			if (failure == "") != (ev.Err == "") {
				t.Errorf("event %+v: error text %q with failure %q", ev, ev.Err, failure)
			}
		}
		if len(want) > 0 {
			t.Errorf("missing events %v; saw %+v", want, events.all)
		}
		if s := ep.Stats(); s.Handled != 1 || s.Errored != 1 || s.Discarded != 1 || s.Expired != 1 || s.Failed != 1 {
			t.Errorf("stats %+v disagree with the events", s)
		}
	})
}

// A subscriber that never reads slows nothing: its events are dropped and
// counted, and cancelling closes its channel.
func TestSlowSubscriberDropsEvents(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		mux := bus.NewMux()
		bus.Handle(mux, "ping", func(ctx context.Context, m *bus.Message, p Ping) error { return nil })
		ep := start(t, conns, bus.Config{Name: "slow", Inbox: inbox("slow", 4)}, mux)
		slow, cancel := ep.Events(1)
		events := watch(t, ep)
		const n = 20
		for i := range n {
			if err := ep.Send(ctx, Ping{N: i}, bus.To("sql://default/slow")); err != nil {
				t.Fatal(err)
			}
		}
		events.waitFor(t, 10*time.Second, bus.EventHandled, n)
		// An event reaches the subscribers one after the other: the last
		// one's drop for the slow subscriber may follow its delivery here.
		testkit.Eventually(t, 10*time.Second, "the slow subscriber's drops counted", func() bool { return ep.DroppedEvents() >= n-1 })
		if d := ep.DroppedEvents(); d != n-1 {
			t.Errorf("%d events dropped, want %d (the slow subscriber's buffer holds one)", d, n-1)
		}
		cancel()
		cancel() // a second cancel is harmless
		got := 0
		for range slow {
			got++
		}
		if got != 1 {
			t.Errorf("the slow subscriber got %d events, want 1", got)
		}
	})
}
