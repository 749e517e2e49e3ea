package bus_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// observerLog is an Observer that keeps what it saw.
type observerLog struct {
	mu       sync.Mutex
	events   []bus.Event
	handlers []bus.HandlerDone
}

func (r *observerLog) ObserveEvent(ev bus.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *observerLog) ObserveHandler(h bus.HandlerDone) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handlers = append(r.handlers, h)
}

func (r *observerLog) kinds() map[bus.EventKind]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[bus.EventKind]int{}
	for _, ev := range r.events {
		out[ev.Kind]++
	}
	return out
}

// An observer sees every outcome, never dropped, and every handler call
// with its duration and error; a handled event carries the sent time.
func TestObserverSeesEventsAndHandlers(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		mux := bus.NewMux()
		bus.Handle(mux, "ping", func(ctx context.Context, m *bus.Message, p Ping) error {
			if p.N%2 == 1 {
				return bus.Permanent(errors.New("odd"))
			}
			return nil
		})
		ep, err := bus.New(ctx, conns, bus.Config{Name: "obs", Inbox: inbox("obs", 4)}, mux)
		if err != nil {
			t.Fatal(err)
		}
		rec := &observerLog{}
		ep.AddObserver(rec)
		if err := ep.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ep.Stop(context.Background()) })
		const n = 40
		before := time.Now()
		for i := range n {
			if err := ep.Send(ctx, Ping{N: i}, bus.To("sql://default/obs")); err != nil {
				t.Fatal(err)
			}
		}
		testkit.Eventually(t, 20*time.Second, "the observer to see 20 handled and 20 error-queued", func() bool {
			k := rec.kinds()
			return k[bus.EventHandled] == n/2 && k[bus.EventErrorQueued] == n/2
		})
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.handlers) != n {
			t.Fatalf("observer saw %d handler calls, want %d", len(rec.handlers), n)
		}
		failed := 0
		for _, h := range rec.handlers {
			if h.Type != "ping" || h.Queue != "sql://default/obs" || h.Attempt != 1 || h.Duration < 0 || h.MessageID == "" {
				t.Errorf("handler call %+v", h)
			}
			if h.Err != nil {
				failed++
			}
		}
		if failed != n/2 {
			t.Errorf("%d handler calls failed, want %d", failed, n/2)
		}
		for _, ev := range rec.events {
			if ev.Kind == bus.EventHandled && (ev.SentAt.Before(before.Add(-time.Second)) || ev.SentAt.After(ev.At)) {
				t.Errorf("handled event %+v: sent at %v, want between %v and %v", ev, ev.SentAt, before, ev.At)
			}
		}
	})
}
