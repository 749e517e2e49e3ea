package bus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// liveHandler counts each ping by its N, follows how many handlers run at
// once, and makes each handler wait while gate is closed.
type liveHandler struct {
	mu      sync.Mutex
	seen    map[int]int
	running atomic.Int32
	most    atomic.Int32 // most handlers running at once since reset
	gate    chan struct{}
	open    atomic.Bool
}

func newLiveHandler() *liveHandler {
	return &liveHandler{seen: map[int]int{}, gate: make(chan struct{})}
}

func (h *liveHandler) mux() *bus.Mux {
	mux := bus.NewMux()
	bus.Handle(mux, "ping", func(ctx context.Context, m *bus.Message, p Ping) error {
		n := h.running.Add(1)
		defer h.running.Add(-1)
		for {
			most := h.most.Load()
			if n <= most || h.most.CompareAndSwap(most, n) {
				break
			}
		}
		if !h.open.Load() {
			select {
			case <-h.gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		h.mu.Lock()
		h.seen[p.N]++
		h.mu.Unlock()
		return nil
	})
	return mux
}

// release lets every handler through from now on.
func (h *liveHandler) release() {
	if h.open.CompareAndSwap(false, true) {
		close(h.gate)
	}
}

// handled is how many distinct pings were handled.
func (h *liveHandler) handled() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

// exactlyOnce fails the test unless pings 0..n-1 were each handled once.
func (h *liveHandler) exactlyOnce(t *testing.T, n int) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range n {
		if h.seen[i] != 1 {
			t.Errorf("ping %d handled %d times, want once", i, h.seen[i])
		}
	}
	if len(h.seen) != n {
		t.Errorf("%d distinct pings handled, want %d", len(h.seen), n)
	}
}

func sendPings(t *testing.T, ep *bus.Endpoint, to string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		mustSend(t, ep, Ping{N: i}, bus.To(to))
	}
}

func TestSetThreadsGrowsAndShrinksUnderLoad(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		h := newLiveHandler()
		in := inbox("live-threads", 2)
		ep := start(t, conns, bus.Config{Name: "live-threads", Inbox: in}, h.mux())
		sender := pingSender(t, conns, "live-threads-sender")

		// Grow: two handlers wait at the gate, then eight.
		sendPings(t, sender, in.WorkQueue, 0, 20)
		testkit.Eventually(t, 20*time.Second, "2 handlers running", func() bool { return h.running.Load() == 2 })
		if err := ep.SetThreads(8); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 20*time.Second, "8 handlers running after SetThreads(8)", func() bool { return h.running.Load() == 8 })
		if got := ep.Threads(); got != 8 {
			t.Fatalf("Threads() = %d after SetThreads(8)", got)
		}

		// Shrink while all are busy: each finishes its message first.
		if err := ep.SetThreads(1); err != nil {
			t.Fatal(err)
		}
		if got := ep.RunningThreads(); got != 8 {
			t.Fatalf("RunningThreads() = %d right after shrinking 8 busy threads, want 8 until they finish", got)
		}
		h.release()
		testkit.Eventually(t, 20*time.Second, "20 pings handled and one thread left", func() bool {
			return h.handled() == 20 && ep.RunningThreads() == 1
		})

		// Under load: the count changes while messages flow.
		stop := make(chan struct{})
		changed := make(chan error, 1)
		go func() {
			counts := []int{5, 1, 6, 2, 7, 3}
			for i := 0; ; i++ {
				select {
				case <-stop:
					changed <- ep.SetThreads(1)
					return
				default:
				}
				if err := ep.SetThreads(counts[i%len(counts)]); err != nil {
					changed <- err
					return
				}
				time.Sleep(5 * time.Millisecond) // pace the changes, not a wait for a condition
			}
		}()
		sendPings(t, sender, in.WorkQueue, 20, 200)
		testkit.Eventually(t, 60*time.Second, "220 pings handled", func() bool { return h.handled() == 220 })
		close(stop)
		if err := <-changed; err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 20*time.Second, "one thread left", func() bool { return ep.RunningThreads() == 1 })

		// One thread: never two handlers at once.
		h.most.Store(0)
		sendPings(t, sender, in.WorkQueue, 220, 30)
		testkit.Eventually(t, 30*time.Second, "250 pings handled", func() bool { return h.handled() == 250 })
		if most := h.most.Load(); most != 1 {
			t.Errorf("%d handlers ran at once with one thread", most)
		}
		h.exactlyOnce(t, 250)
		testkit.Eventually(t, 10*time.Second, "250 counted handled", func() bool { return ep.Stats().Handled == 250 })
		if s := ep.Stats(); s.Failed != 0 || s.Retried != 0 {
			t.Errorf("stats %+v: want no failures", s)
		}
		if c := testkit.Count(t, conns, in.WorkQueue); c.Total() != 0 {
			t.Errorf("inbox not empty: %+v", c)
		}
	})
}

func TestSetPrefetchTakesEffectOnTheNextReceive(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		h := newLiveHandler()
		in := inbox("live-prefetch", 1)
		in.Prefetch = -1
		ep := start(t, conns, bus.Config{Name: "live-prefetch", Inbox: in}, h.mux())
		sender := pingSender(t, conns, "live-prefetch-sender")
		sendPings(t, sender, in.WorkQueue, 0, 10)
		testkit.Eventually(t, 20*time.Second, "1 handler running", func() bool { return h.running.Load() == 1 })
		if c := testkit.Count(t, conns, in.WorkQueue); c.InFlight != 1 {
			t.Fatalf("prefetch off, one thread busy: %d leased, want 1", c.InFlight)
		}
		if err := ep.SetPrefetch(4); err != nil {
			t.Fatal(err)
		}
		if err := ep.SetPrefetch(-2); err == nil {
			t.Fatal("SetPrefetch(-2) accepted")
		}
		// The loop waits for the busy thread; once it frees, it receives
		// for the thread and the new buffer: 1 running and 4 waiting.
		h.gate <- struct{}{}
		testkit.Eventually(t, 20*time.Second, "5 leased with prefetch 4", func() bool {
			return testkit.Count(t, conns, in.WorkQueue).InFlight == 5
		})
		h.release()
		testkit.Eventually(t, 20*time.Second, "10 pings handled", func() bool { return h.handled() == 10 })
		h.exactlyOnce(t, 10)
		if got := ep.InboxSettings().Prefetch; got != 4 {
			t.Errorf("InboxSettings().Prefetch = %d, want 4", got)
		}
	})
}

func TestRetryPolicyAndRulesChangeOnTheNextFailure(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		var calls atomic.Int32
		mux := countPings(&calls, func(context.Context, *bus.Message, Ping) error { return errors.New("boom") })
		in := inbox("live-retry", 1)
		in.Retry = &bus.RetryPolicy{MaxAttempts: 1} // no retry: straight to the error queue
		ep := start(t, conns, bus.Config{Name: "live-retry", Inbox: in}, mux)
		sender := pingSender(t, conns, "live-retry-sender")

		sendPings(t, sender, in.WorkQueue, 0, 1)
		testkit.Eventually(t, 20*time.Second, "first ping in the error queue", func() bool { return ep.Stats().Errored == 1 })
		if got := calls.Load(); got != 1 {
			t.Fatalf("%d calls with maxAttempts 1", got)
		}

		// An invalid policy is refused, naming the key, and changes nothing.
		err := ep.SetRetry(&bus.RetryPolicy{MaxAttempts: -1})
		if err == nil || !containsAll(err.Error(), "inbox.retry.maxAttempts") {
			t.Fatalf("SetRetry(maxAttempts -1): %v, want an error naming inbox.retry.maxAttempts", err)
		}
		if err := ep.SetRetry(&bus.RetryPolicy{MaxAttempts: 3}); err != nil {
			t.Fatal(err)
		}
		sendPings(t, sender, in.WorkQueue, 1, 1)
		testkit.Eventually(t, 20*time.Second, "second ping in the error queue", func() bool { return ep.Stats().Errored == 2 })
		if got := calls.Load(); got != 4 {
			t.Fatalf("%d calls, want 1 + 3 with maxAttempts 3", got)
		}

		// Rules: a discard rule for this error wins over the policy.
		if err := ep.SetRules([]bus.Rule{{Error: "boom", Action: "explode"}}); err == nil || !containsAll(err.Error(), "inbox.rules[0].action") {
			t.Fatalf("bad rule: %v, want an error naming inbox.rules[0].action", err)
		}
		if err := ep.Reconfigure(bus.InboxConfig{
			WorkQueue: in.WorkQueue, ErrorQueue: in.ErrorQueue, Threads: 1,
			Retry: &bus.RetryPolicy{MaxAttempts: 3}, Rules: []bus.Rule{{Error: "boom", Action: bus.ActionDiscard}},
		}); err != nil {
			t.Fatal(err)
		}
		sendPings(t, sender, in.WorkQueue, 2, 1)
		testkit.Eventually(t, 20*time.Second, "third ping discarded", func() bool { return ep.Stats().Discarded == 1 })
		if got, s := calls.Load(), ep.Stats(); got != 5 || s.Errored != 2 {
			t.Fatalf("%d calls, stats %+v: want 5 calls and still 2 in the error queue", got, s)
		}
	})
}

func TestReconfigureRefusesOrDefersWhatCannotChangeLive(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		in := inbox("live-restart", 2)
		ep := start(t, conns, bus.Config{Name: "live-restart", Inbox: in}, bus.NewMux())

		// Invalid: nothing is applied.
		bad := *in
		bad.Threads = 6
		bad.OnExpired = "keep"
		if err := ep.Reconfigure(bad); err == nil || !containsAll(err.Error(), "inbox.onExpired") {
			t.Fatalf("Reconfigure(onExpired keep): %v, want an error naming inbox.onExpired", err)
		}
		if got := ep.Threads(); got != 2 {
			t.Fatalf("threads %d after a refused Reconfigure, want 2", got)
		}
		if err := ep.SetThreads(bus.MaxLiveThreads + 1); err == nil || !containsAll(err.Error(), "inbox.threads") {
			t.Fatalf("SetThreads(%d): %v, want an error naming inbox.threads", bus.MaxLiveThreads+1, err)
		}

		// A queue change needs a restart; the rest applies.
		moved := *in
		moved.Threads = 3
		moved.WorkQueue = "sql://default/elsewhere"
		moved.Lease = time.Minute
		err := ep.Reconfigure(moved)
		var re *bus.RestartError
		if !errors.As(err, &re) || fmt.Sprint(re.Keys) != "[inbox.workQueue inbox.lease]" {
			t.Fatalf("Reconfigure(workQueue, lease changed): %v, want a RestartError for inbox.workQueue and inbox.lease", err)
		}
		if got := ep.Threads(); got != 3 {
			t.Errorf("threads %d, want 3 applied beside the restart keys", got)
		}
		if got := ep.InboxSettings().WorkQueue; got != in.WorkQueue {
			t.Errorf("work queue in force %q, want %q kept", got, in.WorkQueue)
		}
		testkit.Eventually(t, 10*time.Second, "3 threads running", func() bool { return ep.RunningThreads() == 3 })
	})
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
