// Package metrics exposes what ferry does in the Prometheus text format:
// per-endpoint message counters and handler and critical-time histograms,
// in-flight messages, sampled queue depths, the distributor's state and the
// stores' round trips and errors. The metric names are listed in the README
// ("Metrics").
//
// The hot path costs little: message outcomes arrive through the endpoint's
// Observer (bus.Endpoint.AddObserver) and move counters cached per message
// type; everything else is read at scrape time from counters ferry keeps
// anyway (Stats, RoundTrips, the distributor's registry). Queue depths are
// counted in the background (SampleQueues), never on a scrape.
//
// Label sets are bounded: at most MaxTypes message types per endpoint (the
// rest are counted as type "other") and MaxWorkers workers per distributor.
package metrics

import (
	"log/slog"
	"net/http"
	"sync"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor"
	"github.com/ferrybus/ferry/queue"
	"github.com/ferrybus/ferry/worker"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Label bounds.
const (
	// MaxTypes is how many distinct message types an endpoint's metrics
	// label; the messages of any further type are labelled OtherType.
	MaxTypes = 100
	// OtherType labels the messages of the types past MaxTypes.
	OtherType = "other"
	// MaxWorkers is how many workers of one distributor the per-worker
	// gauges report (the first by worker id).
	MaxWorkers = 1000
	// maxKinds bounds the failure kinds per type (ferry has fewer).
	maxKinds = 16
)

// Histogram buckets, in seconds.
var (
	// handlerBuckets spans fast in-memory handlers to slow remote calls.
	handlerBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	// criticalBuckets also spans messages that waited long in a queue.
	criticalBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
)

// Metrics collects ferry's metrics for one registry.
type Metrics struct {
	reg   *prometheus.Registry
	extra prometheus.Registerer // the caller's registerer when it is not reg
	log   *slog.Logger

	handled, retried, errorQueued, discarded, duplicates, expired *prometheus.CounterVec
	failed                                                        *prometheus.CounterVec
	handlerDur, critical                                          *prometheus.HistogramVec

	mu           sync.Mutex
	endpoints    map[*bus.Endpoint]bool
	distributors map[*distributor.Distributor]bool
	stores       map[queue.Store]bool

	epc *endpointCollector
	dc  *distributorCollector
	sc  *storeCollector
	qc  *queueCollector
}

// New makes the metrics and registers them with reg; with a nil reg they
// get a registry of their own. When reg is a *prometheus.Registry, Handler
// serves it (with whatever else it holds); for any other Registerer the
// metrics are registered both there and in a registry of their own, which
// Handler serves. It panics, as prometheus.MustRegister does, when reg
// already holds metrics of the same names.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		log:          slog.Default().With("component", "metrics"),
		endpoints:    map[*bus.Endpoint]bool{},
		distributors: map[*distributor.Distributor]bool{},
		stores:       map[queue.Store]bool{},
	}
	switch r := reg.(type) {
	case nil:
		m.reg = prometheus.NewRegistry()
	case *prometheus.Registry:
		m.reg = r
	default:
		m.reg, m.extra = prometheus.NewRegistry(), reg
	}
	typed := []string{"endpoint", "queue", "type"}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, typed)
	}
	m.handled = counter("ferry_messages_handled_total", "Messages whose handler succeeded and that were acked.")
	m.failed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_messages_failed_total",
		Help: "Failed attempts to handle a message, by failure kind."}, []string{"endpoint", "queue", "type", "kind"})
	m.retried = counter("ferry_messages_retried_total", "Messages given back for another attempt after a failure.")
	m.errorQueued = counter("ferry_messages_error_queued_total", "Messages moved to the error queue.")
	m.discarded = counter("ferry_messages_discarded_total", "Messages acked unhandled by a discard action.")
	m.duplicates = counter("ferry_messages_duplicates_total", "Messages acked unhandled because another copy was handled.")
	m.expired = counter("ferry_messages_expired_total", "Messages received after their expiry.")
	m.handlerDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ferry_handler_duration_seconds",
		Help: "How long handlers ran, failed calls included.", Buckets: handlerBuckets}, typed)
	m.critical = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ferry_critical_time_seconds",
		Help: "From when a message was sent to when it was handled.", Buckets: criticalBuckets}, typed)
	m.epc = &endpointCollector{}
	m.dc = &distributorCollector{}
	m.sc = &storeCollector{}
	m.qc = newQueueCollector()
	m.register(m.handled, m.failed, m.retried, m.errorQueued, m.discarded, m.duplicates, m.expired,
		m.handlerDur, m.critical, m.epc, m.dc, m.sc, m.qc)
	return m
}

// register adds collectors to the registry and to the caller's registerer.
func (m *Metrics) register(cs ...prometheus.Collector) {
	m.reg.MustRegister(cs...)
	if m.extra != nil {
		m.extra.MustRegister(cs...)
	}
}

// Registry is the registry that Handler serves.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: slogErrorLog{m.log}})
}

// AddEndpoint reports an endpoint's inbox: its message counters and
// histograms (through an Observer), received messages and the messages in
// flight (read at scrape). An endpoint without an inbox has nothing to
// report and is ignored, as is one added before.
func (m *Metrics) AddEndpoint(ep *bus.Endpoint) {
	if ep == nil || ep.Inbox() == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.endpoints[ep] {
		return
	}
	m.endpoints[ep] = true
	ep.AddObserver(newObserver(m, ep.Name(), ep.Inbox().URI()))
	m.epc.add(ep)
}

// AddDistributor reports a distributor: its counters, whether it is active,
// its workers and their idle threads (read at scrape), and its endpoints
// (the control inbox, and the local one unless it only distributes).
func (m *Metrics) AddDistributor(d *distributor.Distributor) {
	if d == nil {
		return
	}
	m.mu.Lock()
	added := m.distributors[d]
	m.distributors[d] = true
	m.mu.Unlock()
	if added {
		return
	}
	m.dc.add(d)
	for _, ep := range d.Endpoints() {
		m.AddEndpoint(ep)
	}
}

// AddWorker reports a worker's endpoint.
func (m *Metrics) AddWorker(w *worker.Worker) {
	if w == nil {
		return
	}
	m.AddEndpoint(w.Endpoint())
}

// AddStore reports a store's round trips and failed statements (read at
// scrape). A store added before is ignored.
func (m *Metrics) AddStore(s queue.Store) {
	if s == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stores[s] {
		return
	}
	m.stores[s] = true
	m.sc.add(s)
}

// slogErrorLog lets promhttp report its errors through slog.
type slogErrorLog struct{ log *slog.Logger }

// Println logs a promhttp error.
func (l slogErrorLog) Println(v ...any) { l.log.Error("metrics: serving a scrape failed", "err", v) }
