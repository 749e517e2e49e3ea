package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/queue"
)

// Sizes of the target: every page under 200 ms with this much.
const (
	benchMessages = 100_000
	benchFailed   = 10_000
	benchQueues   = 4
	benchBatch    = 1000
)

// BenchmarkPages times one GET of each page (ns/op is the page time) over
// a store holding benchMessages messages in benchQueues work queues and
// benchFailed failed messages in the error queue.
func BenchmarkPages(b *testing.B) {
	if testing.Short() {
		b.Skip("fills 110,000 messages")
	}
	for _, d := range testdb.Dialects() {
		b.Run(d, func(b *testing.B) {
			conns := queue.NewConnections(map[string]string{"default": testdb.DSN(b, d)},
				queue.Options{AutoMigrate: true, MaxPoll: 100 * time.Millisecond})
			b.Cleanup(func() { conns.Close() })
			cfg, pages := benchFill(b, conns)
			h, err := New(conns, cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { h.Close() })
			for _, p := range pages {
				b.Run(p.name, func(b *testing.B) {
					times := make([]time.Duration, 0, b.N)
					b.ResetTimer()
					for i := range b.N {
						if p.uncached {
							h.groups.reset()
						}
						if p.prep != nil {
							p.prep(i)
						}
						start := time.Now()
						w := httptest.NewRecorder()
						h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, p.target, nil))
						times = append(times, time.Since(start))
						if w.Code != p.status {
							b.Fatalf("GET %s: status %d, want %d\n%.2000s", p.target, w.Code, p.status, w.Body.String())
						}
					}
					b.StopTimer()
					slices.Sort(times)
					b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(times[len(times)-1].Microseconds())/1000, "max-ms")
				})
			}
		})
	}
}

type benchPage struct {
	name, target string
	status       int
	uncached     bool        // forget the remembered failure groups before each request
	prep         func(i int) // before each request, untimed
}

// benchFill enqueues the messages, the failed messages (with the headers
// an endpoint leaves: history, error text, source queue) and a recorded
// distributor view, and returns the configuration and the pages to time.
func benchFill(b *testing.B, conns *queue.Connections) (Config, []benchPage) {
	ctx := context.Background()
	start := time.Now()
	cfg := Config{Queues: map[string][]string{}, ErrorQueues: []string{errorURI},
		Distributors: []Distributor{{Endpoint: "dist", ControlQueue: "sql://default/control"}}}
	var firstQueue string
	for qi := range benchQueues {
		uri := fmt.Sprintf("sql://default/orders-%d", qi)
		if qi == 0 {
			firstQueue = uri
		}
		cfg.Queues[uri] = []string{"shop.inbox"}
		q, err := conns.Queue(ctx, uri)
		if err != nil {
			b.Fatal(err)
		}
		per := benchMessages / benchQueues
		for i := 0; i < per; i += benchBatch {
			msgs := make([]queue.Message, 0, benchBatch)
			for j := i; j < min(i+benchBatch, per); j++ {
				msgs = append(msgs, queue.Message{MessageID: fmt.Sprintf("m-%d-%d", qi, j), Type: "shop.PlaceOrder",
					Headers: map[string]string{bus.HeaderContentType: "application/json"},
					Body:    []byte(fmt.Sprintf(`{"order":"%d-%d","lines":[1,2,3]}`, qi, j))})
			}
			if err := q.Enqueue(ctx, msgs...); err != nil {
				b.Fatal(err)
			}
		}
	}
	cfg.Queues[errorURI] = []string{"shop.errorQueue"}
	eq, err := conns.Queue(ctx, errorURI)
	if err != nil {
		b.Fatal(err)
	}
	texts := []string{"order %d: timed out after 5s", "payment %d declined", "stock service: connection refused (attempt %d)", "decode body: unexpected end of JSON input at %d", "tax rule %d missing"}
	kinds := []string{bus.KindError, bus.KindError, bus.KindError, bus.KindPoison, bus.KindError}
	types := []string{"shop.PlaceOrder", "shop.Refund", "shop.Ship"}
	now := time.Now()
	for i := 0; i < benchFailed; i += benchBatch {
		msgs := make([]queue.Message, 0, benchBatch)
		for j := i; j < min(i+benchBatch, benchFailed); j++ {
			k := j % len(texts)
			text := fmt.Sprintf(texts[k], j)
			hist := []bus.Failure{
				{At: now.Add(-time.Duration(benchFailed-j)*time.Second - time.Minute), Endpoint: "shop", Error: "earlier failure", Kind: bus.KindError},
				{At: now.Add(-time.Duration(benchFailed-j) * time.Second), Endpoint: "shop", Error: text, Kind: kinds[k]},
			}
			hb, err := json.Marshal(hist)
			if err != nil {
				b.Fatal(err)
			}
			msgs = append(msgs, queue.Message{MessageID: fmt.Sprintf("f-%d", j), Type: types[j%len(types)],
				Headers: map[string]string{bus.HeaderFailures: string(hb), bus.HeaderError: text, bus.HeaderContentType: "application/json",
					bus.HeaderSourceQueue: fmt.Sprintf("sql://default/orders-%d", j%benchQueues)},
				Body: []byte(fmt.Sprintf(`{"order":"%d","lines":[1,2]}`, j))})
		}
		if err := eq.Enqueue(ctx, msgs...); err != nil {
			b.Fatal(err)
		}
	}
	s, err := conns.Store(ctx, "default")
	if err != nil {
		b.Fatal(err)
	}
	control := "sql://default/control"
	if err := s.RecordDistributor(ctx, queue.DistributorInstance{ControlQueue: control, Owner: "o1", Name: "dist", Host: "h1", PID: 1,
		Active: true, Interval: time.Hour, ReclaimAfter: time.Minute, Updated: now}, now.Add(-time.Hour)); err != nil {
		b.Fatal(err)
	}
	var ws []queue.WorkerView
	for i := range 20 {
		ws = append(ws, queue.WorkerView{ID: fmt.Sprintf("w%d", i), Session: fmt.Sprintf("s%d", i), Queue: fmt.Sprintf("sql://default/worker-w%d", i),
			Threads: 4, Idle: 2, LastSeen: now, Depth: int64(i)})
	}
	if err := s.RecordWorkerView(ctx, control, now, ws); err != nil {
		b.Fatal(err)
	}
	cfg.Queues["sql://default/worker-{id}"] = []string{"worker.inbox"}
	b.Logf("filled %d messages and %d failed in %s", benchMessages, benchFailed, time.Since(start).Round(time.Millisecond))
	eqp := url.QueryEscape(errorURI)
	// oneMore adds a failed message, as a steady inflow of failures does.
	oneMore := func(i int) {
		hb, _ := json.Marshal([]bus.Failure{{At: time.Now(), Endpoint: "shop", Error: "payment 1 declined", Kind: bus.KindError}})
		if err := eq.Enqueue(ctx, queue.Message{MessageID: fmt.Sprintf("late-%d-%d", time.Now().UnixNano(), i), Type: "shop.Refund",
			Headers: map[string]string{bus.HeaderFailures: string(hb), bus.HeaderError: "payment 1 declined", bus.HeaderSourceQueue: firstQueue},
			Body:    []byte(`{}`)}); err != nil {
			b.Fatal(err)
		}
	}
	return cfg, []benchPage{
		{"overview", "/", http.StatusOK, false, nil},
		{"overview-fragment", "/fragment/overview", http.StatusOK, false, nil},
		{"workers", "/workers", http.StatusOK, false, nil},
		{"workers-fragment", "/fragment/workers", http.StatusOK, false, nil},
		{"errors", "/errors", http.StatusOK, false, nil},
		{"errors-uncached", "/errors", http.StatusOK, true, nil},
		{"errors-after-new-failure", "/errors", http.StatusOK, false, oneMore},
		{"errors-filter-kind", "/errors?kind=" + bus.KindPoison, http.StatusOK, false, nil},
		{"errors-filter-error", "/errors?error=" + url.QueryEscape("timed out") + "&type=shop.Refund", http.StatusOK, false, nil},
		{"errors-page-2", "/errors?after=5000", http.StatusOK, false, nil},
		{"errors-filter-kind-uncached", "/errors?kind=" + bus.KindPoison, http.StatusOK, true, nil},
		{"error-message", "/errors/message?queue=" + eqp + "&id=f-9999", http.StatusOK, false, nil},
		{"message-find", "/message?id=m-2-12345", http.StatusOK, false, nil},
		{"message-find-missing", "/message?id=nowhere", http.StatusNotFound, false, nil},
		{"queue-peek", "/queue?uri=" + url.QueryEscape(firstQueue), http.StatusOK, false, nil},
		{"queue-peek-late", "/queue?uri=" + url.QueryEscape(firstQueue) + "&after=20000", http.StatusOK, false, nil},
		{"error-queue-peek", "/queue?uri=" + eqp, http.StatusOK, false, nil},
	}
}
