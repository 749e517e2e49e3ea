// Package control is the protocol between workers and their distributor: the
// messages a worker sends to the distributor's control inbox, and the rules
// both sides follow about them. Package worker sends them; package
// distributor decodes them into its registry of worker sessions.
//
// A worker runs in sessions. Each session has a new id, a UUIDv7, so a later
// session of a worker sorts after an earlier one: the distributor compares
// session ids as strings, lets a newer session replace an older one (and its
// availabilities) at once, and ignores messages of an older session that
// arrive late. Every message carries the worker id, the session and the URI
// of the worker's own work queue, so any one of them is enough to (re)learn
// the session.
//
// During a session a worker sends:
//
//   - [Started] once, when the session begins;
//   - one [ThreadAvailable] per idle thread, repeated every interval while the
//     thread stays idle. Availabilities are keyed by (worker, thread), so a
//     repeat renews the entry instead of adding one, and each holds for
//     ValidFor from SentAt unless renewed: a dead worker's availabilities
//     lapse and it receives no more work. For each availability the
//     distributor moves a batch of messages into the worker's queue;
//   - a [Heartbeat] every interval while no thread is idle, so a busy worker
//     is not taken for a dead one (the distributor returns the queue of a
//     worker silent for too long to its inbox);
//   - [Stopping] on a graceful stop: the session takes no more work and the
//     distributor returns what is left in the worker's queue at once.
//
// Every control message expires on the bus after [Lifetime] of the worker's
// interval: one that waited longer in the control queue could only mislead.
//
// On the wire each message is the JSON object of its struct, named by the
// type name constants below. Both are fixed: workers and distributors of
// different versions talk to each other.
package control

import "time"

// Message type names on the bus, one per control message.
const (
	// TypeStarted names [Started].
	TypeStarted = "ferry.worker.started"
	// TypeThreadAvailable names [ThreadAvailable].
	TypeThreadAvailable = "ferry.worker.thread-available"
	// TypeHeartbeat names [Heartbeat].
	TypeHeartbeat = "ferry.worker.heartbeat"
	// TypeStopping names [Stopping].
	TypeStopping = "ferry.worker.stopping"
)

// DefaultInterval is how often a worker repeats its availabilities and
// heartbeats unless configured otherwise.
const DefaultInterval = 15 * time.Second

// Lifetime is how long a control message of a worker that announces every
// interval holds: an availability's ValidFor, and every control message's
// expiry on the bus. Three intervals, so that a renewal or two lost or late
// do not take an idle thread out of distribution.
func Lifetime(interval time.Duration) time.Duration { return 3 * interval }

// Started announces a worker session.
type Started struct {
	// WorkerID identifies the worker among the distributor's workers.
	WorkerID string `json:"workerId"`
	// Session is the id of the new session, a UUIDv7.
	Session string `json:"session"`
	// Inbox is the URI of the worker's work queue, where the distributor moves work.
	Inbox string `json:"inbox"`
	// Threads is how many handler threads the worker runs.
	Threads int `json:"threads"`
	// SentAt is when the worker sent the message.
	SentAt time.Time `json:"sentAt"`
}

// MessageType names the message on the bus.
func (Started) MessageType() string { return TypeStarted }

// ThreadAvailable says one thread of a worker session is idle and wants work.
type ThreadAvailable struct {
	// WorkerID identifies the worker among the distributor's workers.
	WorkerID string `json:"workerId"`
	// Session is the id of the worker's current session.
	Session string `json:"session"`
	// Inbox is the URI of the worker's work queue, where the distributor moves work.
	Inbox string `json:"inbox"`
	// Thread is the number of the idle thread within the worker.
	Thread int `json:"thread"`
	// SentAt is when the worker sent the message; ValidFor counts from it.
	SentAt time.Time `json:"sentAt"`
	// ValidFor is how long the availability holds unless renewed. Zero (a
	// worker that predates the field) means Lifetime(DefaultInterval).
	ValidFor time.Duration `json:"validFor"`
	// Handoff is the session's handoff token: the distributor moves the
	// work for this availability into the worker's queue already leased to
	// it, for Lease, and the worker reads it instead of leasing it again.
	// Zero (a worker that predates the field) asks for work unleased; a
	// distributor that predates it moves work unleased, which the worker
	// receives as ever.
	Handoff int64 `json:"handoff,omitempty"`
	// Lease is how long the handed-over work stays leased to Handoff: the
	// worker's lease, which it renews from then on.
	Lease time.Duration `json:"lease,omitempty"`
}

// MessageType names the message on the bus.
func (ThreadAvailable) MessageType() string { return TypeThreadAvailable }

// Expires is when the availability lapses unless renewed: ValidFor after
// SentAt.
func (a ThreadAvailable) Expires() time.Time {
	validFor := a.ValidFor
	if validFor <= 0 {
		validFor = Lifetime(DefaultInterval)
	}
	return a.SentAt.Add(validFor)
}

// Availabilities returns the batch of availabilities a worker session sends
// for its idle threads: one copy of a per thread, in the order given, with
// Thread set.
func Availabilities(a ThreadAvailable, threads []int) []any {
	msgs := make([]any, len(threads))
	for i, t := range threads {
		a.Thread = t
		msgs[i] = a
	}
	return msgs
}

// Heartbeat says a worker session is alive while all its threads are busy.
type Heartbeat struct {
	// WorkerID identifies the worker among the distributor's workers.
	WorkerID string `json:"workerId"`
	// Session is the id of the worker's current session.
	Session string `json:"session"`
	// Inbox is the URI of the worker's work queue.
	Inbox string `json:"inbox"`
	// SentAt is when the worker sent the message.
	SentAt time.Time `json:"sentAt"`
}

// MessageType names the message on the bus.
func (Heartbeat) MessageType() string { return TypeHeartbeat }

// Stopping says a worker session ends: it takes no more work, and what is
// left in its queue may be returned to the distributor's inbox.
type Stopping struct {
	// WorkerID identifies the worker among the distributor's workers.
	WorkerID string `json:"workerId"`
	// Session is the id of the session that ends.
	Session string `json:"session"`
	// Inbox is the URI of the worker's work queue.
	Inbox string `json:"inbox"`
	// SentAt is when the worker sent the message.
	SentAt time.Time `json:"sentAt"`
}

// MessageType names the message on the bus.
func (Stopping) MessageType() string { return TypeStopping }
