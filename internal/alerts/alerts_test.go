package alerts_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor"
	"github.com/ferrybus/ferry/internal/alerts"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// clock is a time the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// hook is a webhook that records every POST it accepts; status, when set,
// is answered instead (and the POST counted in attempts).
type hook struct {
	srv      *httptest.Server
	mu       sync.Mutex
	got      []alerts.Alert
	attempts atomic.Int32
	status   atomic.Int32
	block    chan struct{} // closed when the test ends: a blocked request waits for it
	blocking atomic.Bool
}

func newHook(t *testing.T) *hook {
	h := &hook{block: make(chan struct{})}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.attempts.Add(1)
		if h.blocking.Load() {
			select {
			case <-h.block:
			case <-r.Context().Done():
			}
			return
		}
		if s := h.status.Load(); s != 0 {
			w.WriteHeader(int(s))
			return
		}
		var a alerts.Alert
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.got = append(h.got, a)
		h.mu.Unlock()
	}))
	t.Cleanup(func() { close(h.block); h.srv.Close() })
	return h
}

func (h *hook) alerts() []alerts.Alert {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]alerts.Alert(nil), h.got...)
}

// wait waits until the hook holds n alerts and returns them.
func (h *hook) wait(t *testing.T, n int) []alerts.Alert {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, fmt.Sprintf("%d webhook notifications", n), func() bool { return len(h.alerts()) >= n })
	got := h.alerts()
	if len(got) != n {
		t.Fatalf("webhook got %d notifications, want %d: %+v", len(got), n, got)
	}
	return got
}

// engine builds and starts an engine on the clock and the hook; its
// interval is long so that only the test's Evaluate calls evaluate.
func engine(t *testing.T, c *clock, h *hook, rules []alerts.Rule, setup func(e *alerts.Engine), tweak ...func(*alerts.Config)) *alerts.Engine {
	t.Helper()
	cfg := alerts.Config{
		Rules: rules, Interval: time.Hour, RepeatInterval: time.Hour, Clock: c.Now,
		Webhook: alerts.Webhook{URL: h.srv.URL, Timeout: 2 * time.Second, Backoff: time.Millisecond},
		Process: alerts.Process{ID: "p1", Host: "h", PID: 42},
	}
	for _, f := range tweak {
		f(&cfg)
	}
	_, log := testkit.NewLog()
	cfg.Logger = log
	e, err := alerts.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(e)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Stop(ctx)
	})
	return e
}

func want(t *testing.T, a alerts.Alert, status, rule, subject string) {
	t.Helper()
	if a.Status != status || a.Rule != rule || a.Subject != subject {
		t.Fatalf("notification %+v: want %s %s about %s", a, status, rule, subject)
	}
	if a.Process.ID != "p1" || a.Process.Host != "h" || a.Process.PID != 42 {
		t.Fatalf("notification %+v: process not p1@h:42", a)
	}
	if a.StartsAt.IsZero() || (status == "resolved") == a.EndsAt.IsZero() {
		t.Fatalf("notification %+v: startsAt/endsAt wrong for %s", a, status)
	}
}

func events(o bus.Observer, kind bus.EventKind, n int, attempt int) {
	for i := range n {
		o.ObserveEvent(bus.Event{Kind: kind, MessageID: fmt.Sprintf("m%d", i), Attempt: attempt})
	}
}

// A failure rate fires at the threshold once the window holds minMessages
// attempts, repeats every repeatInterval while it fires (not before), and
// resolves once healthy attempts bring it under the threshold; then again
// when the failures leave the window.
func TestFailureRate(t *testing.T) {
	c, h := newClock(), newHook(t)
	rule := alerts.Rule{Name: "orders-failing", Kind: alerts.FailureRate, Endpoint: "orders", Window: 5 * time.Minute, Threshold: 0.2, MinMessages: 20}
	var o bus.Observer
	e := engine(t, c, h, []alerts.Rule{rule}, func(e *alerts.Engine) { o = e.Observer("orders") })
	ctx := context.Background()

	events(o, bus.EventFailed, 19, 1) // all failing, but fewer than minMessages
	e.Evaluate(ctx)
	if s := e.Stats(); s.Firing != 0 || s.Notified != 0 {
		t.Fatalf("fired below minMessages: %+v", s)
	}
	events(o, bus.EventHandled, 1, 1) // 19 of 20 failed
	e.Evaluate(ctx)
	got := h.wait(t, 1)
	want(t, got[0], "firing", "orders-failing", "orders")
	if got[0].Value != 0.95 || got[0].Threshold != 0.2 || got[0].Unit != "ratio" || got[0].Kind != alerts.FailureRate {
		t.Fatalf("firing notice %+v: want value 0.95 threshold 0.2 ratio", got[0])
	}

	c.Add(time.Minute) // still firing, repeat not yet due
	e.Evaluate(ctx)
	c.Add(58 * time.Minute)
	events(o, bus.EventFailed, 20, 1)
	e.Evaluate(ctx)
	if n := e.Stats().Notified; n != 1 {
		t.Fatalf("notified %d times before repeatInterval, want 1", n)
	}
	c.Add(time.Minute) // an hour since the first notice
	e.Evaluate(ctx)
	got = h.wait(t, 2)
	want(t, got[1], "firing", "orders-failing", "orders")
	if !got[1].StartsAt.Equal(got[0].StartsAt) {
		t.Fatalf("repeat starts at %s, want the first notice's %s", got[1].StartsAt, got[0].StartsAt)
	}

	events(o, bus.EventHandled, 200, 1) // 20 of 220 failed: 9%
	e.Evaluate(ctx)
	got = h.wait(t, 3)
	want(t, got[2], "resolved", "orders-failing", "orders")

	// Fires again on a new burst, and resolves when the burst leaves the
	// window even though no message arrives after it.
	c.Add(10 * time.Minute)
	events(o, bus.EventFailed, 30, 1)
	e.Evaluate(ctx)
	got = h.wait(t, 4)
	want(t, got[3], "firing", "orders-failing", "orders")
	c.Add(6 * time.Minute)
	e.Evaluate(ctx)
	got = h.wait(t, 5)
	want(t, got[4], "resolved", "orders-failing", "orders")
	if e.Stats().Firing != 0 {
		t.Fatalf("still firing: %+v", e.Stats())
	}
}

// With fewer attempts than minMessages and some failures, a firing
// failure-rate alert stays as it is: too few attempts to tell.
func TestFailureRateKeepsStateWithFewAttempts(t *testing.T) {
	c, h := newClock(), newHook(t)
	rule := alerts.Rule{Name: "r", Kind: alerts.FailureRate, Endpoint: "orders", Window: time.Minute, Threshold: 0.5, MinMessages: 10}
	var o bus.Observer
	e := engine(t, c, h, []alerts.Rule{rule}, func(e *alerts.Engine) { o = e.Observer("orders") })
	events(o, bus.EventFailed, 10, 1)
	e.Evaluate(context.Background())
	h.wait(t, 1)
	c.Add(2 * time.Minute) // the burst left the window
	events(o, bus.EventFailed, 1, 2)
	events(o, bus.EventHandled, 3, 1)
	e.Evaluate(context.Background())
	if s := e.Stats(); s.Firing != 1 || s.Notified != 1 {
		t.Fatalf("want still firing, notified once: %+v", s)
	}
}

// A message whose failed attempt reaches the threshold fires once for its
// id (no repeat), and resolves when it is handled or moved to the error
// queue; a message below the threshold never fires.
func TestFailureCount(t *testing.T) {
	c, h := newClock(), newHook(t)
	rule := alerts.Rule{Name: "stuck", Kind: alerts.FailureCount, Endpoint: "orders", Threshold: 3}
	var o bus.Observer
	e := engine(t, c, h, []alerts.Rule{rule}, func(e *alerts.Engine) { o = e.Observer("orders") })
	ctx := context.Background()
	for attempt := 1; attempt <= 4; attempt++ {
		o.ObserveEvent(bus.Event{Kind: bus.EventFailed, MessageID: "a", Attempt: attempt})
		o.ObserveEvent(bus.Event{Kind: bus.EventRetried, MessageID: "a", Attempt: attempt})
	}
	for attempt := 1; attempt <= 2; attempt++ {
		o.ObserveEvent(bus.Event{Kind: bus.EventFailed, MessageID: "low", Attempt: attempt})
	}
	o.ObserveEvent(bus.Event{Kind: bus.EventHandled, MessageID: "low", Attempt: 3})
	o.ObserveEvent(bus.Event{Kind: bus.EventFailed, MessageID: "b", Attempt: 3})
	e.Evaluate(ctx)
	got := h.wait(t, 2)
	want(t, got[0], "firing", "stuck", "a")
	want(t, got[1], "firing", "stuck", "b")
	if got[0].Value != 4 || got[0].Unit != "attempts" || got[0].Threshold != 3 {
		t.Fatalf("firing notice %+v: want value 4 attempts, threshold 3", got[0])
	}
	c.Add(3 * time.Hour) // message alerts do not repeat
	e.Evaluate(ctx)
	if n := e.Stats().Notified; n != 2 {
		t.Fatalf("notified %d, want 2 (no repeat)", n)
	}
	o.ObserveEvent(bus.Event{Kind: bus.EventHandled, MessageID: "a", Attempt: 5})
	o.ObserveEvent(bus.Event{Kind: bus.EventFailed, MessageID: "b", Attempt: 3})
	o.ObserveEvent(bus.Event{Kind: bus.EventErrorQueued, MessageID: "b", Attempt: 3})
	e.Evaluate(ctx)
	got = h.wait(t, 4)
	want(t, got[2], "resolved", "stuck", "a")
	want(t, got[3], "resolved", "stuck", "b")
	if got[2].Message != "message a was handled after 5 attempts" || got[3].Message != "message b was moved to the error queue after 3 attempts" {
		t.Fatalf("resolved messages: %q, %q", got[2].Message, got[3].Message)
	}
	if e.Stats().Firing != 0 {
		t.Fatalf("still firing: %+v", e.Stats())
	}
}

// Message alerts are bounded: past MaxAlerts the oldest is forgotten and
// counted.
func TestFailureCountBounded(t *testing.T) {
	c, h := newClock(), newHook(t)
	rule := alerts.Rule{Name: "stuck", Kind: alerts.FailureCount, Endpoint: "orders", Threshold: 1}
	var o bus.Observer
	e := engine(t, c, h, []alerts.Rule{rule}, func(e *alerts.Engine) { o = e.Observer("orders") },
		func(cfg *alerts.Config) { cfg.MaxAlerts = 3 })
	events(o, bus.EventFailed, 5, 1)
	e.Evaluate(context.Background())
	got := h.wait(t, 3)
	for i, a := range got {
		want(t, a, "firing", "stuck", fmt.Sprintf("m%d", i+2))
	}
	if s := e.Stats(); s.Firing != 3 || s.Evicted != 2 {
		t.Fatalf("stats %+v: want 3 firing, 2 evicted", s)
	}
}

// counter is a queue whose counts the test sets.
type counter struct {
	mu  sync.Mutex
	c   queue.Counts
	err error
}

func (q *counter) Count(ctx context.Context) (queue.Counts, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.c, q.err
}

func (q *counter) set(c queue.Counts, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.c, q.err = c, err
}

// Queue depth (ready, or total) and the age of the oldest ready message
// fire over their thresholds and resolve under them; a queue that cannot
// be counted keeps its alerts as they are; a queue gated off (a standby's)
// is not evaluated.
func TestQueueDepthAndAge(t *testing.T) {
	c, h := newClock(), newHook(t)
	const uri = "sql://default/orders"
	rules := []alerts.Rule{
		{Name: "backlog", Kind: alerts.QueueDepth, Queue: uri, Threshold: 100},
		{Name: "backlog-total", Kind: alerts.QueueDepth, Queue: uri, Threshold: 100, Total: true},
		{Name: "old-head", Kind: alerts.QueueAge, Queue: uri, ThresholdDuration: 10 * time.Minute},
	}
	q := &counter{}
	var gate atomic.Bool
	gate.Store(true)
	e := engine(t, c, h, rules, func(e *alerts.Engine) { e.WatchQueue(uri, q, gate.Load) })
	ctx := context.Background()

	q.set(queue.Counts{Ready: 99, Deferred: 50, OldestReady: c.Now().Add(-9 * time.Minute)}, nil)
	e.Evaluate(ctx)
	got := h.wait(t, 1)
	want(t, got[0], "firing", "backlog-total", uri)
	if got[0].Value != 149 || got[0].Unit != "messages" {
		t.Fatalf("total notice %+v: want 149 messages", got[0])
	}
	c.Add(2 * time.Minute) // the head is 11 minutes old now
	q.set(queue.Counts{Ready: 100, OldestReady: c.Now().Add(-11 * time.Minute)}, nil)
	e.Evaluate(ctx)
	got = h.wait(t, 3)
	want(t, got[1], "firing", "backlog", uri)
	want(t, got[2], "firing", "old-head", uri)
	if got[2].Value != 660 || got[2].Threshold != 600 || got[2].Unit != "seconds" {
		t.Fatalf("age notice %+v: want 660 s over 600 s", got[2])
	}
	if s := e.Stats(); s.Firing != 3 {
		t.Fatalf("firing %d, want 3", s.Firing)
	}

	q.set(queue.Counts{}, errors.New("database down"))
	e.Evaluate(ctx)
	if s := e.Stats(); s.Firing != 3 || s.Notified != 3 {
		t.Fatalf("an unsampled queue changed its alerts: %+v", s)
	}
	gate.Store(false)
	q.set(queue.Counts{}, nil)
	e.Evaluate(ctx)
	if s := e.Stats(); s.Firing != 3 {
		t.Fatalf("a gated-off queue was evaluated: %+v", s)
	}
	gate.Store(true)
	e.Evaluate(ctx)
	got = h.wait(t, 6)
	for i, name := range []string{"backlog", "backlog-total", "old-head"} {
		want(t, got[3+i], "resolved", name, uri)
	}
}

// dist is a distributor whose registry and role the test sets.
type dist struct {
	mu     sync.Mutex
	active bool
	snap   distributor.Snapshot
}

func (d *dist) Active() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.active
}

func (d *dist) Registry() distributor.Snapshot {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := distributor.Snapshot{Workers: map[string]string{}, LastSeen: map[string]time.Time{}}
	for k, v := range d.snap.Workers {
		s.Workers[k] = v
		s.LastSeen[k] = d.snap.LastSeen[k]
	}
	return s
}

func (d *dist) seen(id string, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.snap.Workers[id] = "session-" + id
	d.snap.LastSeen[id] = at
}

func (d *dist) forget(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.snap.Workers, id)
	delete(d.snap.LastSeen, id)
}

func (d *dist) setActive(a bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.active = a
}

// A worker silent past the threshold fires; it resolves when heard from
// again, or when the distributor forgets it.
func TestWorkerSilent(t *testing.T) {
	c, h := newClock(), newHook(t)
	rule := alerts.Rule{Name: "worker-silent", Kind: alerts.WorkerSilent, Endpoint: "dist", ThresholdDuration: 30 * time.Second}
	d := &dist{active: true, snap: distributor.Snapshot{Workers: map[string]string{}, LastSeen: map[string]time.Time{}}}
	e := engine(t, c, h, []alerts.Rule{rule}, func(e *alerts.Engine) { e.WatchDistributor("dist", d) })
	ctx := context.Background()
	d.seen("w1", c.Now())
	d.seen("w2", c.Now())
	c.Add(30 * time.Second) // exactly the threshold: not longer
	e.Evaluate(ctx)
	if n := e.Stats().Notified; n != 0 {
		t.Fatalf("fired at the threshold: %d", n)
	}
	d.seen("w2", c.Now())
	c.Add(time.Second)
	e.Evaluate(ctx)
	got := h.wait(t, 1)
	want(t, got[0], "firing", "worker-silent", "w1")
	if got[0].Value != 31 || got[0].Threshold != 30 {
		t.Fatalf("notice %+v: want 31 s over 30 s", got[0])
	}
	c.Add(40 * time.Second) // w2 silent now too
	e.Evaluate(ctx)
	got = h.wait(t, 2)
	want(t, got[1], "firing", "worker-silent", "w2")
	d.seen("w1", c.Now())
	d.forget("w2")
	e.Evaluate(ctx)
	got = h.wait(t, 4)
	want(t, got[2], "resolved", "worker-silent", "w1")
	want(t, got[3], "resolved", "worker-silent", "w2")
}

// A distributor that was active and is not fires lockLost, repeated while
// it stands by, resolved when active again; a stopping engine does not
// fire it.
func TestLockLost(t *testing.T) {
	c, h := newClock(), newHook(t)
	rule := alerts.Rule{Name: "lock-lost", Kind: alerts.LockLost, Endpoint: "dist"}
	d := &dist{}
	e := engine(t, c, h, []alerts.Rule{rule}, func(e *alerts.Engine) { e.WatchDistributor("dist", d) })
	ctx := context.Background()
	e.Evaluate(ctx) // a standby from the start: nothing lost
	d.setActive(true)
	e.Evaluate(ctx)
	if n := e.Stats().Notified; n != 0 {
		t.Fatalf("notified %d before any loss", n)
	}
	d.setActive(false)
	e.Evaluate(ctx)
	got := h.wait(t, 1)
	want(t, got[0], "firing", "lock-lost", "dist")
	c.Add(time.Hour)
	e.Evaluate(ctx)
	got = h.wait(t, 2)
	want(t, got[1], "firing", "lock-lost", "dist")
	d.setActive(true)
	e.Evaluate(ctx)
	got = h.wait(t, 3)
	want(t, got[2], "resolved", "lock-lost", "dist")

	stopped := engine(t, c, h, []alerts.Rule{rule}, func(e *alerts.Engine) { e.WatchDistributor("dist", d) })
	stopped.Evaluate(ctx)
	stopped.Stop(ctx)
	d.setActive(false)
	stopped.Evaluate(ctx)
	if n := stopped.Stats().Notified; n != 0 {
		t.Fatalf("a stopping engine notified lockLost %d times", n)
	}
}

// A webhook that fails is tried MaxAttempts times per notification, then
// given up; one that does not answer is bounded by the timeout, and the
// notifications beyond the pending bound are dropped: the observers and
// Evaluate never wait for it.
func TestWebhookDown(t *testing.T) {
	c, h := newClock(), newHook(t)
	h.status.Store(http.StatusServiceUnavailable)
	rule := alerts.Rule{Name: "stuck", Kind: alerts.FailureCount, Endpoint: "orders", Threshold: 1}
	var o bus.Observer
	e := engine(t, c, h, []alerts.Rule{rule}, func(e *alerts.Engine) { o = e.Observer("orders") },
		func(cfg *alerts.Config) { cfg.Webhook.MaxAttempts = 4 })
	events(o, bus.EventFailed, 1, 1)
	e.Evaluate(context.Background())
	testkit.Eventually(t, 10*time.Second, "the notification given up", func() bool { return e.Stats().Failed == 1 })
	if n := h.attempts.Load(); n != 4 {
		t.Fatalf("webhook tried %d times, want 4", n)
	}

	h2 := newHook(t)
	h2.blocking.Store(true)
	e2 := engine(t, c, h2, []alerts.Rule{rule}, func(e *alerts.Engine) { o = e.Observer("orders") },
		func(cfg *alerts.Config) {
			cfg.Pending = 2
			cfg.Webhook.MaxAttempts = 1
			cfg.Webhook.Timeout = time.Minute
		})
	// One notification is being sent (blocked), two wait, the rest are dropped.
	events(o, bus.EventFailed, 1, 1)
	e2.Evaluate(context.Background())
	testkit.Eventually(t, 10*time.Second, "the first POST to block", func() bool { return h2.attempts.Load() == 1 })
	for i := range 50 {
		o.ObserveEvent(bus.Event{Kind: bus.EventFailed, MessageID: fmt.Sprintf("x%d", i), Attempt: 1})
		e2.Evaluate(context.Background())
	}
	s := e2.Stats()
	if s.Notified != 51 || s.Dropped != 48 {
		t.Fatalf("stats %+v: want 51 notified, 48 dropped (1 sending, 2 pending)", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	e2.Stop(ctx) // gives up the blocked POST when ctx ends
	if s := e2.Stats(); s.Dropped != 50 || s.Failed != 1 || s.Sent != 0 {
		t.Fatalf("after stop %+v: want the blocked one failed, the 2 pending dropped too, none sent", s)
	}
}

// New refuses bad rules, Start rules without their source.
func TestEngineChecks(t *testing.T) {
	bad := [][]alerts.Rule{
		{{Name: "", Kind: alerts.LockLost, Endpoint: "d"}},
		{{Name: "x", Kind: "nope"}},
		{{Name: "x", Kind: alerts.FailureRate, Endpoint: "e", Window: time.Minute, Threshold: 1.5, MinMessages: 1}},
		{{Name: "x", Kind: alerts.LockLost, Endpoint: "d"}, {Name: "x", Kind: alerts.LockLost, Endpoint: "d"}},
	}
	for i, rules := range bad {
		if _, err := alerts.New(alerts.Config{Rules: rules}); err == nil {
			t.Errorf("case %d: New accepted %+v", i, rules)
		}
	}
	e, err := alerts.New(alerts.Config{Rules: []alerts.Rule{{Name: "q", Kind: alerts.QueueDepth, Queue: "sql://default/q", Threshold: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err == nil {
		e.Stop(context.Background())
		t.Fatal("Start accepted a queue rule without its queue")
	}
}
