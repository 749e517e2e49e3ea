// Package queue is ferry's storage layer: durable message queues kept in SQL
// tables, with leases (visibility timeouts), deferral, priority, a durable
// delivery count and wake-ups on enqueue.
//
// One table per database holds every queue, so a move between two queues of
// one database is a single UPDATE. Queues are addressed by URIs of the form
// sql://CONNECTION/QUEUE, where CONNECTION names an entry of a [Connections]
// map (postgres://… or sqlite://PATH).
//
// The SQL engine here (Open, the store and its queues) is the same for
// every database. What differs — statements, migrations, pools, wake-ups
// across processes, session locks, error classification — is in one
// package per database, queue/postgres and queue/sqlite, behind the
// engine's dialect interface (dialect.go).
package queue

import (
	"context"
	"database/sql"
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
	// OldestReady is when the oldest of the Ready messages entered the
	// store, zero when none is ready: now minus it is how long the queue's
	// head has waited (alerts and metrics report it as an age).
	OldestReady time.Time `json:"oldestReady,omitzero"`
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

// Handoff hands the rows of a fenced move over to their receiver already
// leased, so that the move is their delivery: the receiver reads them with
// ReceiveGiven instead of leasing them again, and settles them (Ack,
// Extend, Release) like any delivery it received. The zero Handoff hands
// nothing over: the rows arrive unleased, for Receive.
type Handoff struct {
	// Token is the lease token the moved rows get: the receiver's own,
	// which it passes to ReceiveGiven. Zero: no handoff.
	Token int64
	// For is how long their lease lasts from the move, as with Receive's
	// lease; required with a Token.
	For time.Duration
}

// Moved is one message as a move left it, for callers that follow each
// moved message on (tracing reads its trace context from the headers).
type Moved struct {
	// MessageID is the message's id (the envelope id).
	MessageID string
	// Headers are its headers after the move; nil when they could not be
	// decoded (written by a producer other than ferry).
	Headers map[string]string
}

// Queue is one named queue: every operation ferry performs on a queue, in
// small interfaces by role. Its methods are safe for concurrent use. A store
// implementation provides all of it and proves so with the contract suite in
// queue/queuetest.
type Queue interface {
	// Name is the queue's name within its store.
	Name() string
	// URI is the queue's address, sql://CONNECTION/QUEUE when known.
	URI() string
	// Store is the database the queue lives in.
	Store() Store
	Producer
	Consumer
	Mover
	Browser
}

// Producer puts messages into a queue.
type Producer interface {
	// Enqueue stores messages, all or none; they are visible at their VisibleAt.
	Enqueue(ctx context.Context, msgs ...Message) error
	// EnqueueTx stores messages inside the caller's transaction on this
	// queue's database (a *sql.Tx or *sqlx.Tx): they exist only if it commits.
	EnqueueTx(ctx context.Context, tx Execer, msgs ...Message) error
}

// Consumer leases messages and settles them.
type Consumer interface {
	// Receive leases up to max visible messages for lease, in priority order,
	// and increments their attempt counts. It returns at once, possibly empty.
	Receive(ctx context.Context, max int, lease time.Duration) ([]Delivery, error)
	// ReceiveGiven returns up to max of the queue's messages handed over
	// leased to token by a fenced move (see Handoff) whose lease has not
	// ended, in priority order, except the row ids in skip (those the
	// caller holds already). It only reads: the deliveries carry token as
	// their LeaseToken and their attempt counts as the move set them.
	ReceiveGiven(ctx context.Context, token int64, max int, skip []int64) ([]Delivery, error)
	// ReceiveWait is Receive that waits, without spinning, until at least
	// one message is visible or ctx ends.
	ReceiveWait(ctx context.Context, max int, lease time.Duration) ([]Delivery, error)
	// Take removes up to max visible messages and returns them, in
	// priority order, in one statement: for soft state that its sender
	// renews, which may be lost. A taken delivery has LeaseToken 0 and is
	// not settled (Ack, Extend, Release, Move refuse it): it is gone from
	// the queue already. It returns at once, possibly empty.
	Take(ctx context.Context, max int) ([]Delivery, error)
	// Wake returns a channel closed at the next enqueue signal for this
	// queue. Take it before Receive, so that a message enqueued in between
	// is not missed.
	Wake() <-chan struct{}
	// MaxPoll is the longest an idle receiver should wait between polls
	// when no wake-up arrives.
	MaxPoll() time.Duration
	// Paused reports whether the queue is paused (Pauses.PauseQueue), as
	// its store last saw: one small poll per store each second serves
	// every queue, so it is cheap to ask before every receive. Receive
	// itself ignores it: consumers ask.
	Paused() bool
	// Extend renews a lease to end lease from now.
	Extend(ctx context.Context, d Delivery, lease time.Duration) error
	// Ack removes handled messages. It returns ErrLeaseLost (wrapped) when
	// any of them was no longer leased by these deliveries.
	Ack(ctx context.Context, ds ...Delivery) error
	// AckTx removes a handled message inside the caller's transaction.
	AckTx(ctx context.Context, tx Execer, d Delivery) error
	// AckMany removes handled messages in as few statements as it can and
	// reports which it removed, by row id: a missing one had lost its lease.
	AckMany(ctx context.Context, ds []Delivery) (map[int64]bool, error)
	// Release gives a leased message back to the queue.
	Release(ctx context.Context, d Delivery, opts ReleaseOptions) error
	// MarkStarted records that a handler started on a redelivered message
	// with no recorded outcome, and returns how many such starts it has had.
	MarkStarted(ctx context.Context, d Delivery) (int, error)
}

// Mover takes messages from one queue to another.
type Mover interface {
	// Move takes a leased message off this queue and into dst, with new
	// headers when headers is not nil. In dst the message starts afresh:
	// visible now, not leased, its attempt count zero.
	Move(ctx context.Context, d Delivery, dst Queue, headers map[string]string) error
	// MoveReady moves up to limit visible messages, in receive order, to
	// dst, merging setHeaders into their headers, and returns how many.
	MoveReady(ctx context.Context, dst Queue, limit int, setHeaders map[string]string) (int, error)
	// MoveReadyFenced is MoveReady that acts only while fence's lock still
	// has its token, checked in the move itself where the store can, and
	// keeps attempt counts. With a non-zero handoff the moved messages
	// arrive leased to handoff.Token within the same statement, where dst
	// is in this database (see Handoff).
	MoveReadyFenced(ctx context.Context, dst Queue, limit int, setHeaders map[string]string, fence Fence, handoff Handoff) (int, error)
	// MoveReadyFencedRows is MoveReadyFenced that also returns the moved
	// messages, one per message moved, read back by the moving statement
	// itself (RETURNING) where dst is in this database. MoveReadyFenced
	// reads nothing back.
	MoveReadyFencedRows(ctx context.Context, dst Queue, limit int, setHeaders map[string]string, fence Fence, handoff Handoff) ([]Moved, error)
	// MoveRows moves the rows with the given ids (Delivery.ID) that are not
	// leased to dst, in batches, and returns how many it moved.
	MoveRows(ctx context.Context, rowIDs []int64, dst Queue, opts BulkOptions) (int, error)
	// ReleaseLeased makes every leased message of the queue visible again
	// (its holder is known to be gone) and returns how many.
	ReleaseLeased(ctx context.Context) (int, error)
	// ReleaseToken makes the queue's messages leased with token visible
	// again (handed over by a fenced move to a session known to be gone)
	// and returns how many; other leases stay. A zero token is refused
	// with ErrNotLeased.
	ReleaseToken(ctx context.Context, token int64) (int, error)
}

// Browser reads and administers a queue's messages without consuming them.
type Browser interface {
	// Count returns the number of messages by state.
	Count(ctx context.Context) (Counts, error)
	// Peek lists up to limit messages with row id above afterID, in id order,
	// without leasing them.
	Peek(ctx context.Context, afterID int64, limit int) ([]Delivery, error)
	// FindMessages returns the messages of the queue with these message ids.
	FindMessages(ctx context.Context, messageIDs []string) ([]Delivery, error)
	// LastRowID is the highest row id in the queue, 0 when empty.
	LastRowID(ctx context.Context) (int64, error)
	// DeleteRows deletes the rows with the given ids that are not leased and
	// returns how many it deleted.
	DeleteRows(ctx context.Context, rowIDs []int64, opts BulkOptions) (int, error)
	// Purge deletes every message that was in the queue when it started and
	// returns how many it deleted.
	Purge(ctx context.Context) (int64, error)
	// Expunge deletes the queue's messages that have been visible since
	// before a time (retention of an error queue), in statements of at most
	// batch rows (1 to MaxExpungeBatch) until none is left, and returns how
	// many it deleted. The time that counts is the row's visible_at, not its
	// enqueued_at: Move sets visible_at to the time of the move and keeps
	// enqueued_at (within one database), so for an error queue it is when the
	// message entered it. Leased messages (being retried or inspected) and
	// deferred ones are never deleted: their visible_at is in the future.
	Expunge(ctx context.Context, before time.Time, batch int) (int64, error)
}

// Store is one database holding any number of queues, with the records
// that ferry keeps beside them. Open returns one; a new kind of store
// implements it and passes the contract suite in queue/queuetest.
type Store interface {
	// Name is the connection name used in this store's queue URIs.
	Name() string
	// Dialect tells which kind of database the store runs on.
	Dialect() Dialect
	// Queue returns the queue called name in this store.
	Queue(name string) (Queue, error)
	// Queues lists the queues that hold messages, by name, with counts.
	Queues(ctx context.Context) ([]QueueInfo, error)
	// DB is the store's connection pool, for callers' own transactions
	// (EnqueueTx, AckTx, ClaimHandledTx run inside them).
	DB() *sql.DB
	// Migrate applies the embedded schema migrations not applied yet.
	Migrate(ctx context.Context) error
	// MigrateCount applies them too and returns how many it applied.
	MigrateCount(ctx context.Context) (int, error)
	// PendingMigrations lists the embedded migrations the database lacks,
	// oldest first. Its error wraps ErrUnmigrated when the database has no
	// schema version at all.
	PendingMigrations(ctx context.Context) ([]Migration, error)
	// RoundTrips returns how many statements the store has sent for queue
	// operations since it opened.
	RoundTrips() int64
	// Errors returns how many of the statements RoundTrips counts failed
	// (no row found is not a failure, nor a statement its caller cancelled).
	Errors() int64
	// RowWrites returns how many rows the store's INSERT, UPDATE and
	// DELETE statements for queue operations have written since it opened.
	RowWrites() int64
	// Close releases the store's connections.
	Close() error
	HandledRecords
	Subscriptions
	Locker
	WorkerRecords
	DistributorViews
	Pauses
}

// HandledRecords remember which messages an endpoint has handled, so that
// a copy delivered again is recognised (idempotent receive).
type HandledRecords interface {
	// ClaimHandledTx records inside tx that endpoint handled messageID and
	// reports false when it was recorded before (the copy is a duplicate).
	ClaimHandledTx(ctx context.Context, tx Execer, endpoint, messageID string) (bool, error)
	// MarkHandledTx records inside tx that endpoint handled messageID.
	MarkHandledTx(ctx context.Context, tx Execer, endpoint, messageID string) error
	// Handled reports whether endpoint has handled messageID.
	Handled(ctx context.Context, endpoint, messageID string) (bool, error)
	// ForgetHandled deletes the records made before a time and returns how many.
	ForgetHandled(ctx context.Context, before time.Time) (int64, error)
}

// Subscriptions map message types to the queues that subscribed to them.
type Subscriptions interface {
	// Subscribe adds queueURI as a subscriber of types.
	Subscribe(ctx context.Context, queueURI string, types ...string) error
	// Unsubscribe removes queueURI as a subscriber of types.
	Unsubscribe(ctx context.Context, queueURI string, types ...string) error
	// Subscriptions returns the subscriber queue URIs by message type.
	Subscriptions(ctx context.Context) (map[string][]string, error)
}

// Locker provides named leases with fencing tokens, for one active holder
// among several processes (the distributor and its standbys).
type Locker interface {
	// AcquireLock takes or renews the named lock for owner until ttl from
	// now and returns its fencing token, or 0 when another owner holds it.
	AcquireLock(ctx context.Context, name, owner string, ttl time.Duration) (int64, error)
	// OpenLockSession marks owner alive for lock name for as long as the
	// session lasts, so that its lock is free the moment it dies.
	OpenLockSession(ctx context.Context, name, owner string) (LockSession, error)
	// Unlock frees the named lock if owner holds it.
	Unlock(ctx context.Context, name, owner string) error
	// Fence returns the fence of lock name as held with token.
	Fence(name string, token int64) Fence
}

// LockSession is an owner's liveness for a lock (see Locker.OpenLockSession).
type LockSession interface {
	// Alive reports an error when the session is gone: a new one must be opened.
	Alive(ctx context.Context) error
	// Close ends the session, which frees its lock.
	Close() error
}

// WorkerRecords are the distributor's storage: the worker sessions it
// knows, kept so that a new active distributor starts with them.
type WorkerRecords interface {
	// RecordWorker stores (or refreshes) a worker session of the distributor
	// whose control queue is controlQueue.
	RecordWorker(ctx context.Context, controlQueue string, w WorkerRecord) error
	// Workers lists the worker sessions recorded for controlQueue.
	Workers(ctx context.Context, controlQueue string) ([]WorkerRecord, error)
	// ForgetWorker deletes a worker session's record.
	ForgetWorker(ctx context.Context, controlQueue, workerID, session string) error
}

// DistributorViews are what distributors record of themselves for
// `ferry workers`: soft state, rewritten every few seconds, that no
// distributor reads back.
type DistributorViews interface {
	// RecordDistributor stores (or refreshes) one distributor instance and
	// deletes the instances of its control queue last updated before
	// pruneBefore (processes that died without saying so).
	RecordDistributor(ctx context.Context, inst DistributorInstance, pruneBefore time.Time) error
	// ForgetDistributor deletes an instance's record (it stopped).
	ForgetDistributor(ctx context.Context, controlQueue, owner string) error
	// RecordWorkerView replaces the worker sessions recorded for
	// controlQueue with ws, all as of updated, in one transaction.
	RecordWorkerView(ctx context.Context, controlQueue string, updated time.Time, ws []WorkerView) error
	// DistributorView reads what is recorded for controlQueue.
	DistributorView(ctx context.Context, controlQueue string) (DistributorView, error)
}

// Pauses keep the queues whose consumers must stop taking messages.
type Pauses interface {
	// PauseQueue pauses the queue called name in this store: endpoints
	// stop receiving from it and distributors stop moving from or to it,
	// within about a second. Pausing a paused queue keeps its first time.
	PauseQueue(ctx context.Context, name string) error
	// ResumeQueue ends a pause; resuming a queue that is not paused is
	// not an error.
	ResumeQueue(ctx context.Context, name string) error
	// Paused lists the paused queues of this store, by name.
	Paused(ctx context.Context) ([]PausedQueue, error)
}
