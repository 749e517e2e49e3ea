package bus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/role"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// ordersMux knows the orders.placed type, for sending.
func ordersMux() *bus.Mux {
	mux := bus.NewMux()
	bus.RegisterType[OrderPlaced](mux, "orders.placed")
	return mux
}

// handoffToken is the lease token the tests' moves hand work over to.
const handoffToken = 5150

// stageAndHandOver sends n orders to a staging queue and moves them into
// queue name leased to handoffToken, as a distributor does; it returns the
// store and the destination queue.
func stageAndHandOver(t *testing.T, conns *queue.Connections, name string, n int) (queue.Store, queue.Queue) {
	t.Helper()
	ctx := t.Context()
	client, err := bus.New(ctx, conns, bus.Config{Name: "client"}, ordersMux())
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := client.Send(ctx, OrderPlaced{ID: fmt.Sprintf("given-%d", i)}, bus.To("sql://default/staging")); err != nil {
			t.Fatal(err)
		}
	}
	store, err := conns.Store(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	session, err := store.OpenLockSession(ctx, "dist", "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { session.Close() })
	tok, err := store.AcquireLock(ctx, "dist", "test", time.Hour)
	if err != nil || tok == 0 {
		t.Fatalf("AcquireLock = %d, %v", tok, err)
	}
	staging, _ := store.Queue("staging")
	dst, _ := store.Queue(name)
	moved, err := staging.MoveReadyFenced(ctx, dst, 100, nil, store.Fence("dist", tok), queue.Handoff{Token: handoffToken, For: time.Minute})
	if err != nil || moved != n {
		t.Fatalf("MoveReadyFenced with a handoff = %d, %v; want %d", moved, err, n)
	}
	return store, dst
}

// An endpoint with a handoff token (a worker session's) handles the
// messages moved in leased to it once each, as first deliveries, reading
// them without leasing them again; it still receives those that arrive
// unleased (moved by a distributor that predates handoffs).
func TestHandoffReadsGivenWork(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := t.Context()
		store, dst := stageAndHandOver(t, conns, "handoff", 10)
		if c, _ := dst.Count(ctx); c.InFlight != 10 {
			t.Fatalf("after the handoff: %+v, want 10 in flight", c)
		}
		client, err := bus.New(ctx, conns, bus.Config{Name: "old-distributor"}, ordersMux())
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"plain-1", "plain-2"} {
			if err := client.Send(ctx, OrderPlaced{ID: id}, bus.To("sql://default/handoff")); err != nil {
				t.Fatal(err)
			}
		}
		writes := store.RowWrites()

		var got recorder[OrderPlaced]
		mux := bus.NewMux()
		bus.Handle(mux, "orders.placed", func(ctx context.Context, m *bus.Message, o OrderPlaced) error {
			got.add(m, o)
			return nil
		})
		cfg := bus.Config{Name: "handoff", Inbox: inbox("handoff", 4), Role: &role.Hooks{Handoff: handoffToken}}
		ep := start(t, conns, cfg, mux)
		testkit.Eventually(t, 10*time.Second, "every order handled", func() bool { return got.len() == 12 })
		testkit.Eventually(t, 10*time.Second, "every ack committed", func() bool {
			c, err := dst.Count(ctx)
			return err == nil && c.Total() == 0
		})
		seen := map[string]bool{}
		for i := range got.len() {
			env, o := got.get(i)
			if seen[o.ID] {
				t.Errorf("%s handled twice", o.ID)
			}
			seen[o.ID] = true
			if env.Attempt != 1 {
				t.Errorf("%s: attempt %d, want 1 (the handoff is the first delivery)", o.ID, env.Attempt)
			}
		}
		// The given orders cost their acks only; the plain ones a lease each
		// too. The store counts a statement's rows just after it returns,
		// which may be after its commit is visible: wait for the count, then
		// check that nothing more was written.
		testkit.Eventually(t, 10*time.Second, "the acks' row writes counted", func() bool { return store.RowWrites()-writes >= 10+2*2 })
		if got := store.RowWrites() - writes; got != 10+2*2 {
			t.Errorf("row writes while handling = %d, want %d (10 acks, 2 leases and 2 acks)", got, 10+2*2)
		}
		// The counters move just after the acks commit.
		testkit.Eventually(t, 10*time.Second, "12 received and handled in the stats", func() bool {
			s := ep.Stats()
			return s.Received == 12 && s.Handled == 12
		})
	})
}

// What was handed over to an endpoint that it never read is given back at
// Stop, uncounted: it would otherwise stay leased to a session that ended.
func TestHandoffUnreadGivenBackAtStop(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := t.Context()
		_, dst := stageAndHandOver(t, conns, "handoff-stop", 3)
		// The gate keeps the endpoint from reading anything.
		cfg := bus.Config{Name: "handoff-stop", Inbox: inbox("handoff-stop", 2),
			Role: &role.Hooks{Handoff: handoffToken, Gate: func() bool { return false }}}
		ep, err := bus.New(ctx, conns, cfg, bus.NewMux())
		if err != nil {
			t.Fatal(err)
		}
		if err := ep.Start(ctx); err != nil {
			t.Fatal(err)
		}
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := ep.Stop(stopCtx); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if c, err := dst.Count(ctx); err != nil || c.Ready != 3 || c.Total() != 3 {
			t.Fatalf("after Stop: %+v, %v; want 3 ready", c, err)
		}
		ds, err := dst.Peek(ctx, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Attempts != 0 || d.LeaseToken != 0 {
				t.Errorf("%s: attempts %d, lease %d; want 0, 0 (given back uncounted)", d.MessageID, d.Attempts, d.LeaseToken)
			}
		}
	})
}
