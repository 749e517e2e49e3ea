package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor"
	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/metrics"
	"github.com/ferrybus/ferry/queue"
	"github.com/ferrybus/ferry/worker"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const (
	inboxURI = "sql://default/orders-work"
	errorURI = "sql://default/orders-error"
	wait     = 30 * time.Second
)

var quiet = slog.New(slog.DiscardHandler)

// forEachStore runs fn on a fresh SQLite file and a fresh PostgreSQL
// schema, each as connection "default".
func forEachStore(t *testing.T, fn func(t *testing.T, conns *queue.Connections)) {
	for _, d := range testdb.Dialects() {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			conns := queue.NewConnections(map[string]string{"default": testdb.DSN(t, d)},
				queue.Options{AutoMigrate: true, MaxPoll: 50 * time.Millisecond, Logger: quiet})
			t.Cleanup(func() { conns.Close() })
			fn(t, conns)
		})
	}
}

// scraper reads a Metrics' handler over HTTP, as Prometheus would.
type scraper struct {
	t   *testing.T
	url string
}

func serve(t *testing.T, m *metrics.Metrics) scraper {
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	return scraper{t, srv.URL}
}

// scrape fetches and parses the text exposition.
func (s scraper) scrape() map[string]*dto.MetricFamily {
	s.t.Helper()
	resp, err := http.Get(s.url)
	if err != nil {
		s.t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("scrape: status %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		s.t.Fatalf("scrape: parse: %v", err)
	}
	return fams
}

// series returns the metrics of family name whose labels include want.
func series(fams map[string]*dto.MetricFamily, name string, want map[string]string) []*dto.Metric {
	f, ok := fams[name]
	if !ok {
		return nil
	}
	var out []*dto.Metric
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if have[k] != v {
				match = false
				break
			}
		}
		if match {
			out = append(out, m)
		}
	}
	return out
}

// value is the one series' value (a histogram's sample count), or -1 when
// no series or several match.
func (s scraper) value(name string, labels ...string) float64 {
	s.t.Helper()
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	ms := series(s.scrape(), name, want)
	if len(ms) != 1 {
		return -1
	}
	m := ms[0]
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}

// waitFor waits until the series has value want.
func (s scraper) waitFor(want float64, name string, labels ...string) {
	s.t.Helper()
	var got float64
	testkit.Eventually(s.t, wait, fmt.Sprintf("%s%v = %v", name, labels, want), func() bool {
		got = s.value(name, labels...)
		return got == want
	})
}

func newEndpoint(t *testing.T, conns *queue.Connections, mux *bus.Mux) *bus.Endpoint {
	t.Helper()
	ctx := context.Background()
	ep, err := bus.New(ctx, conns, bus.Config{Name: "orders", Logger: quiet, Inbox: &bus.InboxConfig{
		WorkQueue: inboxURI, ErrorQueue: errorURI, Threads: 2,
		Retry: &bus.RetryPolicy{MaxAttempts: 3, Immediate: 2},
	}}, mux)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

func start(t *testing.T, ep *bus.Endpoint) {
	t.Helper()
	if err := ep.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ep.Stop(ctx)
	})
}

func client(t *testing.T, conns *queue.Connections) *bus.Endpoint {
	t.Helper()
	c, err := bus.New(context.Background(), conns, bus.Config{Name: "client", Logger: quiet}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func send(t *testing.T, c *bus.Endpoint, to string, types ...string) {
	t.Helper()
	bodies := make([]any, len(types))
	for i, typ := range types {
		bodies[i] = bus.Raw{Type: typ, ContentType: "application/json", Body: []byte(`{}`)}
	}
	if err := c.SendBatch(context.Background(), bodies, bus.To(to)); err != nil {
		t.Fatalf("send %v: %v", types, err)
	}
}

func repeat(typ string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = typ
	}
	return out
}

// TestEndpointMetrics: counters, histograms, the in-flight gauge, the
// sampled queue gauges and the store's round trips move as messages flow,
// failures that retry and end in the error queue included.
func TestEndpointMetrics(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		entered, release := make(chan struct{}, 1), make(chan struct{})
		mux := bus.NewMux()
		mux.HandleFunc("ping", func(context.Context, *bus.Message) error { return nil })
		mux.HandleFunc("fail", func(context.Context, *bus.Message) error { return errors.New("always fails") })
		mux.HandleFunc("block", func(ctx context.Context, _ *bus.Message) error {
			entered <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		})
		ep := newEndpoint(t, conns, mux)
		store, err := conns.Store(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		errq, err := conns.Queue(ctx, errorURI)
		if err != nil {
			t.Fatal(err)
		}
		m := metrics.New(nil)
		m.AddEndpoint(ep)
		m.AddEndpoint(ep) // twice: counted once
		m.AddStore(store)
		m.SampleQueues(ctx, 20*time.Millisecond, ep.Inbox(), errq)
		s := serve(t, m)
		c := client(t, conns)

		// Before anything runs: the sampled depth of the queued messages.
		send(t, c, inboxURI, repeat("ping", 5)...)
		s.waitFor(5, "ferry_queue_messages", "queue", inboxURI, "state", "ready")
		if got := s.value("ferry_queue_sample_age_seconds", "queue", inboxURI); got < 0 {
			t.Errorf("ferry_queue_sample_age_seconds of the inbox: missing")
		}
		var oldest float64
		testkit.Eventually(t, wait, "the oldest ready message ages", func() bool {
			oldest = s.value("ferry_queue_oldest_ready_age_seconds", "queue", inboxURI)
			return oldest > 0
		})
		trips := s.value("ferry_store_round_trips_total", "connection", "default")
		if trips <= 0 {
			t.Fatalf("ferry_store_round_trips_total = %v after sends, want above 0", trips)
		}

		start(t, ep)
		ping := []string{"endpoint", "orders", "queue", inboxURI, "type", "ping"}
		s.waitFor(5, "ferry_messages_handled_total", ping...)
		s.waitFor(5, "ferry_handler_duration_seconds", ping...)
		s.waitFor(5, "ferry_critical_time_seconds", ping...)
		s.waitFor(0, "ferry_queue_messages", "queue", inboxURI, "state", "ready")
		s.waitFor(0, "ferry_queue_oldest_ready_age_seconds", "queue", inboxURI)
		if got := s.value("ferry_messages_received_total", "endpoint", "orders", "queue", inboxURI); got < 5 {
			t.Errorf("ferry_messages_received_total = %v, want at least 5", got)
		}
		if got := s.value("ferry_store_round_trips_total", "connection", "default"); got <= trips {
			t.Errorf("ferry_store_round_trips_total = %v after handling, want above %v", got, trips)
		}
		if got := s.value("ferry_store_errors_total", "connection", "default"); got != 0 {
			t.Errorf("ferry_store_errors_total = %v, want 0", got)
		}

		// A failing message: three attempts, two retries, then the error queue.
		send(t, c, inboxURI, "fail")
		fail := []string{"endpoint", "orders", "queue", inboxURI, "type", "fail"}
		s.waitFor(1, "ferry_messages_error_queued_total", fail...)
		s.waitFor(3, "ferry_messages_failed_total", append(fail, "kind", bus.KindError)...)
		s.waitFor(2, "ferry_messages_retried_total", fail...)
		s.waitFor(3, "ferry_handler_duration_seconds", fail...)
		s.waitFor(1, "ferry_queue_messages", "queue", errorURI, "state", "ready")
		if got := s.value("ferry_critical_time_seconds", fail...); got != 0 {
			t.Errorf("ferry_critical_time_seconds count of a never handled type = %v, want 0", got)
		}

		// A message in its handler: in flight, and leased in its queue.
		send(t, c, inboxURI, "block")
		<-entered
		inflight := []string{"endpoint", "orders", "queue", inboxURI}
		s.waitFor(1, "ferry_messages_in_flight", inflight...)
		s.waitFor(1, "ferry_queue_messages", "queue", inboxURI, "state", "in_flight")
		close(release)
		s.waitFor(0, "ferry_messages_in_flight", inflight...)
		s.waitFor(1, "ferry_messages_handled_total", "endpoint", "orders", "type", "block")
		s.waitFor(0, "ferry_queue_messages", "queue", inboxURI, "state", "in_flight")
	})
}

// TestTypesBounded: an endpoint's metrics label at most MaxTypes message
// types; the messages of the 101st and later are counted as "other".
func TestTypesBounded(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		mux := bus.NewMux()
		const extra = 3
		types := make([]string, metrics.MaxTypes+extra)
		for i := range types {
			types[i] = fmt.Sprintf("type-%03d", i)
			mux.HandleFunc(types[i], func(context.Context, *bus.Message) error { return nil })
		}
		ep := newEndpoint(t, conns, mux)
		m := metrics.New(nil)
		m.AddEndpoint(ep)
		s := serve(t, m)
		c := client(t, conns)
		start(t, ep)
		// The first MaxTypes types first, so that they are the ones labelled.
		send(t, c, inboxURI, types[:metrics.MaxTypes]...)
		s.waitFor(float64(metrics.MaxTypes), "ferry_messages_received_total", "endpoint", "orders")
		testkit.Eventually(t, wait, "every labelled type handled once", func() bool {
			fams := s.scrape()
			for _, typ := range types[:metrics.MaxTypes] {
				ms := series(fams, "ferry_messages_handled_total", map[string]string{"type": typ})
				if len(ms) != 1 || ms[0].GetCounter().GetValue() != 1 {
					return false
				}
			}
			return true
		})
		send(t, c, inboxURI, types[metrics.MaxTypes:]...)
		s.waitFor(extra, "ferry_messages_handled_total", "type", metrics.OtherType)
		s.waitFor(extra, "ferry_handler_duration_seconds", "type", metrics.OtherType)
		fams := s.scrape()
		if n := len(series(fams, "ferry_messages_handled_total", nil)); n != metrics.MaxTypes+1 {
			t.Errorf("ferry_messages_handled_total has %d series, want %d (MaxTypes and other)", n, metrics.MaxTypes+1)
		}
		for _, typ := range types[metrics.MaxTypes:] {
			if n := len(series(fams, "ferry_messages_handled_total", map[string]string{"type": typ})); n != 0 {
				t.Errorf("type %q past MaxTypes has its own series", typ)
			}
		}
	})
}

// TestDistributorMetrics: a distributor and a worker in process: what the
// distributor moved, its workers and their idle threads, and the worker's
// and the control inbox's endpoints.
func TestDistributorMetrics(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		const controlURI = "sql://default/control"
		d, err := distributor.New(ctx, conns, distributor.Config{
			Name: "orders", Distribute: true, DistributeSendCount: 5, LockTTL: 3 * time.Second, Logger: quiet,
			Inbox:        bus.InboxConfig{WorkQueue: inboxURI, ErrorQueue: errorURI},
			ControlInbox: bus.InboxConfig{WorkQueue: controlURI, ErrorQueue: errorURI},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		mux := bus.NewMux()
		mux.HandleFunc("job", func(context.Context, *bus.Message) error { return nil })
		const workQueue = "sql://default/worker-w1-work"
		w, err := worker.New(ctx, conns, bus.Config{Name: "w1", Logger: quiet,
			Inbox: &bus.InboxConfig{WorkQueue: workQueue, ErrorQueue: errorURI, Threads: 2}},
			mux, worker.Config{ID: "w1", DistributorControlQueue: controlURI, AvailabilityInterval: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		m := metrics.New(nil)
		m.AddDistributor(d)
		m.AddWorker(w)
		s := serve(t, m)
		s.waitFor(0, "ferry_distributor_active", "distributor", "orders")
		s.waitFor(0, "ferry_distributor_workers", "distributor", "orders")

		if err := d.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			d.Stop(ctx)
		})
		if err := w.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			w.Stop(ctx)
		})
		dist := []string{"distributor", "orders"}
		worker1 := []string{"distributor", "orders", "worker", "w1"}
		s.waitFor(1, "ferry_distributor_active", dist...)
		s.waitFor(1, "ferry_distributor_workers", dist...)
		s.waitFor(2, "ferry_distributor_idle_threads", worker1...)
		testkit.Eventually(t, wait, "the worker's last-seen and availability-age gauges", func() bool {
			return s.value("ferry_distributor_worker_last_seen_seconds", worker1...) >= 0 &&
				s.value("ferry_distributor_availability_age_seconds", worker1...) >= 0
		})

		const jobs = 20
		send(t, client(t, conns), inboxURI, repeat("job", jobs)...)
		s.waitFor(jobs, "ferry_messages_handled_total", "endpoint", "w1", "queue", workQueue, "type", "job")
		s.waitFor(jobs, "ferry_distributor_distributed_total", dist...)
		// One move may serve several availabilities of a worker.
		if got := s.value("ferry_distributor_moves_total", dist...); got < 1 || got > jobs {
			t.Errorf("ferry_distributor_moves_total = %v, want 1 to %d", got, jobs)
		}
		if got := s.value("ferry_distributor_announcements_total", dist...); got < 3 {
			t.Errorf("ferry_distributor_announcements_total = %v, want at least 3 (started, two threads)", got)
		}
		if got := s.value("ferry_messages_received_total", "endpoint", "orders.control", "queue", controlURI); got < 3 {
			t.Errorf("ferry_messages_received_total of the control endpoint = %v, want at least 3", got)
		}
		s.waitFor(2, "ferry_distributor_idle_threads", worker1...)
		if got := s.value("ferry_distributor_reclaimed_total", dist...); got != 0 {
			t.Errorf("ferry_distributor_reclaimed_total = %v, want 0", got)
		}
	})
}

// TestNewRegisterer: a *prometheus.Registry given to New is the one
// served; another Registerer gets the metrics too, beside a registry of
// their own that Handler serves.
func TestNewRegisterer(t *testing.T) {
	reg := prometheus.NewRegistry()
	if m := metrics.New(reg); m.Registry() != reg {
		t.Errorf("Registry() is not the registry given to New")
	}
	conns := queue.NewConnections(map[string]string{"default": testdb.SQLite(t)}, queue.Options{AutoMigrate: true, Logger: quiet})
	t.Cleanup(func() { conns.Close() })
	store, err := conns.Store(context.Background(), "default")
	if err != nil {
		t.Fatal(err)
	}
	outer := prometheus.NewRegistry()
	m := metrics.New(prometheus.WrapRegistererWith(prometheus.Labels{"process": "p1"}, outer))
	if m.Registry() == outer {
		t.Fatalf("Registry() is the wrapped registry, want one of its own")
	}
	m.AddStore(store)
	m.AddStore(store) // twice: counted once
	fams, err := outer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if ms := series(toMap(fams), "ferry_store_round_trips_total", map[string]string{"process": "p1", "connection": "default"}); len(ms) != 1 {
		t.Errorf("the outer registry has %d round-trip series of the store with its label, want 1", len(ms))
	}
	if n := testutil.CollectAndCount(m.Registry(), "ferry_store_errors_total"); n != 1 {
		t.Errorf("the own registry has %d store error series, want 1", n)
	}
	defer func() {
		if recover() == nil {
			t.Errorf("a second New on the same registry did not panic")
		}
	}()
	metrics.New(reg)
}

func toMap(fams []*dto.MetricFamily) map[string]*dto.MetricFamily {
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}
