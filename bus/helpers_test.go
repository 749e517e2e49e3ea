package bus_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/testdb"
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

// start creates and starts an endpoint, stopped when the test ends.
func start(t *testing.T, conns *queue.Connections, cfg bus.Config, mux *bus.Mux) *bus.Endpoint {
	t.Helper()
	ctx := context.Background()
	ep, err := bus.New(ctx, conns, cfg, mux)
	if err != nil {
		t.Fatalf("new endpoint %s: %v", cfg.Name, err)
	}
	if err := ep.Start(ctx); err != nil {
		t.Fatalf("start endpoint %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ep.Stop(ctx)
	})
	return ep
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
