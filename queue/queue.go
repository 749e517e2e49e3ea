// Package queue is ferry's storage layer: durable message queues kept in SQL
// tables, with leases (visibility timeouts), deferral, priority, a durable
// delivery count and wake-ups on enqueue.
//
// One table per database holds every queue, so a move between two queues of
// one database is a single UPDATE. Queues are addressed by URIs of the form
// sql://CONNECTION/QUEUE, where CONNECTION names an entry of a [Connections]
// map (postgres://… or sqlite://PATH).
package queue

import (
	"context"
	"errors"
	"time"
)

// ErrLeaseLost is returned by Ack, Extend, Release and Move when the
// delivery's lease has expired and the message was received again (or removed)
// since: the caller no longer owns it.
var ErrLeaseLost = errors.New("queue: lease lost")

// ErrNotLeased is returned by Ack, Extend, Release and Move for a delivery
// that carries no lease (lease token zero), such as one returned by Peek:
// settling it would touch a message that somebody else may receive.
var ErrNotLeased = errors.New("queue: delivery not leased (lease token 0)")

// Message is what a producer enqueues.
type Message struct {
	// MessageID identifies the message end to end (the envelope id). Required.
	MessageID string
	// Type is the message type name, stored for filtering and tooling.
	Type string
	// Priority orders visible messages: higher first, then oldest first.
	Priority int
	// Headers are small string properties stored beside the body.
	Headers map[string]string
	// Body is the opaque payload.
	Body []byte
	// VisibleAt defers the message until that time; zero means now.
	VisibleAt time.Time
}

// Delivery is a message received under a lease, or seen by Peek.
type Delivery struct {
	Message
	// ID is the store's row id: unique within one database, increasing.
	ID int64
	// Queue is the name of the queue the message was read from.
	Queue string
	// Attempts counts how many times the message has been received,
	// including this delivery. It is durable: kept in the row.
	Attempts int
	// EnqueuedAt is when the message entered the store.
	EnqueuedAt time.Time
	// LeaseToken proves ownership of the lease; zero for a peeked message
	// that is not leased.
	LeaseToken int64
	// HeadersErr is set when the stored headers could not be decoded (a row
	// written by something other than ferry); Headers is then nil. The
	// delivery is returned all the same, so that the receiver can move it
	// aside instead of the bad row blocking every receive.
	HeadersErr error
	// RawHeaders is the stored headers text, exactly as read, when it could
	// not be decoded (HeadersErr is set); empty otherwise. A receiver that
	// moves the message aside keeps it, since Headers is nil.
	RawHeaders string
}

// Counts describes how many messages a queue holds, by state.
type Counts struct {
	// Ready messages are visible now.
	Ready int64 `json:"ready"`
	// Deferred messages are not leased and become visible later.
	Deferred int64 `json:"deferred"`
	// InFlight messages are leased by a receiver whose lease has not ended.
	InFlight int64 `json:"inFlight"`
}

// Total is the number of messages in every state.
func (c Counts) Total() int64 { return c.Ready + c.Deferred + c.InFlight }

// ReleaseOptions say how a leased message goes back to its queue.
type ReleaseOptions struct {
	// Delay keeps the message invisible for this long.
	Delay time.Duration
	// Headers, when not nil, replace the stored headers (to record a failure).
	Headers map[string]string
	// Uncount takes this delivery back off the attempt count: the message
	// was given back unhandled (for example at shutdown), not tried.
	Uncount bool
}

// Queue is one named queue. Its methods are safe for concurrent use.
type Queue interface {
	// Name is the queue's name within its store.
	Name() string
	// URI is the queue's address, sql://CONNECTION/QUEUE when known.
	URI() string
	// Enqueue stores messages; they are visible at their VisibleAt.
	Enqueue(ctx context.Context, msgs ...Message) error
	// Receive leases up to max visible messages for lease, in priority order,
	// and increments their attempt counts. It returns at once, possibly empty.
	Receive(ctx context.Context, max int, lease time.Duration) ([]Delivery, error)
	// ReceiveWait is Receive that waits, without spinning, until at least
	// one message is visible or ctx ends.
	ReceiveWait(ctx context.Context, max int, lease time.Duration) ([]Delivery, error)
	// Extend renews a lease to end lease from now.
	Extend(ctx context.Context, d Delivery, lease time.Duration) error
	// Ack removes handled messages. It returns ErrLeaseLost (wrapped) when
	// any of them was no longer leased by these deliveries.
	Ack(ctx context.Context, ds ...Delivery) error
	// Release gives a leased message back to the queue.
	Release(ctx context.Context, d Delivery, opts ReleaseOptions) error
	// Move takes a leased message off this queue and into dst, with new
	// headers when headers is not nil. In dst the message starts afresh:
	// visible now, not leased, its attempt count zero.
	Move(ctx context.Context, d Delivery, dst Queue, headers map[string]string) error
	// Count returns the number of messages by state.
	Count(ctx context.Context) (Counts, error)
	// Peek lists up to limit messages with row id above afterID, in id order,
	// without leasing them.
	Peek(ctx context.Context, afterID int64, limit int) ([]Delivery, error)
	// Purge deletes every message that was in the queue when it started and
	// returns how many it deleted.
	Purge(ctx context.Context) (int64, error)
}
