package queue

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"time"

	"github.com/ferrybus/ferry/queue/postgres"
	"github.com/ferrybus/ferry/queue/sqlite"
	"github.com/jmoiron/sqlx"
)

// Dialect names the SQL database behind a store.
type Dialect string

// The supported dialects.
const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// dialectKind is one SQL database the engine runs on: the connection
// string schemes that select it, and what it knows before a store opens.
type dialectKind struct {
	name       Dialect
	schemes    []string // DSN prefixes, such as "postgres://"
	open       func(dsn string) (dialect, error)
	migrations func() fs.FS // holding migrations/NNNN_name.sql
	// transient classifies the driver's own errors: known is false for
	// an error that is not the driver's.
	transient    func(err error) (transient, known bool)
	missingTable func(err error) bool
}

// dialectKinds lists the supported databases. A third one is one package
// (satisfying dialect) and one line here.
func dialectKinds() []dialectKind {
	return []dialectKind{
		{Postgres, []string{"postgres://", "postgresql://"}, opener(postgres.New), postgres.Migrations, postgres.IsTransient, postgres.IsMissingTable},
		{SQLite, []string{"sqlite://"}, opener(sqlite.New), sqlite.Migrations, sqlite.IsTransient, sqlite.IsMissingTable},
	}
}

// opener turns a dialect package's constructor into dialectKind.open.
func opener[D dialect](newDialect func(dsn string) (D, error)) func(string) (dialect, error) {
	return func(dsn string) (dialect, error) { return newDialect(dsn) }
}

// dialectOf picks the dialect of a connection string by its scheme.
func dialectOf(dsn string) (dialectKind, bool) {
	for _, k := range dialectKinds() {
		for _, scheme := range k.schemes {
			if strings.HasPrefix(dsn, scheme) {
				return k, true
			}
		}
	}
	return dialectKind{}, false
}

// kindOf returns the registered dialect called name.
func kindOf(name Dialect) (dialectKind, bool) {
	for _, k := range dialectKinds() {
		if k.name == name {
			return k, true
		}
	}
	return dialectKind{}, false
}

// session is an owner's liveness for a lock, as a dialect keeps it
// (LockSession, in a type the dialect packages can name too).
type session = interface {
	Alive(ctx context.Context) error
	Close() error
}

// dialect is what the SQL engine (sqlStore, sqlQueue) needs from one
// database: its SQL, its pools and the behaviour that differs between
// databases. Each database implements it in a package of its own
// (queue/postgres, queue/sqlite), which does not import queue.
//
// Statements use the database's own placeholders. Their arguments, in
// order, are given below; every time is in Unix microseconds, and a list
// parameter is made by IDList or TextList. A statement "returning
// deliveryColumns" returns id, message_id, type, priority, attempts,
// enqueued_at, visible_at, lease_token, headers, body, in the order
// sqlQueue.scan reads them.
type dialect interface {
	// DefaultMaxConns is the pool size when Options.MaxConns is not set.
	DefaultMaxConns() int
	// DefaultMaxPoll is Options.MaxPoll when not set: short where other
	// processes cannot wake receivers.
	DefaultMaxPoll() time.Duration
	// OpenDB opens the main pool (enqueues, callers' transactions).
	OpenDB() (*sqlx.DB, error)
	// OpenConsume opens the pool of ferry's own consumer writes (leases,
	// acks, releases, moves) when they may commit asynchronously; nil when
	// the dialect has no such pool, and they use the main one.
	OpenConsume() (*sqlx.DB, error)
	// Channel names the channel of wake-ups across processes for the
	// database db is connected to; "" when the database has none.
	Channel(ctx context.Context, db *sqlx.DB) (string, error)
	// Listen starts receiving the wake-ups of channel (and, with them, the
	// dialect's health checks), calling wake with a notified queue's name,
	// and wakeAll when notifications may have been missed or the database
	// answers again. Closing the result stops it all.
	Listen(channel, connection, shownDSN string, log *slog.Logger, wake func(queue string), wakeAll func()) io.Closer
	// Prepares says whether the hot consumer statements are worth
	// preparing once per connection.
	Prepares() bool
	// SerialWrites says whether this process's writes must take turns
	// (one writer at a time per database file).
	SerialWrites() bool
	// OpenSession marks owner alive for lock name while the session lasts
	// (see Locker.OpenLockSession); nil, nil when the dialect cannot.
	OpenSession(ctx context.Context, db *sqlx.DB, name, owner string) (session, error)
	// DeadHolder returns the holder of lock name, other than owner, whose
	// lease has not ended but whose session is gone, and a release to
	// call once the lock is taken over; "" and a no-op release otherwise
	// (or when the acquire statement tells for itself).
	DeadHolder(ctx context.Context, db *sqlx.DB, name, owner string) (string, func(), error)
	// ForgetSession cleans up what owner's session of lock name left
	// behind, once the lock is freed.
	ForgetSession(name, owner string)
	// IsMalformedJSON reports whether a statement failed because a row's
	// stored headers are not valid JSON.
	IsMalformedJSON(err error) bool

	// Receive leases rows: (visible until, lease token, queue, now, limit),
	// returning deliveryColumns.
	Receive() string
	// Take deletes visible rows and returns them: (queue, now, limit),
	// returning deliveryColumns with attempts counting this delivery and
	// lease token 0. Concurrent takers get disjoint rows.
	Take() string
	// MoveReady moves visible rows: (dst queue, headers patch, queue, now,
	// limit), and with fenced also (lock name, token); the fenced move keeps
	// attempt counts. When notifies is set the statement also wakes dst's
	// receivers in other processes, taking (channel, dst queue) last, and
	// returns one row with the count moved.
	MoveReady(fenced bool) (query string, notifies bool)
	// MoveHandoff is the fenced MoveReady that also leases the moved rows
	// for their receiver: (dst queue, lease token, visible until, headers
	// patch, queue, now, limit, lock name, token), then (channel, dst
	// queue) when notifies is set; it counts the move as a delivery
	// (attempts + 1), as the receive it replaces would have.
	MoveHandoff() (query string, notifies bool)
	// MoveReturning is MoveReady (fenced or not) or, with handoff,
	// MoveHandoff, returning one row (message_id, headers) per moved row,
	// headers as moved, instead of a count: the same arguments, and it
	// wakes dst where they do.
	MoveReturning(fenced, handoff bool) string
	// ReceiveGiven reads, without writing, the rows handed over to a lease
	// token: (queue, lease token, now, ids to skip, limit), returning
	// deliveryColumns in receive order.
	ReceiveGiven() string
	// Insert stores n messages: 8 arguments each (queue, message id, type,
	// priority, visible at, enqueued at, headers, body), then (channel,
	// queue) when notify is set and the dialect has a channel.
	Insert(n int, notify bool) string
	// Notify wakes a queue's receivers in other processes: (channel,
	// queue); "" when the dialect has no channel.
	Notify() string
	// AckMaxPairs is how many (id, lease token) pairs one Ack statement
	// takes as separate arguments, id then token; 0 when Ack takes them
	// all as two list arguments (ids, tokens).
	AckMaxPairs() int
	// Ack deletes n (id, lease token) pairs.
	Ack(n int) string
	// AckMany deletes the pairs of AckManyArgs and returns each deleted id.
	AckMany() string
	// AckManyArgs gives AckMany its arguments.
	AckManyArgs(ids, tokens []int64) []any
	// SettleSQL is the SQL of settling one delivery, each matching (…, id,
	// lease token) last: extend (visible until, …), release (visible at,
	// uncount 0/1, headers or NULL, the same again, …), moveOne (dst queue,
	// now, headers or NULL, …), markStarted (…, returning started), ackOne
	// (…); and releaseLeased (now, queue, now).
	SettleSQL() (extend, release, moveOne, markStarted, ackOne, releaseLeased string)
	// ReleaseTokenSQL ends the leases of a queue's messages held with one
	// lease token (now, queue, token, now).
	ReleaseTokenSQL() string
	// BrowseSQL is the SQL of reading a queue: count (now, now, now,
	// queue), peek (queue, after id, limit), maxID (queue), purge (queue,
	// max id, limit), queues (now, now, now), find (queue, message ids).
	BrowseSQL() (count, peek, maxID, purge, queues, find string)
	// ExpungeSQL deletes a queue's rows visible since before a time (queue,
	// before, queue, before, limit), rechecking the conditions on the rows
	// it deletes.
	ExpungeSQL() string
	// RowSQL is the SQL of bulk row operations: move (dst queue, now,
	// dropped header names, queue, ids, now), lease (token, visible until,
	// queue, ids, now; returning deliveryColumns), deleteLeased (token,
	// ids), unlease (now, token, ids), delete (queue, ids, now).
	RowSQL() (move, lease, deleteLeased, unlease, del string)
	// IDList makes one list argument of row ids.
	IDList(ids []int64) any
	// TextList makes one list argument of strings.
	TextList(xs []string) any
	// LockSQL is the SQL of named locks: acquire (name, owner, expires at,
	// first token, now; returning the token), acquireTakeOver (the same,
	// then a dead holder to take over; "" when DeadHolder never finds
	// one), unlock (name, owner), held (name, token; returning a count).
	LockSQL() (acquire, acquireTakeOver, unlock, held string)
	// FenceRowsSQL is the fenced move row by row, in one transaction:
	// check (lock name, token; a row while held), pick (queue, now, limit;
	// id, message_id and headers, locked), moveRow (dst queue, headers, id).
	FenceRowsSQL() (check, pick, moveRow string)
	// WorkerSQL is the SQL of WorkerRecords: record (control queue, worker
	// id, session, inbox, last seen), list (control queue), forget
	// (control queue, worker id, session).
	WorkerSQL() (record, list, forget string)
	// ViewSQL is the SQL of DistributorViews: recordInstance (control
	// queue, owner, name, host, pid, active, interval µs, reclaimAfter µs,
	// updated), pruneInstances (control queue, updated before),
	// forgetInstance (control queue, owner), instances (control queue),
	// clearWorkers (control queue), insertWorker (control queue, worker
	// id, session, inbox, threads, idle, last seen, depth, stopping,
	// updated), workers (control queue).
	ViewSQL() (recordInstance, pruneInstances, forgetInstance, instances, clearWorkers, insertWorker, workers string)
	// PauseSQL is the SQL of paused queues: pause (queue, paused at),
	// resume (queue), list.
	PauseSQL() (pause, resume, list string)
	// SubscriptionSQL: subscribe (type, queue URI, created at),
	// unsubscribe (type, queue URI), list.
	SubscriptionSQL() (subscribe, unsubscribe, list string)
	// HandledSQL: claim (endpoint, message id, handled at; one row affected
	// when new), handled (endpoint, message id; a count), forget (before,
	// before, limit: at most limit records).
	HandledSQL() (claim, handled, forget string)
	// MigrateSQL: lock (taken in the migration's transaction; "" when
	// beginning it locks enough), create (the version table), versions,
	// record (version, name, applied at).
	MigrateSQL() (lock, create, versions, record string)
}
