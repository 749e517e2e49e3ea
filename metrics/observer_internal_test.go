package metrics

import (
	"errors"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
)

// TestObserverAllocatesNothing: once a type's series exist, observing its
// messages allocates nothing (the hot path of every handled message).
func TestObserverAllocatesNothing(t *testing.T) {
	m := New(nil)
	o := newObserver(m, "orders", "sql://default/orders")
	now := time.Now()
	handled := bus.Event{Kind: bus.EventHandled, Type: "ping", SentAt: now.Add(-time.Millisecond), At: now}
	failed := bus.Event{Kind: bus.EventFailed, Type: "ping", Failure: bus.KindError}
	done := bus.HandlerDone{Type: "ping", Duration: time.Millisecond, Err: errors.New("x")}
	o.ObserveEvent(handled)
	o.ObserveEvent(failed)
	if n := testing.AllocsPerRun(1000, func() {
		o.ObserveHandler(done)
		o.ObserveEvent(handled)
		o.ObserveEvent(failed)
	}); n != 0 {
		t.Errorf("observing a message allocates %.1f times, want 0", n)
	}
}

func BenchmarkObserveHandled(b *testing.B) {
	m := New(nil)
	o := newObserver(m, "orders", "sql://default/orders")
	now := time.Now()
	ev := bus.Event{Kind: bus.EventHandled, Type: "ping", SentAt: now.Add(-time.Millisecond), At: now}
	done := bus.HandlerDone{Type: "ping", Duration: time.Millisecond}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			o.ObserveHandler(done)
			o.ObserveEvent(ev)
		}
	})
}
