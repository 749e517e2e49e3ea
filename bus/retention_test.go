package bus_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

var errSentinel = errors.New("refused for good")

// restart stops ep and starts it again: retention runs at every Start.
func restart(t *testing.T, ep *bus.Endpoint) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ep.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ep.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestErrorRetention: an endpoint with ErrorRetention deletes the error
// queue's messages that have been there longer, logs and counts them, and
// keeps those that are younger; without it nothing is deleted.
func TestErrorRetention(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		rec, log := testkit.NewLog()
		var calls atomic.Int32
		mux := countPings(&calls, func(context.Context, *bus.Message, Ping) error {
			return bus.Permanent(errSentinel)
		})
		keep := inbox("keep", 1)
		keeper := start(t, conns, bus.Config{Name: "keeper", Inbox: keep, Logger: log}, mux)
		short := inbox("short", 1)
		short.ErrorRetention = time.Millisecond
		expunger := start(t, conns, bus.Config{Name: "expunger", Inbox: short, Logger: log}, mux)
		long := inbox("long", 1)
		long.ErrorRetention = time.Hour
		longer := start(t, conns, bus.Config{Name: "longer", Inbox: long, Logger: log}, mux)

		for _, in := range []*bus.InboxConfig{keep, short, long} {
			sender := pingSender(t, conns, "sender", bus.Route{Types: []string{"ping"}, Queue: in.WorkQueue})
			mustSend(t, sender, Ping{N: 1})
			mustSend(t, sender, Ping{N: 2})
			testkit.Eventually(t, 30*time.Second, "two messages in "+in.ErrorQueue, func() bool {
				return testkit.Count(t, conns, in.ErrorQueue).Total() == 2
			})
		}
		entered := time.Now()
		testkit.Eventually(t, 10*time.Second, "the clock past the retention", func() bool { return time.Since(entered) > 5*time.Millisecond })
		for _, ep := range []*bus.Endpoint{longer, keeper, expunger} {
			restart(t, ep)
		}
		testkit.Eventually(t, 30*time.Second, "the short retention's error queue emptied", func() bool {
			return testkit.Count(t, conns, short.ErrorQueue).Total() == 0
		})
		if got := expunger.Stats().Expunged; got != 2 {
			t.Errorf("Stats().Expunged = %d, want 2", got)
		}
		rec.Wait(t, 10*time.Second, "error-queue retention: deleted")
		lines := rec.Matching("error-queue retention: deleted")
		if len(lines) != 1 || lines[0].Attrs["deleted"].Int64() != 2 || lines[0].Attrs["errorQueue"].String() != short.ErrorQueue {
			t.Errorf("retention log lines %v: want one naming %s with 2 deleted", lines, short.ErrorQueue)
		}
		// The long retention ran at its start, before the short one's (the
		// restarts are in that order): it deleted nothing younger than it.
		for _, in := range []*bus.InboxConfig{keep, long} {
			if n := testkit.Count(t, conns, in.ErrorQueue).Total(); n != 2 {
				t.Errorf("%s holds %d messages after retention, want 2", in.ErrorQueue, n)
			}
		}
		if keeper.Stats().Expunged != 0 || longer.Stats().Expunged != 0 {
			t.Errorf("expunged without or before the retention: %+v, %+v", keeper.Stats(), longer.Stats())
		}
	})
}

// TestHandledRetention: an idempotent endpoint forgets the handled ids
// older than HandledRetention, and counts them.
func TestHandledRetention(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		_, log := testkit.NewLog()
		var calls atomic.Int32
		in := inbox("idem", 1)
		in.Idempotent = true
		in.HandledRetention = time.Millisecond
		ep := start(t, conns, bus.Config{Name: "idem", Inbox: in, Logger: log}, countPings(&calls, nil))
		sender := pingSender(t, conns, "sender", bus.Route{Types: []string{"ping"}, Queue: in.WorkQueue})
		mustSend(t, sender, Ping{N: 1})
		testkit.Eventually(t, 30*time.Second, "the ping handled", func() bool { return ep.Stats().Handled == 1 })
		store, err := conns.Store(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		countRecords := func() int {
			var n int
			if err := testkit.SQLX(store).GetContext(ctx, &n, `SELECT COUNT(*) FROM ferry_handled WHERE endpoint = 'idem'`); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := countRecords(); n != 1 {
			t.Fatalf("%d handled records after handling, want 1", n)
		}
		handled := time.Now()
		testkit.Eventually(t, 10*time.Second, "the clock past the retention", func() bool { return time.Since(handled) > 5*time.Millisecond })
		restart(t, ep)
		testkit.Eventually(t, 30*time.Second, "the handled record forgotten", func() bool { return countRecords() == 0 })
		testkit.Eventually(t, 10*time.Second, "Stats().ForgottenHandled counted", func() bool { return ep.Stats().ForgottenHandled == 1 })
	})
}
