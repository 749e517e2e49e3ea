package alerts

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrybus/ferry/bus"
)

// observer is an endpoint's bus.Observer for its FailureRate and
// FailureCount rules. It runs on the endpoint's handler and acker
// goroutines: it only moves counters under short locks.
type observer struct {
	e      *Engine
	rates  []*rate
	counts []int // FailureCount rules
	added  atomic.Bool
}

// ObserveEvent counts handled and failed attempts, and follows the
// messages of FailureCount rules.
func (o *observer) ObserveEvent(ev bus.Event) {
	switch ev.Kind {
	case bus.EventHandled, bus.EventFailed, bus.EventErrorQueued, bus.EventDiscarded:
	default:
		return
	}
	now := o.e.now()
	if ev.Kind == bus.EventHandled || ev.Kind == bus.EventFailed {
		for _, r := range o.rates {
			r.add(now, ev.Kind == bus.EventFailed)
		}
	}
	if len(o.counts) == 0 {
		return
	}
	switch ev.Kind {
	case bus.EventFailed:
		for _, i := range o.counts {
			if float64(ev.Attempt) >= o.e.rules[i].Threshold {
				o.e.msgs.fire(i, ev.MessageID, ev.Attempt, now)
			}
		}
	case bus.EventHandled:
		o.e.msgs.settle(o.counts, ev.MessageID, "handled", ev.Attempt, now)
	case bus.EventErrorQueued:
		o.e.msgs.settle(o.counts, ev.MessageID, "moved to the error queue", ev.Attempt, now)
	case bus.EventDiscarded:
		o.e.msgs.settle(o.counts, ev.MessageID, "discarded", ev.Attempt, now)
	}
}

// ObserveHandler is not needed: outcomes come as events.
func (o *observer) ObserveHandler(bus.HandlerDone) {}

// rate finds the counter of rule i.
func (o *observer) rate(i int) *rate {
	for _, r := range o.rates {
		if r.rule == i {
			return r
		}
	}
	return nil
}

// nopObserver observes an endpoint no rule watches.
type nopObserver struct{}

func (nopObserver) ObserveEvent(bus.Event)         {}
func (nopObserver) ObserveHandler(bus.HandlerDone) {}

// rateBuckets is how many slices a failure-rate window is cut into: the
// window slides by one slice at a time, and the memory is fixed.
const rateBuckets = 60

// rate counts handled and failed attempts over a sliding window.
type rate struct {
	rule    int
	width   time.Duration // of a bucket
	mu      sync.Mutex
	buckets [rateBuckets]bucket
}

type bucket struct {
	slot            int64 // time / width of the bucket's slice
	handled, failed int64
}

func newRate(rule int, window time.Duration) *rate {
	return &rate{rule: rule, width: max(window/rateBuckets, time.Millisecond)}
}

func (r *rate) add(now time.Time, failed bool) {
	slot := now.UnixNano() / int64(r.width)
	r.mu.Lock()
	defer r.mu.Unlock()
	b := &r.buckets[slot%rateBuckets]
	if b.slot != slot {
		*b = bucket{slot: slot}
	}
	if failed {
		b.failed++
	} else {
		b.handled++
	}
}

// sum adds up the window that ends at now.
func (r *rate) sum(now time.Time) (handled, failed int64) {
	slot := now.UnixNano() / int64(r.width)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.buckets {
		if b.slot > slot-rateBuckets && b.slot <= slot {
			handled += b.handled
			failed += b.failed
		}
	}
	return handled, failed
}
