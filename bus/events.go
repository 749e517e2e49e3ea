package bus

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrybus/ferry/queue"
)

// EventKind says what happened to a message in an endpoint's inbox.
type EventKind string

// What an inbox does with a message. Each kind matches a counter of Stats
// (Released: Endpoint.Released), which moves just before the event is sent.
const (
	// EventHandled: its handler succeeded and it was acked.
	EventHandled EventKind = "handled"
	// EventFailed: an attempt failed (any kind but expired); a Retried,
	// ErrorQueued or Discarded event follows when the outcome is settled.
	EventFailed EventKind = "failed"
	// EventRetried: it was given back for another attempt after a failure.
	EventRetried EventKind = "retried"
	// EventErrorQueued: it was moved to the error queue.
	EventErrorQueued EventKind = "error-queued"
	// EventDiscarded: it was acked unhandled by a discard action (expired
	// messages by default), or it failed in an inbox of ferry's own that
	// takes its messages off the queue and cannot retry them (the
	// distributor's control inbox).
	EventDiscarded EventKind = "discarded"
	// EventDuplicate: it was acked unhandled, or its effects rolled back,
	// because another copy was handled.
	EventDuplicate EventKind = "duplicate"
	// EventExpired: it was received after its ExpiresAt; its outcome
	// (discarded by default) follows.
	EventExpired EventKind = "expired"
	// EventReleased: it was given back unhandled, its delivery not counted
	// as an attempt: it waited too long in the prefetch buffer, or Stop
	// gave it back.
	EventReleased EventKind = "released"
)

// Event is one thing an endpoint's inbox did with a message.
type Event struct {
	Kind      EventKind
	MessageID string
	Type      string
	// Queue is the inbox the message was received from.
	Queue string
	// Attempt is the delivery's attempt number, from 1.
	Attempt int
	// Failure is the kind of failure (KindError, KindPanic, …) for Failed,
	// Retried, ErrorQueued and Discarded, and KindExpired for Expired.
	Failure string
	// Err is the failure's text, as the failure record keeps it.
	Err string
	// SentAt is when the message was sent (its ferry.sent-at header), zero
	// when unknown: At minus SentAt is a handled message's critical time.
	SentAt time.Time
	At     time.Time
}

// DefaultEventBuffer is the buffer of an event subscription that asks for
// none.
const DefaultEventBuffer = 256

// eventHub fans an endpoint's events out to its subscribers without ever
// waiting for them.
type eventHub struct {
	n       atomic.Int32 // subscribers: with none, an event costs one load
	dropped atomic.Int64
	mu      sync.RWMutex
	subs    map[chan Event]struct{}
}

// Events subscribes to what the endpoint's inbox does with each message
// from now on, for tests and examples that wait for an outcome instead of
// polling Stats. The channel holds up to buffer events (DefaultEventBuffer
// when buffer < 1). A subscriber that falls behind never slows handling:
// an event that finds its buffer full is dropped for it and counted in
// DroppedEvents. The subscription outlives Stop and Start; cancel ends it
// and closes the channel.
func (e *Endpoint) Events(buffer int) (events <-chan Event, cancel func()) {
	if buffer < 1 {
		buffer = DefaultEventBuffer
	}
	ch := make(chan Event, buffer)
	h := &e.events
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[chan Event]struct{}{}
	}
	h.subs[ch] = struct{}{}
	h.n.Add(1)
	h.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.subs, ch)
			h.n.Add(-1)
			close(ch)
			h.mu.Unlock()
		})
	}
}

// DroppedEvents is how many events subscribers missed because their
// buffers were full.
func (e *Endpoint) DroppedEvents() int64 { return e.events.dropped.Load() }

// emit sends an event about d to every subscriber that has room.
func (e *Endpoint) emit(kind EventKind, d queue.Delivery, failure, text string) {
	h := &e.events
	obs := e.obs.load()
	if h.n.Load() == 0 && len(obs) == 0 {
		return
	}
	ev := Event{Kind: kind, MessageID: d.MessageID, Type: d.Type, Queue: e.inbox.URI(), Attempt: d.Attempts,
		Failure: failure, Err: text, At: time.Now()}
	if v, ok := d.Headers[HeaderSentAt]; ok {
		ev.SentAt, _ = parseTime(v) // unknown stays zero
	}
	for _, o := range obs {
		o.ObserveEvent(ev)
	}
	if h.n.Load() == 0 {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for ch := range h.subs {
		select {
		case ch <- ev:
		default:
			h.dropped.Add(1)
		}
	}
}

// count moves the counter of kind and tells the subscribers.
func (e *Endpoint) count(kind EventKind, d queue.Delivery, failure, text string) {
	c := &e.stats
	switch kind {
	case EventHandled:
		c.handled.Add(1)
	case EventFailed:
		c.failed.Add(1)
	case EventRetried:
		c.retried.Add(1)
	case EventErrorQueued:
		c.errored.Add(1)
	case EventDiscarded:
		c.discarded.Add(1)
	case EventDuplicate:
		c.duplicates.Add(1)
	case EventExpired:
		c.expired.Add(1)
	}
	e.emit(kind, d, failure, text)
}
