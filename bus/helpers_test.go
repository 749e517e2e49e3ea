package bus_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/faultproxy"
	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// forEachStore runs fn once on a fresh SQLite file and once on a fresh
// PostgreSQL schema, each as connection "default".
func forEachStore(t *testing.T, fn func(t *testing.T, conns *queue.Connections)) {
	for _, d := range testdb.Dialects() {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			conns := queue.NewConnections(map[string]string{"default": testdb.DSN(t, d)},
				queue.Options{AutoMigrate: true, MaxPoll: 100 * time.Millisecond})
			t.Cleanup(func() { conns.Close() })
			fn(t, conns)
		})
	}
}

// launch creates and starts an endpoint the test stops itself.
func launch(t *testing.T, conns *queue.Connections, cfg bus.Config, mux *bus.Mux) *bus.Endpoint {
	t.Helper()
	ctx := context.Background()
	ep, err := bus.New(ctx, conns, cfg, mux)
	if err != nil {
		t.Fatalf("new endpoint %s: %v", cfg.Name, err)
	}
	if err := ep.Start(ctx); err != nil {
		t.Fatalf("start endpoint %s: %v", cfg.Name, err)
	}
	return ep
}

// start creates and starts an endpoint, stopped when the test ends.
func start(t *testing.T, conns *queue.Connections, cfg bus.Config, mux *bus.Mux) *bus.Endpoint {
	t.Helper()
	ep := launch(t, conns, cfg, mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ep.Stop(ctx)
	})
	return ep
}

// pingSender is an endpoint with no inbox that sends Ping as "ping", along
// routes when the send names no queue.
func pingSender(t *testing.T, conns *queue.Connections, name string, routes ...bus.Route) *bus.Endpoint {
	t.Helper()
	mux := bus.NewMux()
	bus.RegisterType[Ping](mux, "ping")
	ep, err := bus.New(context.Background(), conns, bus.Config{Name: name, Routes: routes}, mux)
	if err != nil {
		t.Fatalf("new endpoint %s: %v", name, err)
	}
	return ep
}

// mustSend sends body through ep, failing the test if the send fails.
func mustSend(t *testing.T, ep *bus.Endpoint, body any, opts ...bus.SendOption) {
	t.Helper()
	if err := ep.Send(context.Background(), body, opts...); err != nil {
		t.Fatalf("send %T: %v", body, err)
	}
}

// countPings is a mux whose "ping" handler counts each call in calls and
// then returns what fn does (nil when fn is nil).
func countPings(calls *atomic.Int32, fn func(ctx context.Context, m *bus.Message, p Ping) error) *bus.Mux {
	mux := bus.NewMux()
	bus.Handle(mux, "ping", func(ctx context.Context, m *bus.Message, p Ping) error {
		calls.Add(1)
		if fn == nil {
			return nil
		}
		return fn(ctx, m, p)
	})
	return mux
}

// effectsTable creates the table "effects" (one id per committed side
// effect) on connection "default" and returns that store.
func effectsTable(t *testing.T, conns *queue.Connections) queue.Store {
	t.Helper()
	ctx := context.Background()
	store, err := conns.Store(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.DB().ExecContext(ctx, `CREATE TABLE effects (id TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return store
}

// insertEffect records m as one side effect inside tx.
func insertEffect(ctx context.Context, store queue.Store, tx *sql.Tx, m *bus.Message) error {
	_, err := tx.ExecContext(ctx, testkit.SQLX(store).Rebind(`INSERT INTO effects (id) VALUES (?)`), m.ID)
	return err
}

// countEffects is how many side effects were committed.
func countEffects(t *testing.T, store queue.Store) int {
	t.Helper()
	var n int
	if err := testkit.SQLX(store).GetContext(context.Background(), &n, `SELECT COUNT(*) FROM effects`); err != nil {
		t.Fatal(err)
	}
	return n
}

// outage is a PostgreSQL schema reached two ways: direct, and conns
// through proxy, which the test can make refuse, drop or freeze.
type outage struct {
	direct, conns *queue.Connections
	proxy         *faultproxy.Proxy
}

// newOutage opens both, the proxied one with opts (AutoMigrate set), closed
// when the test ends.
func newOutage(t *testing.T, opts queue.Options) outage {
	t.Helper()
	base := testdb.Postgres(t)
	direct := queue.NewConnections(map[string]string{"default": base}, queue.Options{AutoMigrate: true})
	t.Cleanup(func() { direct.Close() })
	p, proxied := faultproxy.Postgres(t, base)
	opts.AutoMigrate = true
	conns := queue.NewConnections(map[string]string{"default": proxied}, opts)
	t.Cleanup(func() { conns.Close() })
	return outage{direct: direct, conns: conns, proxy: p}
}

// inbox is an inbox config on connection "default" with fast retries.
func inbox(name string, threads int) *bus.InboxConfig {
	return &bus.InboxConfig{
		WorkQueue:  "sql://default/" + name,
		ErrorQueue: "sql://default/" + name + "-error",
		Threads:    threads,
		Retry:      &bus.RetryPolicy{MaxAttempts: 3},
	}
}

// recorder collects handled messages safely.
type recorder[T any] struct {
	mu   sync.Mutex
	msgs []bus.Envelope
	vals []T
}

func (r *recorder[T]) add(m *bus.Message, v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m.Envelope)
	r.vals = append(r.vals, v)
}

// record handles typ on mux by adding each message to r.
func record[T any](mux *bus.Mux, typ string, r *recorder[T]) {
	bus.Handle(mux, typ, func(ctx context.Context, m *bus.Message, v T) error {
		r.add(m, v)
		return nil
	})
}

func (r *recorder[T]) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

func (r *recorder[T]) get(i int) (bus.Envelope, T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.msgs[i], r.vals[i]
}

type OrderPlaced struct {
	ID    string  `json:"id"`
	Total float64 `json:"total"`
}

type OrderAccepted struct {
	ID string `json:"id"`
}

type Ping struct {
	N int `json:"n"`
}

type Pong struct {
	N int `json:"n"`
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// eventLog follows an endpoint's events for one test goroutine.
type eventLog struct {
	ch   <-chan bus.Event
	seen map[bus.EventKind]int
	all  []bus.Event
}

// watch subscribes to ep's events until the test ends. Subscribe before
// sending what the test waits for.
func watch(t *testing.T, ep *bus.Endpoint) *eventLog {
	t.Helper()
	ch, cancel := ep.Events(10000)
	t.Cleanup(cancel)
	return &eventLog{ch: ch, seen: map[bus.EventKind]int{}}
}

// waitFor waits until n events of kind have come since watch, failing the
// test after timeout.
func (l *eventLog) waitFor(t *testing.T, timeout time.Duration, kind bus.EventKind, n int) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for l.seen[kind] < n {
		select {
		case ev, ok := <-l.ch:
			if !ok {
				t.Fatalf("event stream closed waiting for %d %s events", n, kind)
			}
			l.seen[ev.Kind]++
			l.all = append(l.all, ev)
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %d %s events; saw %v", timeout, n, kind, l.seen)
		}
	}
}
