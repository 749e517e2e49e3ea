package bus_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/role"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// takeSender is a send-only endpoint that knows the types of these tests.
func takeSender(t *testing.T, conns *queue.Connections) *bus.Endpoint {
	t.Helper()
	mux := bus.NewMux()
	bus.RegisterType[Ping](mux, "ping")
	bus.RegisterType[Pong](mux, "pong")
	s, err := bus.New(context.Background(), conns, bus.Config{Name: "sender"}, mux)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// An inbox in take mode handles its messages with no lease: a message is
// gone from the queue while its handler runs, and nothing acks it after.
func TestTakeModeHandlesWithoutLeases(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		const n = 50
		var got recorder[Ping]
		inflight := make(chan queue.Counts, 1)
		mux := bus.NewMux()
		bus.Handle(mux, "ping", func(ctx context.Context, m *bus.Message, p Ping) error {
			if p.N == 0 {
				inflight <- testkit.Count(t, conns, "sql://default/take")
			}
			got.add(m, p)
			return nil
		})
		store, err := conns.Store(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		sender := takeSender(t, conns)
		if err := sender.Send(ctx, Ping{N: 0}, bus.To("sql://default/take")); err != nil {
			t.Fatal(err)
		}
		ep := start(t, conns, bus.Config{Name: "take", Inbox: inbox("take", 4), Role: &role.Hooks{Take: true}}, mux)
		if c := <-inflight; c.Total() != 0 {
			t.Errorf("while its handler runs the queue holds %+v; want the taken message gone", c)
		}
		testkit.Eventually(t, 10*time.Second, "the first message handled", func() bool { return ep.Stats().Handled == 1 })
		before := store.RoundTrips()
		batch := make([]any, n)
		for i := range batch {
			batch[i] = Ping{N: i + 1}
		}
		if err := sender.SendBatch(ctx, batch, bus.To("sql://default/take")); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 10*time.Second, "every message handled", func() bool { return got.len() == n+1 })
		testkit.Eventually(t, 5*time.Second, "the handled count", func() bool { return ep.Stats().Handled == n+1 })
		// The batch's insert, then only takes (and idle polls): no acks.
		if trips := store.RoundTrips() - before; trips >= n {
			t.Errorf("%d statements for %d messages in take mode, want fewer than one each", trips, n)
		}
		if c := testkit.Count(t, conns, "sql://default/take"); c.Total() != 0 {
			t.Errorf("inbox holds %+v after handling", c)
		}
		if s := ep.Stats(); s.Received != n+1 || s.Failed != 0 || s.Discarded != 0 {
			t.Errorf("stats %+v", s)
		}
	})
}

// In take mode a failure cannot be retried or parked — the message is gone
// — so a failed handler, a type with no handler and an expired message are
// each logged, counted and announced as discarded, and nothing reaches the
// error queue.
func TestTakeModeDiscardsFailures(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		var calls atomic.Int64
		mux := bus.NewMux()
		bus.Handle(mux, "ping", func(ctx context.Context, m *bus.Message, p Ping) error {
			calls.Add(1)
			return errors.New("boom")
		})
		rec, log := testkit.NewLog()
		ep := start(t, conns, bus.Config{Name: "takefail", Inbox: inbox("takefail", 2), Logger: log, Role: &role.Hooks{Take: true}}, mux)
		events := watch(t, ep)
		sender := takeSender(t, conns)
		to := bus.To("sql://default/takefail")
		if err := sender.Send(ctx, Ping{N: 1}, to); err != nil {
			t.Fatal(err)
		}
		if err := sender.Send(ctx, Pong{N: 2}, to); err != nil { // no handler
			t.Fatal(err)
		}
		if err := sender.Send(ctx, Ping{N: 3}, to, bus.ExpiresAt(time.Now().Add(-time.Second))); err != nil {
			t.Fatal(err)
		}
		events.waitFor(t, 10*time.Second, bus.EventDiscarded, 3)
		if s := ep.Stats(); s.Discarded != 3 || s.Failed != 2 || s.Expired != 1 || s.Retried != 0 || s.Errored != 0 || s.Handled != 0 {
			t.Errorf("stats %+v, want 3 discarded (2 failed, 1 expired), none retried or error-queued", s)
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("the failing handler ran %d times, want once", n)
		}
		var lines []testkit.LogRecord
		testkit.Eventually(t, 5*time.Second, "three discard log lines", func() bool {
			lines = rec.Matching("message discarded unhandled")
			return len(lines) >= 3
		})
		if len(lines) != 3 {
			t.Fatalf("%d discard log lines, want 3", len(lines))
		}
		kinds := map[string]bool{}
		for _, l := range lines {
			if l.Level != slog.LevelWarn || l.Attrs["message"].String() == "" || l.Attrs["type"].String() == "" {
				t.Errorf("discard logged as %s, want a warning with the message id and type", l)
			}
			kinds[l.Attrs["kind"].String()] = true
		}
		for _, k := range []string{bus.KindError, bus.KindNoHandler, bus.KindExpired} {
			if !kinds[k] {
				t.Errorf("no discard logged for kind %s; got %v", k, kinds)
			}
		}
		for _, q := range []string{"sql://default/takefail", "sql://default/takefail-error"} {
			if c := testkit.Count(t, conns, q); c.Total() != 0 {
				t.Errorf("%s holds %+v, want nothing", q, c)
			}
		}
	})
}

// Stop cannot give taken messages back: those still buffered when it
// begins are handled before it returns.
func TestTakeModeStopHandlesBuffered(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		const n = 5
		var handled atomic.Int64
		gate := make(chan struct{})
		mux := bus.NewMux()
		bus.Handle(mux, "ping", func(ctx context.Context, m *bus.Message, p Ping) error {
			<-gate
			handled.Add(1)
			return nil
		})
		cfg := inbox("takestop", 1)
		cfg.Prefetch = n
		ep, err := bus.New(ctx, conns, bus.Config{Name: "takestop", Inbox: cfg, Role: &role.Hooks{Take: true}}, mux)
		if err != nil {
			t.Fatal(err)
		}
		sender := takeSender(t, conns)
		batch := make([]any, n)
		for i := range batch {
			batch[i] = Ping{N: i}
		}
		if err := sender.SendBatch(ctx, batch, bus.To("sql://default/takestop")); err != nil {
			t.Fatal(err)
		}
		if err := ep.Start(ctx); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 10*time.Second, "every message taken", func() bool {
			return testkit.Count(t, conns, "sql://default/takestop").Total() == 0
		})
		stopped := make(chan error, 1)
		go func() {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			stopped <- ep.Stop(sctx)
		}()
		time.Sleep(50 * time.Millisecond) // let Stop begin while the thread is busy
		close(gate)
		if err := <-stopped; err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if h := handled.Load(); h != n {
			t.Errorf("%d of %d taken messages handled by the time Stop returned", h, n)
		}
		if s := ep.Stats(); s.Handled != n || s.Discarded != 0 {
			t.Errorf("stats %+v, want %d handled", s, n)
		}
	})
}

// Take mode is for soft state only: an idempotent inbox cannot take.
func TestTakeModeRefusesIdempotent(t *testing.T) {
	conns := queue.NewConnections(map[string]string{"default": "sqlite://" + t.TempDir() + "/t.db"}, queue.Options{AutoMigrate: true})
	defer conns.Close()
	cfg := inbox("takeidem", 1)
	cfg.Idempotent = true
	if _, err := bus.New(context.Background(), conns, bus.Config{Name: "takeidem", Inbox: cfg, Role: &role.Hooks{Take: true}}, nil); err == nil {
		t.Fatal("an idempotent inbox in take mode was accepted")
	}
}
