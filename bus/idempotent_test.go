package bus_test

import (
	"context"
	"github.com/ferrybus/ferry/internal/testkit"
	"sync/atomic"
	"testing"
	"time"

	"database/sql"
	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/queue"
)

// barrier lets n handlers through together; wait reports false if they did
// not all arrive in time. alsoWhen, when not nil, lets a waiter through
// early once it holds (SQLite runs one transaction at a time).
type barrier struct {
	n       int32
	arrived atomic.Int32
}

func (b *barrier) wait(alsoWhen func() bool) bool {
	b.arrived.Add(1)
	deadline := time.Now().Add(20 * time.Second)
	for b.arrived.Load() < b.n && (alsoWhen == nil || !alsoWhen()) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// sendCopies queues n copies of one message id before the endpoint starts,
// so that one receive hands them to n threads at once.
func sendCopies(t *testing.T, conns *queue.Connections, to string, n int) {
	t.Helper()
	sender := pingSender(t, conns, "sender")
	for range n {
		mustSend(t, sender, Ping{N: 1}, bus.To(to), bus.MessageID("same-id"))
	}
}

// TestIdempotentConcurrentCopiesTx: three copies of one message id handled
// at once by a transactional handler commit exactly one effect; the other
// two are acked as duplicates.
func TestIdempotentConcurrentCopiesTx(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		store := effectsTable(t, conns)
		sendCopies(t, conns, "sql://default/idem-tx", 3)
		var ep *bus.Endpoint
		var calls atomic.Int32
		b := &barrier{n: 3}
		var early func() bool
		if store.Dialect() == queue.SQLite {
			// One write transaction at a time: the other copies wait at BEGIN,
			// already past the duplicate check. Go on once all three are taken.
			early = func() bool { return ep.Stats().Received == 3 }
		}
		mux := bus.NewMux()
		bus.HandleTx(mux, "ping", func(ctx context.Context, m *bus.Message, tx *sql.Tx, p Ping) error {
			calls.Add(1)
			if err := insertEffect(ctx, store, tx, m); err != nil {
				return err
			}
			if !b.wait(early) {
				t.Error("the three copies never ran at the same time")
			}
			return nil
		})
		cfg := inbox("idem-tx", 3)
		cfg.Idempotent = true
		var err error
		ep, err = bus.New(ctx, conns, bus.Config{Name: "idem-tx", Inbox: cfg}, mux)
		if err != nil {
			t.Fatal(err)
		}
		if err := ep.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ep.Stop(sctx)
		})
		testkit.Eventually(t, 20*time.Second, "three copies settled", func() bool {
			s := ep.Stats()
			return s.Handled+s.Duplicates+s.Failed >= 3
		})
		n := countEffects(t, store)
		s := ep.Stats()
		if n != 1 || s.Handled != 1 || s.Duplicates != 2 {
			t.Errorf("%d effect rows committed, stats %+v (handler ran %d times); want 1 effect, 1 handled, 2 duplicates", n, s, calls.Load())
		}
		if store.Dialect() == queue.Postgres && calls.Load() != 3 {
			t.Errorf("handler ran %d times; the test wants the three copies handled concurrently", calls.Load())
		}
		testkit.Eventually(t, 10*time.Second, "the inbox empty", func() bool {
			return testkit.Count(t, conns, "sql://default/idem-tx").Total() == 0
		})
	})
}

// TestIdempotentConcurrentCopiesPlain: with a plain handler, copies in
// flight at once may each run it (at least once), but only one is counted
// handled and the others are acked as duplicates.
func TestIdempotentConcurrentCopiesPlain(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		sendCopies(t, conns, "sql://default/idem-plain", 3)
		b := &barrier{n: 3}
		mux := bus.NewMux()
		bus.Handle(mux, "ping", func(ctx context.Context, m *bus.Message, p Ping) error {
			if !b.wait(nil) {
				t.Error("the three copies never ran at the same time")
			}
			return nil
		})
		cfg := inbox("idem-plain", 3)
		cfg.Idempotent = true
		ep := start(t, conns, bus.Config{Name: "idem-plain", Inbox: cfg}, mux)
		testkit.Eventually(t, 20*time.Second, "three copies settled", func() bool {
			s := ep.Stats()
			return s.Handled+s.Duplicates+s.Failed >= 3
		})
		if s := ep.Stats(); s.Handled != 1 || s.Duplicates != 2 {
			t.Errorf("stats %+v; want 1 handled, 2 duplicates", s)
		}
		testkit.Eventually(t, 10*time.Second, "the inbox empty", func() bool {
			return testkit.Count(t, conns, "sql://default/idem-plain").Total() == 0
		})
	})
}
