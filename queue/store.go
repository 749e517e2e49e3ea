package queue

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

// Dialect names the SQL database behind a store.
type Dialect string

// The supported dialects.
const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
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

// Store is one database holding any number of queues.
type sqlStore struct {
	db *sqlx.DB
	// consume runs leases, acks, releases and moves. On PostgreSQL it is a
	// second pool whose sessions commit asynchronously (unless
	// Options.SyncConsume): those writes need not wait for a WAL flush,
	// because losing the last of them in a server crash only redelivers
	// messages. Enqueues and callers' transactions use db, durably.
	consume *sqlx.DB
	stmts   preparedStmts
	dialect Dialect
	dsn     string // as given, for errors and logs (redacted)
	pgDSN   string // with ferry's session defaults (postgresDSN)
	opts    Options
	log     *slog.Logger
	q       statements

	// writeMu serialises this process's writes to a SQLite file, so that
	// SQLite's busy handler is needed only between processes.
	writeMu sync.Mutex

	// ops counts the statements sent for queue operations (round trips).
	ops atomic.Int64

	signals  *signals
	channel  string // PostgreSQL NOTIFY channel of this schema
	listenMu sync.Mutex
	listener *pq.Listener
	health   *health // PostgreSQL health checks, started with the listener
}

// Open connects to a store. dsn is postgres://… (or postgresql://…) for
// PostgreSQL, or sqlite://PATH for a SQLite file (created when missing).
func Open(ctx context.Context, dsn string, opts Options) (Store, error) {
	s := &sqlStore{dsn: dsn, opts: opts, signals: newSignals()}
	s.log = opts.Logger
	if s.log == nil {
		s.log = slog.Default()
	}
	var err error
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s.dialect = Postgres
		s.pgDSN = postgresDSN(dsn)
		s.db, err = openPostgres(s.pgDSN, answerTimeout(s.pgDSN))
		if err != nil {
			return nil, fmt.Errorf("queue: open %s: %w", RedactDSN(dsn), err)
		}
		if s.opts.MaxConns <= 0 {
			s.opts.MaxConns = 20
		}
		if s.opts.MaxPoll <= 0 {
			s.opts.MaxPoll = time.Second
		}
	case strings.HasPrefix(dsn, "sqlite://"):
		s.dialect = SQLite
		file, err := sqliteDSN(dsn)
		if err != nil {
			return nil, err
		}
		s.db, err = sqlx.Open("sqlite3", file)
		if err != nil {
			return nil, fmt.Errorf("queue: open %s: %w", dsn, err)
		}
		if s.opts.MaxConns <= 0 {
			s.opts.MaxConns = 8
		}
		if s.opts.MaxPoll <= 0 {
			s.opts.MaxPoll = 250 * time.Millisecond
		}
	default:
		return nil, fmt.Errorf("queue: connection %q: want postgres://… or sqlite://PATH", RedactDSN(dsn))
	}
	s.db.SetMaxOpenConns(s.opts.MaxConns)
	s.db.SetMaxIdleConns(s.opts.MaxConns)
	s.db.SetConnMaxIdleTime(5 * time.Minute)
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("queue: %w %s: %w", ErrConnect, RedactDSN(dsn), err)
	}
	if s.dialect == Postgres {
		var schema string
		if err := s.db.GetContext(ctx, &schema, "SELECT current_schema()"); err != nil {
			s.db.Close()
			return nil, fmt.Errorf("queue: %w %s: %w", ErrConnect, RedactDSN(dsn), err)
		}
		s.channel = notifyChannel(schema)
	}
	s.consume = s.db
	if s.dialect == Postgres && !opts.SyncConsume {
		s.consume, err = openPostgres(consumeDSN(s.pgDSN, false), answerTimeout(s.pgDSN))
		if err != nil {
			s.db.Close()
			return nil, fmt.Errorf("queue: open %s: %w", RedactDSN(dsn), err)
		}
		s.consume.SetMaxOpenConns(s.opts.MaxConns)
		s.consume.SetMaxIdleConns(s.opts.MaxConns)
		s.consume.SetConnMaxIdleTime(5 * time.Minute)
	}
	s.q = newStatements(s.dialect, s.db)
	if opts.AutoMigrate {
		if err := s.Migrate(ctx); err != nil {
			s.db.Close()
			return nil, err
		}
	}
	return s, nil
}

// notifyChannel names the NOTIFY channel of a schema. PostgreSQL cuts
// identifiers at 63 bytes and refuses longer channel names, so a long schema
// name is replaced by a hash of it.
func notifyChannel(schema string) string {
	if ch := "ferry." + schema; len(ch) <= 63 {
		return ch
	}
	sum := sha256.Sum256([]byte(schema))
	return "ferry." + hex.EncodeToString(sum[:16])
}

// sqliteDSN turns sqlite://PATH[?params] into a go-sqlite3 DSN with the
// settings several processes need to share one file safely.
func sqliteDSN(dsn string) (string, error) {
	rest := strings.TrimPrefix(dsn, "sqlite://")
	path, query, _ := strings.Cut(rest, "?")
	if path == "" || path == ":memory:" {
		return "", fmt.Errorf("queue: connection %q: SQLite needs a file path (sqlite://./ferry.db)", dsn)
	}
	params, err := url.ParseQuery(query)
	if err != nil {
		return "", fmt.Errorf("queue: connection %q: %w", dsn, err)
	}
	defaults := map[string]string{
		"_journal_mode": "WAL",
		"_busy_timeout": "10000",
		"_txlock":       "immediate", // a transaction takes the write lock at BEGIN
		"_synchronous":  "NORMAL",
		// No statement cache (_stmt_cache_size): measured, it made Receive
		// slower at small batches and gained nothing end to end (BENCHMARKS.md).
	}
	for k, v := range defaults {
		if params.Get(k) == "" {
			params.Set(k, v)
		}
	}
	return "file:" + path + "?" + params.Encode(), nil
}

// kvPassword finds password=VALUE in a key/value connection string, the
// value bare or single-quoted.
var kvPassword = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)`)

// RedactDSN hides the password of a connection string, for logs and errors:
// in the user info or a password parameter of a URL, in a key/value string
// (host=… password=…), and in a URL too malformed to parse (its user info is
// hidden whole).
func RedactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		out := kvPassword.ReplaceAllString(dsn, "${1}xxxxx")
		if scheme, rest, ok := strings.Cut(out, "://"); ok {
			if at := strings.LastIndex(rest, "@"); at >= 0 {
				out = scheme + "://xxxxx" + rest[at:]
			}
		}
		return out
	}
	changed := false
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			changed = true
		}
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
		changed = true
	}
	if !changed {
		return dsn
	}
	return u.String()
}

// RoundTrips returns how many statements the store has sent for queue
// operations (enqueue, receive, ack, release, move, count, peek, notify…)
// since it opened: a measure of what each message costs.
func (s *sqlStore) RoundTrips() int64 { return s.ops.Load() }

// DB is the store's connection pool, for callers' own transactions.
func (s *sqlStore) DB() *sql.DB { return s.db.DB }

// Dialect tells which database the store runs on.
func (s *sqlStore) Dialect() Dialect { return s.dialect }

// Name is the connection name used in this store's queue URIs.
func (s *sqlStore) Name() string { return s.opts.Name }

// Close stops the wake-up listener and closes the pool.
func (s *sqlStore) Close() error {
	s.listenMu.Lock()
	if s.listener != nil {
		s.listener.Close()
		s.listener = nil
	}
	h := s.health
	s.health = nil
	s.listenMu.Unlock()
	if h != nil {
		h.stop()
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

// lockWrites serialises writes on SQLite; a no-op on PostgreSQL.
func (s *sqlStore) lockWrites() func() {
	if s.dialect != SQLite {
		return func() {}
	}
	s.writeMu.Lock()
	return s.writeMu.Unlock
}

// notify wakes receivers of queue in this process and, on PostgreSQL, in
// every process listening on the store's channel.
func (s *sqlStore) notify(ctx context.Context, queue string) {
	s.signals.fire(queue)
	if s.dialect == Postgres {
		s.ops.Add(1)
		if _, err := s.db.ExecContext(ctx, "SELECT pg_notify($1, $2)", s.channel, queue); err != nil {
			s.log.Warn("queue: notify failed; receivers will poll", "queue", queue, "err", err)
		}
	}
}

// wake returns a channel closed at the next enqueue signal for queue. On
// PostgreSQL it starts the LISTEN connection on first use.
func (s *sqlStore) wake(queue string) <-chan struct{} {
	if s.dialect == Postgres {
		s.startListener()
	}
	return s.signals.wait(queue)
}

func (s *sqlStore) startListener() {
	s.listenMu.Lock()
	defer s.listenMu.Unlock()
	if s.listener != nil {
		return
	}
	// The LISTEN connection waits for notifications for as long as there
	// are none: no answer timeout, only keepalives.
	s.listener = pq.NewDialListener(&pgDialer{}, s.pgDSN, 100*time.Millisecond, 10*time.Second, func(ev pq.ListenerEventType, err error) {
		switch ev {
		case pq.ListenerEventReconnected:
			s.signals.fireAll() // notifications may have been missed
		case pq.ListenerEventConnectionAttemptFailed:
			s.log.Debug("queue: LISTEN connection failed; receivers poll", "connection", s.opts.Name, "err", err)
		}
	})
	if err := s.listener.Listen(s.channel); err != nil {
		s.log.Warn("queue: LISTEN failed; receivers poll", "connection", s.opts.Name, "channel", s.channel, "err", err)
	}
	s.health = s.startHealth()
	go func(l *pq.Listener) {
		for n := range l.Notify {
			if n == nil { // reconnected: wake everybody
				s.signals.fireAll()
				continue
			}
			s.signals.fire(n.Extra)
		}
	}(s.listener)
}

// signals is an in-process broadcast per queue name.
type signals struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func newSignals() *signals { return &signals{m: map[string]chan struct{}{}} }

func (g *signals) wait(queue string) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch, ok := g.m[queue]
	if !ok {
		ch = make(chan struct{})
		g.m[queue] = ch
	}
	return ch
}

func (g *signals) fire(queue string) {
	g.mu.Lock()
	if ch, ok := g.m[queue]; ok {
		close(ch)
		delete(g.m, queue)
	}
	g.mu.Unlock()
}

func (g *signals) fireAll() {
	g.mu.Lock()
	for q, ch := range g.m {
		close(ch)
		delete(g.m, q)
	}
	g.mu.Unlock()
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us) }

// Execer runs a statement: *sql.DB, *sql.Tx, *sqlx.DB and *sqlx.Tx all are.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}
