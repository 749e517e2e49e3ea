package bus

import (
	"sync"
	"sync/atomic"
	"time"
)

// Observer sees everything an endpoint's inbox does, as it happens: metrics,
// alerts and summary logs are built on it. Unlike Events, nothing is ever
// dropped; in exchange its methods run on the goroutine that did the work
// (a handler's thread, the acker) and must return quickly and never block.
type Observer interface {
	// ObserveEvent is called for every Event, just after its Stats counter
	// moved and before it is sent to Events subscribers.
	ObserveEvent(ev Event)
	// ObserveHandler is called when a handler returns, with how long it
	// ran and what it returned. Its outcome (handled, retried, …) follows
	// as an event.
	ObserveHandler(h HandlerDone)
}

// HandlerDone is one handler call, as an Observer sees it.
type HandlerDone struct {
	MessageID string
	Type      string
	// Queue is the inbox the message was received from.
	Queue string
	// Attempt is the delivery's attempt number, from 1.
	Attempt int
	// Duration is how long the handler ran.
	Duration time.Duration
	// Err is what the handler returned (a panic as an error); nil on success.
	Err error
}

// observers is an endpoint's observers: a copy-on-write list, so that the
// hot path reads it with one atomic load and no lock.
type observers struct {
	mu   sync.Mutex
	list atomic.Pointer[[]Observer]
}

// load returns the current observers (nil when there are none).
func (o *observers) load() []Observer {
	if p := o.list.Load(); p != nil {
		return *p
	}
	return nil
}

// AddObserver makes o see what the endpoint's inbox does from now on. It is
// safe at any time, before or after Start; an observer cannot be removed.
func (e *Endpoint) AddObserver(o Observer) {
	e.obs.mu.Lock()
	defer e.obs.mu.Unlock()
	cur := e.obs.load()
	next := make([]Observer, len(cur), len(cur)+1)
	copy(next, cur)
	next = append(next, o)
	e.obs.list.Store(&next)
}

// observeHandler tells the observers that a handler returned.
func (e *Endpoint) observeHandler(j *job, took time.Duration, err error) {
	obs := e.obs.load()
	if len(obs) == 0 {
		return
	}
	h := HandlerDone{MessageID: j.d.MessageID, Type: j.d.Type, Queue: e.inbox.URI(), Attempt: j.d.Attempts, Duration: took, Err: err}
	for _, o := range obs {
		o.ObserveHandler(h)
	}
}
