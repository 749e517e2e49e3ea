package dashboard

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// TestOverview: every configured queue (the empty one too) and every queue
// holding messages, with its counts and paused state; the error queue's
// size; the fragment the page refreshes from; the sampler's chart.
func TestOverview(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		enqueue(t, conns, ordersURI, queue.Message{MessageID: "a"}, queue.Message{MessageID: "b"}, queue.Message{MessageID: "c"},
			queue.Message{MessageID: "later", VisibleAt: time.Now().Add(time.Hour)})
		enqueue(t, conns, otherURI, queue.Message{MessageID: "x"})
		seedErrors(t, conns, failed{id: "e1", typ: "orders.placed", src: ordersURI, kind: bus.KindError, err: "boom"},
			failed{id: "e2", typ: "orders.placed", src: ordersURI, kind: bus.KindError, err: "boom"})
		q, _ := conns.Queue(ctx, ordersURI)
		if _, err := q.Receive(ctx, 1, time.Minute); err != nil {
			t.Fatal(err)
		}
		s, _ := conns.Store(ctx, "default")
		if err := s.PauseQueue(ctx, "quiet"); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig()
		cfg.SampleInterval = 50 * time.Millisecond
		h := newDash(t, conns, cfg)
		for _, path := range []string{"/", "/fragment/overview"} {
			r := get(t, h, path)
			mustStatus(t, r, http.StatusOK, path)
			orders := row(r.Body, "queue-row", "data-queue", ordersURI)
			if got := [3]string{cell(t, orders, "ready"), cell(t, orders, "deferred"), cell(t, orders, "inflight")}; got != [3]string{"2", "1", "1"} {
				t.Errorf("%s: orders ready/deferred/in flight = %v, want [2 1 1]", path, got)
			}
			if cell(t, orders, "oldest") == "–" {
				t.Errorf("%s: orders shows no oldest ready age", path)
			}
			quiet := row(r.Body, "queue-row", "data-queue", emptyURI)
			if cell(t, quiet, "ready") != "0" || !strings.Contains(quiet, "paused") {
				t.Errorf("%s: the empty configured queue is not shown empty and paused: %s", path, quiet)
			}
			if other := row(r.Body, "queue-row", "data-queue", otherURI); cell(t, other, "ready") != "1" {
				t.Errorf("%s: the unconfigured queue of connection other is missing: %s", path, other)
			}
			if row(r.Body, "queue-row", "data-queue", errorURI) != "" {
				t.Errorf("%s: the error queue is listed among the work queues", path)
			}
			if eq := row(r.Body, "error-queue-row", "data-queue", errorURI); cell(t, eq, "size") != "2" {
				t.Errorf("%s: error queue size: %s", path, eq)
			}
		}
		if r := get(t, h, "/fragment/overview"); strings.Contains(r.Body, "<html") {
			t.Error("the fragment is a whole page")
		}
		// The sampler draws a chart once it has two samples; a third
		// enqueue shows as growth.
		enqueue(t, conns, ordersURI, queue.Message{MessageID: "d"})
		if err := testkit.Poll(ctx, 10*time.Second, 20*time.Millisecond, func() bool {
			return strings.Contains(get(t, h, "/").Body, `aria-label="enqueued per minute, default"`)
		}); err != nil {
			t.Fatalf("no enqueue chart for connection default: %v", err)
		}
	})
}

// TestWorkersPage: the distributor's recorded view, with each instance's
// and worker's state.
func TestWorkersPage(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		s, _ := conns.Store(ctx, "default")
		now := time.Now()
		control := "sql://default/control"
		for _, inst := range []queue.DistributorInstance{
			{ControlQueue: control, Owner: "o-active", Name: "dist", Host: "h1", PID: 10, Active: true, Interval: time.Hour, ReclaimAfter: time.Minute, Updated: now},
			{ControlQueue: control, Owner: "o-standby", Name: "dist", Host: "h2", PID: 11, Interval: time.Hour, ReclaimAfter: time.Minute, Updated: now},
		} {
			if err := s.RecordDistributor(ctx, inst, now.Add(-time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.RecordWorkerView(ctx, control, now, []queue.WorkerView{
			{ID: "w1", Session: "s1", Queue: "sql://default/worker-w1", Threads: 4, Idle: 3, LastSeen: now, Depth: 7},
			{ID: "w2", Session: "s2", Queue: "sql://default/worker-w2", Threads: 2, Idle: 0, LastSeen: now, Depth: 0, Stopping: true},
			{ID: "w3", Session: "s3", Queue: "sql://default/worker-w3", Threads: 2, LastSeen: now.Add(-10 * time.Minute), Depth: -1},
		}); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig()
		cfg.Queues["sql://default/worker-{id}"] = []string{"worker.inbox"}
		h := newDash(t, conns, cfg)
		for _, path := range []string{"/workers", "/fragment/workers"} {
			r := get(t, h, path)
			mustStatus(t, r, http.StatusOK, path)
			for _, want := range []string{`data-testid="instance-row" data-state="active"`, `data-testid="instance-row" data-state="standby"`,
				`data-worker="w1" data-state="ok"`, `data-worker="w2" data-state="stopping"`, `data-worker="w3" data-state="silent"`, "3/4", ">7<"} {
				if !strings.Contains(r.Body, want) {
					t.Errorf("%s lacks %q", path, want)
				}
			}
		}
		// The overview lists the recorded workers' queues of the {id} pattern.
		if r := get(t, h, "/"); row(r.Body, "queue-row", "data-queue", "sql://default/worker-w1") == "" {
			t.Error("the overview lacks worker w1's queue")
		}
	})
}

// TestErrorQueuePages: the list with its filters, the failure groups, and
// a message's history and pretty body.
func TestErrorQueuePages(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		seedErrors(t, conns,
			failed{id: "m1", typ: "orders.placed", src: ordersURI, kind: bus.KindError, err: "order 12 timed out after 5s", failures: 3},
			failed{id: "m2", typ: "orders.placed", src: ordersURI, kind: bus.KindError, err: "order 977 timed out after 6s"},
			failed{id: "m3", typ: "orders.paid", src: otherURI, kind: bus.KindPanic, err: "nil map"},
			failed{id: "m4", typ: "invoices.sent", src: ordersURI, kind: bus.KindError, err: "nil map"})
		h := newDash(t, conns, testConfig())
		r := get(t, h, "/errors")
		mustStatus(t, r, http.StatusOK, "/errors")
		if testid(t, r.Body, "total") != "4" || testid(t, r.Body, "matching") != "4" {
			t.Errorf("total/matching: %s/%s", testid(t, r.Body, "total"), testid(t, r.Body, "matching"))
		}
		// Groups: the two time-outs are one group; "nil map" splits by kind.
		if n := strings.Count(r.Body, `data-testid="group-row"`); n != 3 {
			t.Errorf("%d groups, want 3", n)
		}
		if got := testid(t, r.Body, "group-count"); got != "2" {
			t.Errorf("largest group has %s messages, want 2", got)
		}
		if !strings.Contains(r.Body, "order # timed out after #s") {
			t.Error("the time-out group's normalised text is missing")
		}
		for q, want := range map[string][]string{
			"type=orders.*":                       {"m1", "m2", "m3"},
			"kind=panic":                          {"m3"},
			"error=977":                           {"m2"},
			"source=" + url.QueryEscape(otherURI): {"m3"},
			"since=1h":                            {"m1", "m2", "m3", "m4"},
			"limit=2":                             {"m1", "m2"},
		} {
			r := get(t, h, "/errors?queue="+url.QueryEscape(errorURI)+"&"+q)
			mustStatus(t, r, http.StatusOK, q)
			var got []string
			for _, id := range []string{"m1", "m2", "m3", "m4"} {
				if row(r.Body, "message-row", "data-id", id) != "" {
					got = append(got, id)
				}
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("%s: listed %v, want %v", q, got, want)
			}
		}
		if r := get(t, h, "/errors?limit=2"); !strings.Contains(r.Body, `id="next-page"`) {
			t.Error("a full page has no next-page link")
		}
		if r := get(t, h, "/errors?kind=nope"); r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "kind") {
			t.Errorf("a bad kind: %d %s", r.Status, r.Body)
		}
		r = get(t, h, "/errors/message?queue="+url.QueryEscape(errorURI)+"&id=m1")
		mustStatus(t, r, http.StatusOK, "show m1")
		if n := strings.Count(r.Body, "<li>"); n != 3 {
			t.Errorf("history has %d entries, want 3", n)
		}
		if !strings.Contains(r.Body, "{\n  &#34;order&#34;: &#34;m1&#34;,") {
			t.Errorf("the body is not pretty JSON:\n%s", r.Body)
		}
		if !strings.Contains(r.Body, "tenant") {
			t.Error("the user header is missing")
		}
	})
}

// TestErrorActions: retry one, selected, a group (with reset), to another
// queue, and discard, each confirmed first and reporting its count.
func TestErrorActions(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		seedErrors(t, conns,
			failed{id: "one", typ: "t", src: ordersURI, kind: bus.KindError, err: "single"},
			failed{id: "s1", typ: "t", src: ordersURI, kind: bus.KindError, err: "sel"},
			failed{id: "s2", typ: "t", src: ordersURI, kind: bus.KindError, err: "sel"},
			failed{id: "g1", typ: "t", src: ordersURI, kind: bus.KindPanic, err: "group 1", failures: 4},
			failed{id: "g2", typ: "t", src: ordersURI, kind: bus.KindPanic, err: "group 22", failures: 4},
			failed{id: "g3", typ: "t", src: ordersURI, kind: bus.KindPanic, err: "group 333", failures: 4},
			failed{id: "moved", typ: "t", src: ordersURI, kind: bus.KindError, err: "elsewhere"},
			failed{id: "d1", typ: "t", src: ordersURI, kind: bus.KindDecode, err: "bad json"},
			failed{id: "d2", typ: "t", src: ordersURI, kind: bus.KindDecode, err: "bad json"})
		h := newDash(t, conns, testConfig())
		eqURI := errorURI
		base := func(scope string, ids ...string) url.Values {
			v := url.Values{"queue": {eqURI}, "scope": {scope}}
			for _, id := range ids {
				v.Add("id", id)
			}
			return v
		}
		res := confirmAndDo(t, h, "/errors/retry", base("ids", "one"), 1)
		if !strings.Contains(res.Body, "Returned 1 message(s)") {
			t.Errorf("retry one reports: %s", res.Body)
		}
		if c := counts(t, conns, ordersURI); c.Ready != 1 {
			t.Errorf("orders ready after retry one = %d, want 1", c.Ready)
		}
		confirmAndDo(t, h, "/errors/retry", base("ids", "s1", "s2"), 2)
		g := base("group")
		g.Set("group", groupKey(bus.KindPanic, "group #"))
		g.Set("reset", "on")
		confirmAndDo(t, h, "/errors/retry", g, 3)
		if c := counts(t, conns, ordersURI); c.Ready != 6 {
			t.Errorf("orders ready after the group = %d, want 6", c.Ready)
		}
		q, _ := conns.Queue(ctx, ordersURI)
		ds, err := q.FindMessages(ctx, []string{"g2"})
		if err != nil || len(ds) != 1 {
			t.Fatalf("g2 in orders: %v, %v", ds, err)
		}
		if _, ok := ds[0].Headers[bus.HeaderFailures]; ok {
			t.Error("reset kept g2's failure history")
		}
		to := base("ids", "moved")
		to.Set("to", otherURI)
		confirmAndDo(t, h, "/errors/retry", to, 1)
		if c := counts(t, conns, otherURI); c.Ready != 1 {
			t.Errorf("%s ready after retry-to = %d, want 1", otherURI, c.Ready)
		}
		f := base("filter")
		f.Set("kind", bus.KindDecode)
		res = confirmAndDo(t, h, "/errors/discard", f, 2)
		if !strings.Contains(res.Body, "Discarded 2 message(s)") {
			t.Errorf("discard reports: %s", res.Body)
		}
		if c := counts(t, conns, errorURI); c.Total() != 0 {
			t.Errorf("error queue holds %d after every action, want 0", c.Total())
		}
		// Retry to a connection that does not exist is refused up front.
		bad := base("ids", "x")
		bad.Set("to", "sql://nowhere/q")
		bad.Set("csrf", h.csrfToken("/errors/retry"))
		if r := post(t, h, "/errors/retry", bad); r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "nowhere") {
			t.Errorf("retry to an unknown connection: %d %s", r.Status, r.Body)
		}
	})
}

// TestQueueActions: peek, purge (confirmed), pause and resume.
func TestQueueActions(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		enqueue(t, conns, ordersURI, queue.Message{MessageID: "p1", Type: "t"}, queue.Message{MessageID: "p2"}, queue.Message{MessageID: "p3"})
		h := newDash(t, conns, testConfig())
		page := "/queue?uri=" + url.QueryEscape(ordersURI)
		r := get(t, h, page+"&limit=2")
		mustStatus(t, r, http.StatusOK, "queue page")
		if testid(t, r.Body, "ready") != "3" || row(r.Body, "peek-row", "data-id", "p2") == "" || row(r.Body, "peek-row", "data-id", "p3") != "" {
			t.Errorf("queue page counts or peek wrong:\n%s", r.Body)
		}
		if !strings.Contains(r.Body, `id="next-page"`) {
			t.Error("no next page after a full peek")
		}
		s, _ := conns.Store(ctx, "default")
		isPaused := func() bool {
			ps, err := s.Paused(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ps {
				if p.Name == "orders" {
					return true
				}
			}
			return false
		}
		form := url.Values{"uri": {ordersURI}, "csrf": {csrfOf(t, r.Body)}}
		mustStatus(t, post(t, h, "/queue/pause", form), http.StatusOK, "pause")
		if !isPaused() {
			t.Error("pause did not pause")
		}
		if r := get(t, h, page); !strings.Contains(r.Body, `data-testid="resume"`) {
			t.Error("a paused queue offers no resume")
		}
		mustStatus(t, post(t, h, "/queue/resume", form), http.StatusOK, "resume")
		if isPaused() {
			t.Error("resume did not resume")
		}
		res := confirmAndDo(t, h, "/queue/purge", url.Values{"uri": {ordersURI}}, 3)
		if !strings.Contains(res.Body, "Purged 3 message(s)") {
			t.Errorf("purge reports: %s", res.Body)
		}
		if c := counts(t, conns, ordersURI); c.Total() != 0 {
			t.Errorf("orders holds %d after purge", c.Total())
		}
	})
}

// TestFindMessage: a message found by id across queues and connections.
func TestFindMessage(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		enqueue(t, conns, otherURI, queue.Message{MessageID: "needle", Type: "orders.placed", Headers: map[string]string{"tenant": "t9"}, Body: []byte(`{"a":1}`)})
		seedErrors(t, conns, failed{id: "needle", typ: "orders.placed", src: ordersURI, kind: bus.KindError, err: "x"})
		h := newDash(t, conns, testConfig())
		r := get(t, h, "/message?id=needle")
		mustStatus(t, r, http.StatusOK, "find")
		if !strings.Contains(r.Body, `data-testid="location" data-queue="`+otherURI+`"`) || !strings.Contains(r.Body, `data-queue="`+errorURI+`"`) {
			t.Errorf("not found in both queues:\n%s", r.Body)
		}
		if !strings.Contains(r.Body, "t9") || !strings.Contains(r.Body, "{\n  &#34;a&#34;: 1\n}") {
			t.Error("headers or pretty body missing")
		}
		if !strings.Contains(r.Body, "/errors/message?queue=") {
			t.Error("no link to the failure history of the error-queue copy")
		}
		r = get(t, h, "/message?id=hay")
		if r.Status != http.StatusNotFound || !strings.Contains(r.Body, `no message &#34;hay&#34; in any queue`) {
			t.Errorf("unknown id: %d\n%s", r.Status, r.Body)
		}
	})
}
