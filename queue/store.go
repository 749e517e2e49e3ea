package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
)

// ErrConnect is returned (wrapped) when a store's database cannot be reached.
var ErrConnect = errors.New("cannot connect to")

// Options tune a store. The zero value is usable.
type Options struct {
	// Name is the connection name used in the URIs of this store's queues.
	Name string
	// AutoMigrate runs the embedded schema migrations when the store opens.
	AutoMigrate bool
	// MaxPoll is the longest an idle receiver waits between polls when no
	// wake-up arrives. Default: 1s on PostgreSQL (LISTEN/NOTIFY wakes it),
	// 250ms on SQLite (other processes cannot signal).
	MaxPoll time.Duration
	// MaxConns bounds the connection pool. Default 20 on PostgreSQL, 8 on SQLite.
	MaxConns int
	// SyncConsume makes leases, acks, releases and moves on PostgreSQL wait
	// for the WAL flush like enqueues do. By default they commit
	// asynchronously: after a database server crash the last few may be
	// lost, which redelivers those messages (at least once) but never loses
	// one. Measured: about +30% throughput (BENCHMARKS.md).
	SyncConsume bool
	// NoPrepare sends every statement unprepared. By default the hot
	// consumer statements (receive, ack, distribute) are prepared once per
	// connection on PostgreSQL; set it behind a pooler in transaction mode
	// (PgBouncer), where prepared statements do not survive.
	NoPrepare bool
	// Logger receives the store's own events. Default: slog.Default().
	Logger *slog.Logger
}

// sqlStore is a database holding queues: the SQL engine, the same for
// every database, driven by its dialect. It implements [Store].
type sqlStore struct {
	db *sqlx.DB
	// consume runs leases, acks, releases and moves. Where the dialect has
	// one (PostgreSQL) it is a second pool whose sessions commit
	// asynchronously (unless Options.SyncConsume): those writes need not
	// wait for a WAL flush, because losing the last of them in a server
	// crash only redelivers messages. Enqueues and callers' transactions
	// use db, durably. Otherwise it is db.
	consume *sqlx.DB
	stmts   preparedStmts
	kind    Dialect
	d       dialect
	dsn     string // as given, for errors and logs (redacted)
	opts    Options
	log     *slog.Logger
	q       statements
	// prepare is whether the hot statements are prepared (dialect.Prepares
	// and not Options.NoPrepare).
	prepare bool

	// writeMu serialises this process's writes where the dialect needs it
	// (SQLite), so that its busy handler is needed only between processes.
	writeMu      sync.Mutex
	serialWrites bool

	// ops counts the statements sent for queue operations (round trips).
	ops atomic.Int64
	// writes counts the rows those statements inserted, updated or deleted.
	writes atomic.Int64
	// errs counts the statements among ops that failed.
	errs atomic.Int64

	signals  *signals
	channel  string // the dialect's wake-up channel; "" when it has none
	listenMu sync.Mutex
	listener io.Closer // the dialect's LISTEN connection, started on first Wake

	pauses pauseWatcher // paused queues, read once a second (pause.go)
}

// Open connects to a store. dsn is postgres://… (or postgresql://…) for
// PostgreSQL, or sqlite://PATH for a SQLite file (created when missing).
func Open(ctx context.Context, dsn string, opts Options) (Store, error) {
	kind, ok := dialectOf(dsn)
	if !ok {
		return nil, fmt.Errorf("queue: connection %q: want postgres://… or sqlite://PATH", RedactDSN(dsn))
	}
	d, err := kind.open(dsn)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	s := &sqlStore{kind: kind.name, d: d, dsn: dsn, opts: opts, signals: newSignals(), serialWrites: d.SerialWrites()}
	s.log = opts.Logger
	if s.log == nil {
		s.log = slog.Default()
	}
	s.prepare = d.Prepares() && !opts.NoPrepare
	if s.db, err = d.OpenDB(); err != nil {
		return nil, fmt.Errorf("queue: open %s: %w", RedactDSN(dsn), err)
	}
	if s.opts.MaxConns <= 0 {
		s.opts.MaxConns = d.DefaultMaxConns()
	}
	if s.opts.MaxPoll <= 0 {
		s.opts.MaxPoll = d.DefaultMaxPoll()
	}
	setPool(s.db, s.opts.MaxConns)
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("queue: %w %s: %w", ErrConnect, RedactDSN(dsn), err)
	}
	if s.channel, err = d.Channel(ctx, s.db); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("queue: %w %s: %w", ErrConnect, RedactDSN(dsn), err)
	}
	s.consume = s.db
	if !opts.SyncConsume {
		consume, err := d.OpenConsume()
		if err != nil {
			s.db.Close()
			return nil, fmt.Errorf("queue: open %s: %w", RedactDSN(dsn), err)
		}
		if consume != nil {
			setPool(consume, s.opts.MaxConns)
			s.consume = consume
		}
	}
	s.q = newStatements(d)
	if opts.AutoMigrate {
		if err := s.Migrate(ctx); err != nil {
			s.db.Close()
			return nil, err
		}
	}
	return s, nil
}

// setPool bounds a pool to n connections, all of which may stay idle.
func setPool(db *sqlx.DB, n int) {
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(5 * time.Minute)
}

// RoundTrips returns how many statements the store has sent for queue
// operations (enqueue, receive, ack, release, move, count, peek, notify…)
// since it opened: a measure of what each message costs.
func (s *sqlStore) RoundTrips() int64 { return s.ops.Load() }

// Errors returns how many of the statements RoundTrips counts failed
// (no row found is not a failure, nor a statement its caller cancelled):
// with RoundTrips, an error rate for metrics and alerts.
func (s *sqlStore) Errors() int64 { return s.errs.Load() }

// failed counts err, the outcome of a statement RoundTrips counted, when it
// is a failure.
func (s *sqlStore) failed(ctx context.Context, err error) {
	if err == nil || errors.Is(err, sql.ErrNoRows) || errors.Is(ctx.Err(), context.Canceled) {
		return
	}
	s.errs.Add(1)
}

// RowWrites returns how many rows the store's writes for queue operations
// (enqueue, receive, ack, release, move, records…) have inserted, updated
// or deleted since it opened: with RoundTrips, what each message costs the
// database.
func (s *sqlStore) RowWrites() int64 { return s.writes.Load() }

// wrote counts n rows written by a statement.
func (s *sqlStore) wrote(n int64) { s.writes.Add(n) }

// wroteResult counts the rows res reports affected.
func (s *sqlStore) wroteResult(res sql.Result) {
	if n, err := res.RowsAffected(); err == nil {
		s.writes.Add(n)
	}
}

// DB is the store's connection pool, for callers' own transactions.
func (s *sqlStore) DB() *sql.DB { return s.db.DB }

// Dialect tells which database the store runs on.
func (s *sqlStore) Dialect() Dialect { return s.kind }

// Name is the connection name used in this store's queue URIs.
func (s *sqlStore) Name() string { return s.opts.Name }

// Close stops the wake-up listener and closes the pools.
func (s *sqlStore) Close() error {
	s.pauses.close()
	s.listenMu.Lock()
	l := s.listener
	s.listener = nil
	s.listenMu.Unlock()
	if l != nil {
		l.Close()
	}
	s.closeStmts()
	if s.consume != s.db {
		s.consume.Close()
	}
	return s.db.Close()
}

// Queue returns the queue called name in this store.
func (s *sqlStore) Queue(name string) (Queue, error) {
	return s.queue(name)
}

// queue is Queue with the concrete type, for the store's own use.
func (s *sqlStore) queue(name string) (*sqlQueue, error) {
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	return &sqlQueue{store: s, name: name}, nil
}

// QueueInfo is one queue of a store with its counts.
type QueueInfo struct {
	Name string `json:"name"`
	Counts
}

// Queues lists the queues that hold messages, by name.
func (s *sqlStore) Queues(ctx context.Context) ([]QueueInfo, error) {
	now := micros(time.Now())
	rows, err := s.db.QueryxContext(ctx, s.q.queues, now, now, now)
	if err != nil {
		return nil, fmt.Errorf("queue: list queues: %w", err)
	}
	defer rows.Close()
	var out []QueueInfo
	for rows.Next() {
		var qi QueueInfo
		if err := rows.Scan(&qi.Name, &qi.Ready, &qi.Deferred, &qi.InFlight); err != nil {
			return nil, fmt.Errorf("queue: list queues: %w", err)
		}
		out = append(out, qi)
	}
	return out, rows.Err()
}

// lockWrites serialises this process's writes where the dialect needs it
// (SQLite); a no-op elsewhere.
func (s *sqlStore) lockWrites() func() {
	if !s.serialWrites {
		return func() {}
	}
	s.writeMu.Lock()
	return s.writeMu.Unlock
}

// execConsume runs a consumer-side write (lease, release, move) on the
// consume pool, serialised where the dialect needs it.
func (s *sqlStore) execConsume(ctx context.Context, query string, args ...any) (sql.Result, error) {
	defer s.lockWrites()()
	s.ops.Add(1)
	res, err := s.consume.ExecContext(ctx, query, args...)
	s.failed(ctx, err)
	if err == nil {
		s.wroteResult(res)
	}
	return res, err
}

// exec runs a write on the pool, serialised where the dialect needs it.
func (s *sqlStore) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	defer s.lockWrites()()
	s.ops.Add(1)
	res, err := s.db.ExecContext(ctx, query, args...)
	s.failed(ctx, err)
	if err == nil {
		s.wroteResult(res)
	}
	return res, err
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us) }

// Execer runs a statement: *sql.DB, *sql.Tx, *sqlx.DB and *sqlx.Tx all are.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}
