package bus_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// A paused inbox receives nothing: messages sent while it is paused stay
// ready however often its receive loop looks, and after the resume every
// message is handled exactly once.
func TestPausedInboxReceivesNothing(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		const n = 20
		var mu sync.Mutex
		handled := map[int]int{}
		total := func() int {
			mu.Lock()
			defer mu.Unlock()
			sum := 0
			for _, c := range handled {
				sum += c
			}
			return sum
		}
		mux := bus.NewMux()
		bus.Handle(mux, "ping", func(ctx context.Context, m *bus.Message, p Ping) error {
			mu.Lock()
			handled[p.N]++
			mu.Unlock()
			return nil
		})
		store, err := conns.Store(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		sender := takeSender(t, conns)
		send := func(from int) {
			t.Helper()
			batch := make([]any, n)
			for i := range batch {
				batch[i] = Ping{N: from + i}
			}
			if err := sender.SendBatch(ctx, batch, bus.To("sql://default/paused")); err != nil {
				t.Fatal(err)
			}
		}
		ep := start(t, conns, bus.Config{Name: "paused", Inbox: inbox("paused", 4)}, mux)
		send(0)
		testkit.Eventually(t, 10*time.Second, "the first batch handled", func() bool { return total() == n })

		if err := store.PauseQueue(ctx, "paused"); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 10*time.Second, "the receive loop seeing the pause", func() bool { return bus.PausedPolls(ep) > 0 })
		send(n)
		// The loop looks again and again while the messages are there.
		seen := bus.PausedPolls(ep)
		testkit.Eventually(t, 10*time.Second, "three more looks at the paused inbox", func() bool { return bus.PausedPolls(ep) >= seen+3 })
		if got := total(); got != n {
			t.Fatalf("handled %d while paused, want %d (none of the second batch)", got, n)
		}
		if c := testkit.Count(t, conns, "sql://default/paused"); c.Ready != n || c.InFlight != 0 {
			t.Fatalf("paused inbox holds %+v, want %d ready and none in flight", c, n)
		}

		if err := store.ResumeQueue(ctx, "paused"); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 10*time.Second, "the second batch handled after the resume", func() bool { return total() == 2*n })
		testkit.Eventually(t, 10*time.Second, "the inbox drained", func() bool {
			return testkit.Count(t, conns, "sql://default/paused").Total() == 0
		})
		mu.Lock()
		defer mu.Unlock()
		for i := range 2 * n {
			if handled[i] != 1 {
				t.Errorf("message %d handled %d times, want once", i, handled[i])
			}
		}
	})
}
