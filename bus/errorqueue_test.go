package bus_test

// Error-queue operations: list with filters and paging, show, retry to the
// source queue (same and other database), discard, each by id and by
// filter, and in batches for large queues.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ferrybus/ferry/internal/testkit"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/queue"
)

// t0 is the time the seeded failures are dated from.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// seed is a message put straight into an error queue, as an endpoint would
// have left it.
type seed struct {
	id, typ, src, kind, err string
	at                      time.Time
	failures                int
}

func seedMessage(t testing.TB, s seed) queue.Message {
	t.Helper()
	n := max(s.failures, 1)
	fs := make([]bus.Failure, n)
	for i := range fs {
		fs[i] = bus.Failure{At: s.at.Add(time.Duration(i-n+1) * time.Second), Endpoint: "seeder", Error: "earlier failure", Kind: bus.KindError}
	}
	fs[n-1].Error, fs[n-1].Kind = s.err, s.kind
	if s.kind == bus.KindPanic {
		fs[n-1].Stack = "goroutine 1 [running]:\nmain.handler()"
	}
	fb, err := json.Marshal(fs)
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]string{
		bus.HeaderFailures:    string(fb),
		bus.HeaderError:       s.err,
		bus.HeaderContentType: "application/json",
		"tenant":              "t1",
	}
	if s.src != "" {
		h[bus.HeaderSourceQueue] = s.src
	}
	return queue.Message{MessageID: s.id, Type: s.typ, Headers: h, Body: []byte(`{"seed":"` + s.id + `"}`)}
}

func seedErrorQueue(t testing.TB, conns *queue.Connections, uri string, seeds ...seed) {
	t.Helper()
	q, err := conns.Queue(context.Background(), uri)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]queue.Message, len(seeds))
	for i, s := range seeds {
		msgs[i] = seedMessage(t, s)
	}
	if err := q.Enqueue(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

func idsOf(ms []bus.FailedMessage) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// forEachStorePair runs fn with connections "default" and "other" on two
// databases: the dialect under test, and the other dialect.
func forEachStorePair(t *testing.T, fn func(t *testing.T, conns *queue.Connections)) {
	for _, d := range testdb.Dialects() {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			other := "sqlite"
			if d == "sqlite" {
				other = "postgres"
			}
			conns := queue.NewConnections(map[string]string{"default": testdb.DSN(t, d), "other": testdb.DSN(t, other)},
				queue.Options{AutoMigrate: true, MaxPoll: 100 * time.Millisecond})
			t.Cleanup(func() { conns.Close() })
			fn(t, conns)
		})
	}
}

const errURI = "sql://default/app-error"

func TestErrorQueueListShowFilters(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		at := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
		seeds := []seed{
			{"e1", "orders.placed", "sql://default/orders", bus.KindError, "db timeout", at(1), 3},
			{"e2", "orders.placed", "sql://default/orders", bus.KindPanic, "panic: nil map", at(2), 3},
			{"e3", "orders.cancelled", "sql://default/orders", bus.KindError, "invalid state", at(3), 1},
			{"e4", "billing.charged", "sql://default/billing", bus.KindError, "card declined: timeout", at(4), 5},
			{"e5", "billing.charged", "sql://default/billing", bus.KindDecode, "decode message e5", at(5), 3},
			{"e6", "orders.placed", "sql://default/orders", bus.KindError, "db timeout", at(6), 2},
		}
		for i := range 14 {
			seeds = append(seeds, seed{fmt.Sprintf("b%02d", i), "bulk.item", "sql://default/bulk", bus.KindError, "x", at(10 + i), 1})
		}
		seedErrorQueue(t, conns, errURI, seeds...)
		eq := openErrorQueue(t, conns, errURI)

		for _, tc := range []struct {
			name string
			f    bus.Filter
			want []string
		}{
			{"type pattern", bus.Filter{Type: "orders.*"}, []string{"e1", "e2", "e3", "e6"}},
			{"error text", bus.Filter{Error: "timeout"}, []string{"e1", "e4", "e6"}},
			{"kind", bus.Filter{Kind: bus.KindPanic}, []string{"e2"}},
			{"since and before", bus.Filter{Since: at(3), Before: at(6)}, []string{"e3", "e4", "e5"}},
			{"source queue", bus.Filter{SourceQueue: "sql://default/billing"}, []string{"e4", "e5"}},
			{"ids", bus.Filter{IDs: []string{"e5", "e1", "nope"}}, []string{"e1", "e5"}},
			{"ids and type", bus.Filter{IDs: []string{"e1", "e4"}, Type: "orders.*"}, []string{"e1"}},
			{"type and error", bus.Filter{Type: "orders.placed", Error: "timeout"}, []string{"e1", "e6"}},
			{"nothing", bus.Filter{Type: "nobody"}, []string{}},
		} {
			got := idsOf(listAll(t, eq, tc.f))
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s: listed %v, want %v", tc.name, got, tc.want)
			}
			n, err := eq.Count(ctx, tc.f)
			if err != nil || n != len(tc.want) {
				t.Errorf("%s: counted %d (%v), want %d", tc.name, n, err, len(tc.want))
			}
		}
		if n, _ := eq.Count(ctx, bus.Filter{}); n != 20 {
			t.Errorf("counted %d in all, want 20", n)
		}

		// Pages follow the cursor and cover everything once, in order.
		for _, tc := range []struct {
			f     bus.Filter
			limit int
			sizes []int
		}{
			{bus.Filter{}, 6, []int{6, 6, 6, 2}},
			{bus.Filter{Type: "bulk.*"}, 5, []int{5, 5, 4}},
		} {
			var all []string
			var sizes []int
			after := int64(0)
			for range 10 {
				page, err := eq.List(ctx, bus.ListOptions{Filter: tc.f, After: after, Limit: tc.limit})
				if err != nil {
					t.Fatal(err)
				}
				if len(page.Messages) > 0 {
					sizes = append(sizes, len(page.Messages))
				}
				all = append(all, idsOf(page.Messages)...)
				if page.Next == 0 {
					break
				}
				after = page.Next
			}
			want := idsOf(listAll(t, eq, tc.f))
			if !slices.Equal(all, want) || !slices.Equal(sizes, tc.sizes) {
				t.Errorf("pages of %d with %+v: %v in pages %v, want %v in %v", tc.limit, tc.f, all, sizes, want, tc.sizes)
			}
		}
		if _, err := eq.List(ctx, bus.ListOptions{Filter: bus.Filter{Type: "[oops"}}); err == nil || !strings.Contains(err.Error(), errURI) {
			t.Errorf("bad type pattern: %v, want an error naming the queue", err)
		}

		// A summary carries what a person needs to decide.
		e4 := byType(listAll(t, eq, bus.Filter{IDs: []string{"e4"}}))["billing.charged"]
		if e4.SourceQueue != "sql://default/billing" || e4.Error != "card declined: timeout" || e4.Kind != bus.KindError ||
			e4.Failures != 5 || !e4.FailedAt.Equal(at(4)) || e4.BodyBytes != len(`{"seed":"e4"}`) || e4.Envelope != nil {
			t.Errorf("summary %+v", e4)
		}
		if b, err := json.Marshal(e4); err != nil || !strings.Contains(string(b), `"sourceQueue":"sql://default/billing"`) {
			t.Errorf("summary as JSON: %s %v", b, err)
		}

		// Show decodes the whole message and its failure history.
		m, err := eq.Show(ctx, "e2")
		if err != nil {
			t.Fatal(err)
		}
		env := m.Envelope
		if env == nil || len(env.Failures) != 3 || env.Failures[2].Kind != bus.KindPanic || !strings.Contains(env.Failures[2].Stack, "goroutine") ||
			env.Failures[0].Error != "earlier failure" || env.Failures[2].Endpoint != "seeder" {
			t.Fatalf("shown %+v", env)
		}
		if env.Type != "orders.placed" || string(env.Body) != `{"seed":"e2"}` || env.ContentType != "application/json" ||
			env.Headers["tenant"] != "t1" || env.Headers[bus.HeaderSourceQueue] != "" || m.SourceQueue != "sql://default/orders" {
			t.Errorf("shown envelope %+v, summary %+v", env, m)
		}
		if _, err := eq.Show(ctx, "nope"); !errors.Is(err, bus.ErrNotFound) || !strings.Contains(err.Error(), "nope") {
			t.Errorf("show of a missing id: %v", err)
		}
	})
}

func TestErrorQueueRetry(t *testing.T) {
	forEachStorePair(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		seedErrorQueue(t, conns, errURI,
			seed{"r1", "orders.placed", "sql://default/orders", bus.KindError, "db down", t0, 3},
			seed{"r2", "orders.placed", "sql://default/orders", bus.KindError, "db down", t0, 3},
			seed{"r3", "billing.charged", "sql://default/billing", bus.KindError, "db down", t0, 3},
			seed{"r4", "billing.charged", "sql://other/billing", bus.KindError, "db down", t0, 3}, // another database
			seed{"r5", "misc", "", bus.KindError, "db down", t0, 1},                               // no source recorded
			seed{"r6", "misc", "", bus.KindError, "db down", t0, 1},
		)
		eq := openErrorQueue(t, conns, errURI)

		// By filter, keeping the failure history.
		var progress []int
		n, err := eq.Retry(ctx, bus.Filter{Type: "orders.*"}, bus.RetryOptions{Progress: func(done int) { progress = append(progress, done) }})
		if err != nil || n != 2 {
			t.Fatalf("retry orders.*: %d %v, want 2", n, err)
		}
		if !slices.Equal(progress, []int{2}) {
			t.Errorf("progress %v, want [2]", progress)
		}
		back := peekAll(t, conns, "sql://default/orders")
		if len(back) != 2 {
			t.Fatalf("orders queue holds %d", len(back))
		}
		for _, d := range back {
			if _, ok := d.Headers[bus.HeaderSourceQueue]; ok {
				t.Errorf("%s kept %s", d.MessageID, bus.HeaderSourceQueue)
			}
			if _, ok := d.Headers[bus.HeaderError]; ok {
				t.Errorf("%s kept %s", d.MessageID, bus.HeaderError)
			}
			if len(failuresOf(t, d)) != 3 || d.Headers["tenant"] != "t1" || d.Attempts != 0 || d.VisibleAt.After(time.Now()) {
				t.Errorf("returned %s: %d failures, headers %v, attempts %d, visible %v", d.MessageID, len(failuresOf(t, d)), d.Headers, d.Attempts, d.VisibleAt)
			}
		}

		// By id, to the same and to another database, resetting the history.
		n, err = eq.Retry(ctx, bus.Filter{IDs: []string{"r3", "r4"}}, bus.RetryOptions{ResetFailures: true})
		if err != nil || n != 2 {
			t.Fatalf("retry r3 r4: %d %v, want 2", n, err)
		}
		for _, uri := range []string{"sql://default/billing", "sql://other/billing"} {
			ds := peekAll(t, conns, uri)
			if len(ds) != 1 {
				t.Fatalf("%s holds %d", uri, len(ds))
			}
			d := ds[0]
			if len(d.Headers) != 2 || d.Headers["tenant"] != "t1" || d.Headers[bus.HeaderContentType] != "application/json" {
				t.Errorf("%s: %s returned with headers %v, want the failure history and error-queue headers gone", uri, d.MessageID, d.Headers)
			}
		}

		// Messages with no recorded source stay put, and say why.
		n, err = eq.Retry(ctx, bus.Filter{}, bus.RetryOptions{})
		if n != 0 || !errors.Is(err, bus.ErrNoSourceQueue) || !strings.Contains(err.Error(), "2 message(s)") {
			t.Errorf("retry without a source: %d %v", n, err)
		}
		if c := testkit.Count(t, conns, errURI); c.Total() != 2 {
			t.Errorf("error queue %+v, want r5 and r6 left", c)
		}
		// An explicit destination takes them.
		n, err = eq.Retry(ctx, bus.Filter{IDs: []string{"r5"}}, bus.RetryOptions{To: "sql://default/manual"})
		if err != nil || n != 1 || testkit.Count(t, conns, "sql://default/manual").Ready != 1 {
			t.Errorf("retry r5 to manual: %d %v", n, err)
		}
		if _, err := eq.Retry(ctx, bus.Filter{}, bus.RetryOptions{To: "sql://nowhere/q"}); err == nil || !strings.Contains(err.Error(), "nowhere") {
			t.Errorf("retry to an unknown connection: %v", err)
		}
		// A source on an unknown connection is an error naming message and queue.
		seedErrorQueue(t, conns, errURI, seed{"r7", "misc", "sql://gone/q", bus.KindError, "x", t0, 1})
		if _, err := eq.Retry(ctx, bus.Filter{IDs: []string{"r7"}}, bus.RetryOptions{}); err == nil || !strings.Contains(err.Error(), "r7") || !strings.Contains(err.Error(), "sql://gone/q") {
			t.Errorf("retry to a source on an unknown connection: %v", err)
		}
		if got := idsOf(listAll(t, eq, bus.Filter{})); !slices.Equal(got, []string{"r6", "r7"}) {
			t.Errorf("left %v, want r6 r7", got)
		}
	})
}

func TestErrorQueueDiscard(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		var seeds []seed
		for i := range 10 {
			kind := bus.KindError
			if i%3 == 0 {
				kind = bus.KindPanic
			}
			seeds = append(seeds, seed{fmt.Sprintf("d%d", i), "orders.placed", "sql://default/orders", kind, fmt.Sprintf("failure %d", i), t0.Add(time.Duration(i) * time.Hour), 1})
		}
		seedErrorQueue(t, conns, errURI, seeds...)
		eq := openErrorQueue(t, conns, errURI)
		eq.BatchSize = 2

		n, err := eq.Discard(ctx, bus.Filter{Kind: bus.KindPanic}, bus.DiscardOptions{}) // d0 d3 d6 d9
		if err != nil || n != 4 {
			t.Fatalf("discard panics: %d %v, want 4", n, err)
		}
		n, err = eq.Discard(ctx, bus.Filter{IDs: []string{"d1", "d2", "d3"}}, bus.DiscardOptions{}) // d3 is gone already
		if err != nil || n != 2 {
			t.Fatalf("discard by id: %d %v, want 2", n, err)
		}
		n, err = eq.Discard(ctx, bus.Filter{Since: t0.Add(7 * time.Hour), Error: "failure"}, bus.DiscardOptions{}) // d7 d8
		if err != nil || n != 2 {
			t.Fatalf("discard since: %d %v, want 2", n, err)
		}
		if got := idsOf(listAll(t, eq, bus.Filter{})); !slices.Equal(got, []string{"d4", "d5"}) {
			t.Errorf("left %v, want d4 d5", got)
		}
		var calls []int
		n, err = eq.Discard(ctx, bus.Filter{}, bus.DiscardOptions{Progress: func(done int) { calls = append(calls, done) }})
		if err != nil || n != 2 || !slices.Equal(calls, []int{2}) {
			t.Errorf("discard the rest: %d %v, progress %v", n, err, calls)
		}
		if c := testkit.Count(t, conns, errURI); c.Total() != 0 {
			t.Errorf("error queue %+v, want empty", c)
		}
		if c := testkit.Count(t, conns, "sql://default/orders"); c.Total() != 0 {
			t.Errorf("discard moved messages: orders %+v", c)
		}
	})
}

// TestErrorQueueRetryEndToEnd returns messages an endpoint parked: without
// a reset a message that fails again is parked at once; with a reset it
// gets every attempt again; a message that now succeeds is handled once.
func TestErrorQueueRetryEndToEnd(t *testing.T) {
	const maxAttempts = 3
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		var down atomic.Bool
		down.Store(true)
		var calls callCounter
		var handled atomic.Int32
		mux := bus.NewMux()
		mux.HandleFunc("job", func(ctx context.Context, m *bus.Message) error {
			calls.add(m)
			if down.Load() {
				return errors.New("service unavailable")
			}
			handled.Add(1)
			return nil
		})
		in := inbox("e2e", 2)
		in.Retry = &bus.RetryPolicy{MaxAttempts: maxAttempts}
		ep := start(t, conns, bus.Config{Name: "e2e", Inbox: in}, mux)
		for _, id := range []string{"m1", "m2", "m3"} {
			if err := ep.Send(ctx, bus.Raw{Type: "job", Body: []byte("{}")}, bus.To(in.WorkQueue), bus.MessageID(id)); err != nil {
				t.Fatal(err)
			}
		}
		eq := openErrorQueue(t, conns, in.ErrorQueue)
		parked := func(n int64) func() bool {
			return func() bool { return ep.Stats().Errored == n }
		}
		testkit.Eventually(t, 10*time.Second, "three parked", parked(3))

		// Still down, history kept: one more attempt, parked again at once.
		if n, err := eq.Retry(ctx, bus.Filter{IDs: []string{"m1"}}, bus.RetryOptions{}); err != nil || n != 1 {
			t.Fatalf("retry m1: %d %v", n, err)
		}
		testkit.Eventually(t, 10*time.Second, "m1 parked again", parked(4))
		if got := calls.ids()["m1"]; got != maxAttempts+1 {
			t.Errorf("m1 tried %d times, want %d", got, maxAttempts+1)
		}
		if m, err := eq.Show(ctx, "m1"); err != nil || len(m.Envelope.Failures) != maxAttempts+1 {
			t.Errorf("m1 history after a second parking: %v", err)
		}

		// Still down, history reset: every attempt again.
		if n, err := eq.Retry(ctx, bus.Filter{IDs: []string{"m2"}}, bus.RetryOptions{ResetFailures: true}); err != nil || n != 1 {
			t.Fatalf("retry m2: %d %v", n, err)
		}
		testkit.Eventually(t, 10*time.Second, "m2 parked again", parked(5))
		if got := calls.ids()["m2"]; got != 2*maxAttempts {
			t.Errorf("m2 tried %d times, want %d", got, 2*maxAttempts)
		}
		if m, err := eq.Show(ctx, "m2"); err != nil || len(m.Envelope.Failures) != maxAttempts {
			t.Errorf("m2 history after a reset: %v", err)
		}

		// Back up: everything returned is handled once, nothing is left.
		down.Store(false)
		n, err := eq.Retry(ctx, bus.Filter{Type: "job"}, bus.RetryOptions{})
		if err != nil || n != 3 {
			t.Fatalf("retry all: %d %v", n, err)
		}
		testkit.Eventually(t, 10*time.Second, "all handled", func() bool { return ep.Stats().Handled == 3 })
		if handled.Load() != 3 || testkit.Count(t, conns, in.ErrorQueue).Total() != 0 || testkit.Count(t, conns, in.WorkQueue).Total() != 0 {
			t.Errorf("handled %d; error queue %+v; work queue %+v", handled.Load(), testkit.Count(t, conns, in.ErrorQueue), testkit.Count(t, conns, in.WorkQueue))
		}
	})
}

// TestErrorQueueRetryBatched returns 20,000 messages with 1,000 per
// statement: 20 moves, not 20,000 round trips.
func TestErrorQueueRetryBatched(t *testing.T) {
	const total, batch = 20000, 1000
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		q, err := conns.Queue(ctx, errURI)
		if err != nil {
			t.Fatal(err)
		}
		even := seedMessage(t, seed{"", "bulk.item", "sql://default/src", bus.KindError, "db down", t0, 3})
		odd := seedMessage(t, seed{"", "bulk.item", "sql://default/src-odd", bus.KindError, "db down", t0, 3})
		msgs := make([]queue.Message, total)
		for i := range msgs {
			msgs[i] = even
			if i%2 == 1 {
				msgs[i] = odd
			}
			msgs[i].MessageID = fmt.Sprintf("big-%05d", i)
		}
		if err := q.Enqueue(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		eq := openErrorQueue(t, conns, errURI)
		eq.BatchSize = batch
		statements := 0
		started := time.Now()
		n, err := eq.Retry(ctx, bus.Filter{SourceQueue: "sql://default/src"}, bus.RetryOptions{Progress: func(int) { statements++ }})
		if err != nil || n != total/2 {
			t.Fatalf("retry: %d %v, want %d", n, err, total/2)
		}
		// Each page of 1000 rows holds 500 of src: one UPDATE per page.
		if statements != total/batch {
			t.Errorf("%d move statements for %d messages, want %d", statements, n, total/batch)
		}
		statements = 0
		n, err = eq.Retry(ctx, bus.Filter{}, bus.RetryOptions{ResetFailures: true, Progress: func(int) { statements++ }})
		if err != nil || n != total/2 || statements != total/2/batch {
			t.Errorf("retry the rest: %d in %d statements (%v), want %d in %d", n, statements, err, total/2, total/2/batch)
		}
		t.Logf("returned %d messages in %s", total, time.Since(started))
		if a, b := testkit.Count(t, conns, "sql://default/src"), testkit.Count(t, conns, "sql://default/src-odd"); a.Ready != total/2 || b.Ready != total/2 {
			t.Errorf("source queues hold %+v and %+v", a, b)
		}
		if c := testkit.Count(t, conns, errURI); c.Total() != 0 {
			t.Errorf("error queue %+v, want empty", c)
		}
	})
}
