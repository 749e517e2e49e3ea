package alerts_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/alerts"
	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

type job struct{ N int }

// seen counts the handled and failed events of an endpoint. Added after
// the engine's observer, it sees each event after the engine did.
type seen struct{ handled, failed atomic.Int64 }

func (s *seen) ObserveEvent(ev bus.Event) {
	switch ev.Kind {
	case bus.EventHandled:
		s.handled.Add(1)
	case bus.EventFailed:
		s.failed.Add(1)
	}
}

func (s *seen) ObserveHandler(bus.HandlerDone) {}

// A real endpoint on SQLite and PostgreSQL fails messages until the
// failure-rate alert fires (not before minMessages attempts), then handles
// messages until it resolves (as soon as the rate is under the threshold).
func TestFailureRateOnRealEndpoint(t *testing.T) {
	for _, dialect := range testdb.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			conns := queue.NewConnections(map[string]string{"default": testdb.DSN(t, dialect)},
				queue.Options{AutoMigrate: true, MaxPoll: 100 * time.Millisecond})
			t.Cleanup(func() { conns.Close() })
			var failing atomic.Bool
			failing.Store(true)
			mux := bus.NewMux()
			bus.Handle(mux, "job", func(ctx context.Context, m *bus.Message, j job) error {
				if failing.Load() {
					return bus.Permanent(errors.New("target rejects it"))
				}
				return nil
			})
			ep, err := bus.New(ctx, conns, bus.Config{Name: "orders", Inbox: &bus.InboxConfig{
				WorkQueue: "sql://default/orders", ErrorQueue: "sql://default/orders-error", Threads: 4}}, mux)
			if err != nil {
				t.Fatal(err)
			}
			c, h := newClock(), newHook(t)
			rule := alerts.Rule{Name: "orders-failing", Kind: alerts.FailureRate, Endpoint: "orders", Window: time.Hour, Threshold: 0.5, MinMessages: 10}
			e := engine(t, c, h, []alerts.Rule{rule}, func(e *alerts.Engine) { ep.AddObserver(e.Observer("orders")) })
			count := &seen{}
			ep.AddObserver(count)
			if err := ep.Start(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				ep.Stop(sctx)
			})
			sent := 0
			batch := func(n int) {
				for range n {
					sent++
					if err := ep.Send(ctx, job{N: sent}, bus.To("sql://default/orders")); err != nil {
						t.Fatal(err)
					}
				}
				testkit.Eventually(t, 30*time.Second, "the batch's outcomes", func() bool {
					return count.handled.Load()+count.failed.Load() == int64(sent)
				})
				e.Evaluate(ctx)
			}

			for e.Stats().Firing == 0 {
				if sent >= 50 {
					t.Fatalf("not firing after %d failed messages", sent)
				}
				batch(3)
			}
			if sent != 12 { // batches of 3: the first with at least 10 attempts
				t.Fatalf("fired after %d failed attempts, want 12 (minMessages 10)", sent)
			}
			got := h.wait(t, 1)
			want(t, got[0], "firing", "orders-failing", "orders")
			if got[0].Value != 1 {
				t.Fatalf("firing value %v, want 1 (every attempt failed)", got[0].Value)
			}

			failing.Store(false)
			for e.Stats().Firing == 1 {
				if sent >= 100 {
					t.Fatalf("not resolved after %d messages", sent)
				}
				batch(3)
			}
			// 12 failed of 12 + handled: under 0.5 once handled > 12.
			if n := count.handled.Load(); n != 15 {
				t.Fatalf("resolved after %d handled messages, want 15", n)
			}
			got = h.wait(t, 2)
			want(t, got[1], "resolved", "orders-failing", "orders")
			if st := ep.Stats(); st.Errored != 12 || st.Handled != 15 {
				t.Fatalf("endpoint stats %+v: want 12 error-queued, 15 handled", st)
			}
		})
	}
}

// A webhook that does not answer never holds up handling: with the engine
// evaluating on its own tick, every failing message of a real endpoint
// still reaches the error queue, and the notifications beyond the pending
// bound are dropped.
func TestWebhookDownHandlingUnaffected(t *testing.T) {
	for _, dialect := range testdb.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			conns := queue.NewConnections(map[string]string{"default": testdb.DSN(t, dialect)},
				queue.Options{AutoMigrate: true, MaxPoll: 100 * time.Millisecond})
			t.Cleanup(func() { conns.Close() })
			mux := bus.NewMux()
			bus.Handle(mux, "job", func(ctx context.Context, m *bus.Message, j job) error {
				return bus.Permanent(errors.New("target rejects it"))
			})
			ep, err := bus.New(ctx, conns, bus.Config{Name: "orders", Inbox: &bus.InboxConfig{
				WorkQueue: "sql://default/orders", ErrorQueue: "sql://default/orders-error", Threads: 4}}, mux)
			if err != nil {
				t.Fatal(err)
			}
			h := newHook(t)
			h.blocking.Store(true)
			rule := alerts.Rule{Name: "stuck", Kind: alerts.FailureCount, Endpoint: "orders", Threshold: 1}
			e := engine(t, newClock(), h, []alerts.Rule{rule}, func(e *alerts.Engine) { ep.AddObserver(e.Observer("orders")) },
				func(cfg *alerts.Config) {
					cfg.Interval, cfg.Pending = 10*time.Millisecond, 1
					cfg.Webhook.Timeout, cfg.Webhook.MaxAttempts = time.Minute, 1
				})
			if err := ep.Start(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				ep.Stop(sctx)
			})
			const n = 30
			for i := range n {
				if err := ep.Send(ctx, job{N: i}, bus.To("sql://default/orders")); err != nil {
					t.Fatal(err)
				}
			}
			testkit.Eventually(t, 30*time.Second, "every message in the error queue", func() bool { return ep.Stats().Errored == n })
			testkit.Eventually(t, 10*time.Second, "every alert notified", func() bool { return e.Stats().Notified == 2*n })
			if s := e.Stats(); s.Sent != 0 || s.Dropped < 2*n-2 {
				t.Fatalf("stats %+v: want nothing sent, all but 2 dropped (1 sending, 1 pending)", s)
			}
			sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			e.Stop(sctx) // gives up the POST that hangs
		})
	}
}
