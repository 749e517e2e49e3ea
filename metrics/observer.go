package metrics

import (
	"sync"
	"sync/atomic"

	"github.com/ferrybus/ferry/bus"
	"github.com/prometheus/client_golang/prometheus"
)

// observer turns one endpoint's events into metrics. Its hot path is a
// lock-free lookup of the message type's cached series and an atomic add:
// no allocation and no label hashing per message.
type observer struct {
	m               *Metrics
	endpoint, queue string

	types atomic.Pointer[map[string]*typeSeries] // copy on write
	full  atomic.Bool                            // MaxTypes types have series
	mu    sync.Mutex                             // writers of types
	other *typeSeries                            // for the types past MaxTypes; set before full
}

// typeSeries are one message type's series of an endpoint.
type typeSeries struct {
	handled, retried, errorQueued, discarded, duplicates, expired prometheus.Counter
	handlerDur, critical                                          prometheus.Observer

	// failed by kind: kinds are few, so a copy-on-write map as for types.
	failed   atomic.Pointer[map[string]prometheus.Counter]
	failedMu sync.Mutex
	labels   [3]string // endpoint, queue, type
}

func newObserver(m *Metrics, endpoint, queue string) *observer {
	o := &observer{m: m, endpoint: endpoint, queue: queue}
	empty := map[string]*typeSeries{}
	o.types.Store(&empty)
	return o
}

func (o *observer) newSeries(typ string) *typeSeries {
	l := prometheus.Labels{"endpoint": o.endpoint, "queue": o.queue, "type": typ}
	m := o.m
	s := &typeSeries{
		handled: m.handled.With(l), retried: m.retried.With(l), errorQueued: m.errorQueued.With(l),
		discarded: m.discarded.With(l), duplicates: m.duplicates.With(l), expired: m.expired.With(l),
		handlerDur: m.handlerDur.With(l), critical: m.critical.With(l),
		labels: [3]string{o.endpoint, o.queue, typ},
	}
	empty := map[string]prometheus.Counter{}
	s.failed.Store(&empty)
	return s
}

// series returns the series of a message type, made on its first message;
// past MaxTypes types, the "other" series.
func (o *observer) series(typ string) *typeSeries {
	if s, ok := (*o.types.Load())[typ]; ok {
		return s
	}
	if o.full.Load() {
		return o.other
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	cur := *o.types.Load()
	if s, ok := cur[typ]; ok {
		return s
	}
	if len(cur) >= MaxTypes {
		o.other = o.newSeries(OtherType)
		o.full.Store(true)
		return o.other
	}
	next := make(map[string]*typeSeries, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	s := o.newSeries(typ)
	next[typ] = s
	o.types.Store(&next)
	return s
}

// failedCounter returns the failed counter of a failure kind.
func (s *typeSeries) failedCounter(m *Metrics, kind string) prometheus.Counter {
	if c, ok := (*s.failed.Load())[kind]; ok {
		return c
	}
	s.failedMu.Lock()
	defer s.failedMu.Unlock()
	cur := *s.failed.Load()
	if c, ok := cur[kind]; ok {
		return c
	}
	if len(cur) >= maxKinds {
		kind = OtherType
		if c, ok := cur[kind]; ok {
			return c
		}
	}
	next := make(map[string]prometheus.Counter, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	c := m.failed.WithLabelValues(s.labels[0], s.labels[1], s.labels[2], kind)
	next[kind] = c
	s.failed.Store(&next)
	return c
}

// ObserveEvent counts an event in its type's series.
func (o *observer) ObserveEvent(ev bus.Event) {
	s := o.series(ev.Type)
	switch ev.Kind {
	case bus.EventHandled:
		s.handled.Inc()
		if !ev.SentAt.IsZero() {
			s.critical.Observe(max(ev.At.Sub(ev.SentAt).Seconds(), 0)) // a skewed clock is not negative time
		}
	case bus.EventFailed:
		s.failedCounter(o.m, ev.Failure).Inc()
	case bus.EventRetried:
		s.retried.Inc()
	case bus.EventErrorQueued:
		s.errorQueued.Inc()
	case bus.EventDiscarded:
		s.discarded.Inc()
	case bus.EventDuplicate:
		s.duplicates.Inc()
	case bus.EventExpired:
		s.expired.Inc()
	}
}

// ObserveHandler records how long a handler ran.
func (o *observer) ObserveHandler(h bus.HandlerDone) {
	o.series(h.Type).handlerDur.Observe(h.Duration.Seconds())
}
