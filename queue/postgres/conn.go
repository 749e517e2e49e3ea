package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// Defaults for PostgreSQL sessions, each overridden by the same parameter
// in the connection string. Without them a server that accepts TCP and
// never answers hangs a caller for ever.
var pgDefaults = []struct{ key, value string }{
	{"connect_timeout", "5"},     // seconds, TCP connect and start-up handshake
	{"statement_timeout", "30s"}, // no ferry statement takes nearly that long
	{"lock_timeout", "10s"},      // a lock held elsewhere fails the statement instead of queueing it
	{"binary_parameters", "yes"}, // see postgresDSN
}

// consumeIdleInTx ends ferry's own consumer sessions left idle in a
// transaction (they never are on purpose), so that they cannot hold back
// vacuum. Callers' transactions (DB, HandleTx) are not given it.
const consumeIdleInTx = "60s"

// answerMargin is added to statement_timeout to bound how long a
// connection waits for any answer of the server: past it the connection
// is taken as dead, even if the server cannot say so itself (frozen,
// partitioned away).
const answerMargin = 5 * time.Second

// TCP keepalive probes of every connection: a peer gone silent is noticed
// in about Idle + Count*Interval.
var pgKeepAlive = net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3}

// postgresDSN adds ferry's session defaults (pgDefaults) to a postgres://
// URL, keeping every parameter the URL sets itself, directly or as
// options=-c key=value. binary_parameters=yes makes lib/pq send Parse, Bind
// and Execute in one round trip instead of waiting for the statement
// description first (measured: +20% throughput, half the latency per
// statement; see BENCHMARKS.md).
func postgresDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn // lib/pq reports it
	}
	q := u.Query()
	for _, d := range pgDefaults {
		if !q.Has(d.key) && optionValue(q.Get("options"), d.key) == "" {
			q.Set(d.key, d.value)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// consumeDSN is the DSN of ferry's consumer pool: asynchronous commits and
// an idle-in-transaction timeout, unless the DSN sets one.
func consumeDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	q := u.Query()
	opt := q.Get("options") + " -c synchronous_commit=off"
	if !q.Has("idle_in_transaction_session_timeout") && optionValue(opt, "idle_in_transaction_session_timeout") == "" {
		opt += " -c idle_in_transaction_session_timeout=" + consumeIdleInTx
	}
	q.Set("options", strings.TrimSpace(opt))
	u.RawQuery = q.Encode()
	return u.String()
}

// optionValue finds -c key=value (or --key=value) in a PostgreSQL options string.
func optionValue(options, key string) string {
	f := strings.Fields(options)
	for i := 0; i < len(f); i++ {
		kv := f[i]
		switch {
		case kv == "-c" && i+1 < len(f):
			i++
			kv = f[i]
		case strings.HasPrefix(kv, "-c"):
			kv = kv[2:]
		case strings.HasPrefix(kv, "--"):
			kv = kv[2:]
		default:
			continue
		}
		if k, v, ok := strings.Cut(kv, "="); ok && strings.ReplaceAll(k, "-", "_") == key {
			return v
		}
	}
	return ""
}

// answerTimeout is how long a connection of dsn (as postgresDSN made it)
// waits for an answer: statement_timeout plus a margin, or 0 (for ever)
// when statement_timeout is 0 or cannot be read.
func answerTimeout(dsn string) time.Duration {
	u, err := url.Parse(dsn)
	if err != nil {
		return 0
	}
	q := u.Query()
	v := q.Get("statement_timeout")
	if o := optionValue(q.Get("options"), "statement_timeout"); o != "" {
		v = o
	}
	d, err := pgDuration(v)
	if err != nil || d <= 0 {
		return 0
	}
	return d + answerMargin
}

// pgDuration parses a PostgreSQL time setting: a number of milliseconds,
// or a number with a unit (us, ms, s, min, h, d).
func pgDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	i := strings.IndexFunc(v, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := v, ""
	if i >= 0 {
		num, unit = v[:i], strings.TrimSpace(v[i:])
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("time setting %q: %w", v, err)
	}
	per := map[string]time.Duration{"": time.Millisecond, "us": time.Microsecond, "ms": time.Millisecond,
		"s": time.Second, "min": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[unit]
	if per == 0 {
		return 0, fmt.Errorf("time setting %q: unknown unit %q", v, unit)
	}
	return time.Duration(n * float64(per)), nil
}

// openPostgres opens a pool on dsn whose connections use TCP keepalives
// and give up on a server that does not answer within answer (0: never).
func openPostgres(dsn string, answer time.Duration) (*sqlx.DB, error) {
	c, err := pq.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	c.Dialer(&pgDialer{answer: answer})
	return sqlx.NewDb(sql.OpenDB(c), "postgres"), nil
}

// pgDialer dials PostgreSQL with TCP keepalives, and wraps each connection
// so that a read waiting for an answer fails after answer without a byte.
type pgDialer struct{ answer time.Duration }

func (d *pgDialer) dialer() *net.Dialer { return &net.Dialer{KeepAliveConfig: pgKeepAlive} }

// Dial implements pq.Dialer.
func (d *pgDialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// DialTimeout implements pq.Dialer.
func (d *pgDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

// DialContext implements pq.DialerContext.
func (d *pgDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := d.dialer().DialContext(ctx, network, address)
	if err != nil || d.answer <= 0 {
		return c, err
	}
	return &answerConn{Conn: c, answer: d.answer}, nil
}

// answerConn bounds the wait for the server's answer: each write (a
// request) and each read that brings bytes (progress) push the read
// deadline to answer from now. lib/pq reads only when it expects an
// answer, so an idle pooled connection is never cut. A deadline the driver
// sets itself (connect_timeout during the handshake) is left alone.
type answerConn struct {
	net.Conn
	answer   time.Duration
	mu       sync.Mutex
	explicit bool      // the driver set a deadline of its own
	set      time.Time // when the read deadline was last pushed
}

func (c *answerConn) push() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.explicit {
		return
	}
	now := time.Now()
	// Pushing costs a timer update: skip it while the last push is fresh.
	if now.Sub(c.set) < c.answer/16 {
		return
	}
	c.set = now
	_ = c.Conn.SetReadDeadline(now.Add(c.answer))
}

func (c *answerConn) Write(b []byte) (int, error) {
	c.push()
	return c.Conn.Write(b)
}

func (c *answerConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.push()
	}
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		c.mu.Lock()
		own := !c.explicit
		c.mu.Unlock()
		var oe *net.OpError
		if own && errors.As(err, &oe) {
			// Still a *net.OpError: lib/pq then marks the connection bad.
			cp := *oe
			cp.Err = &noAnswerError{after: c.answer, err: oe.Err}
			err = &cp
		}
	}
	return n, err
}

// noAnswerError is a read that timed out waiting for the server.
type noAnswerError struct {
	after time.Duration
	err   error
}

func (e *noAnswerError) Error() string {
	return fmt.Sprintf("database did not answer within %s (%v)", e.after, e.err)
}
func (e *noAnswerError) Unwrap() error   { return e.err }
func (e *noAnswerError) Timeout() bool   { return true }
func (e *noAnswerError) Temporary() bool { return false }

func (c *answerConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.explicit, c.set = !t.IsZero(), time.Time{}
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *answerConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.explicit, c.set = !t.IsZero(), time.Time{}
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}
