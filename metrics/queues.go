package metrics

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/ferrybus/ferry/queue"
	"github.com/prometheus/client_golang/prometheus"
)

// MaxSampleTimeout bounds how long one queue's count may take; a sample
// gets the sampling interval, at least MinSampleTimeout and at most this.
const MaxSampleTimeout = 10 * time.Second

// MinSampleTimeout is the least time a count is given, however short the
// interval: a count that takes longer than a very short interval is slow,
// not failed (samples are taken one after the other, never piled up).
const MinSampleTimeout = time.Second

// sample is a queue's last successful count.
type sample struct {
	counts queue.Counts
	at     time.Time
}

// queueCollector serves the queues' last samples; SampleQueues fills it.
type queueCollector struct {
	mu      sync.Mutex
	samples map[string]sample // by queue URI
	order   []string
}

var (
	queueMessages  = prometheus.NewDesc("ferry_queue_messages", "Messages in the queue by state, as of its last sample.", []string{"queue", "state"}, nil)
	queueOldest    = prometheus.NewDesc("ferry_queue_oldest_ready_age_seconds", "How long the oldest ready message had waited when the queue was sampled (0 when none was ready).", []string{"queue"}, nil)
	queueSampleAge = prometheus.NewDesc("ferry_queue_sample_age_seconds", "How old the queue's last successful sample is.", []string{"queue"}, nil)
)

func newQueueCollector() *queueCollector {
	return &queueCollector{samples: map[string]sample{}}
}

func (c *queueCollector) set(uri string, s sample) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.samples[uri]; !ok {
		c.order = append(c.order, uri)
	}
	c.samples[uri] = s
}

// Describe implements prometheus.Collector.
func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueMessages
	ch <- queueOldest
	ch <- queueSampleAge
}

// Collect implements prometheus.Collector: it reads the last samples and
// never touches a database. A queue not sampled yet has no series.
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	order := slices.Clone(c.order)
	samples := make([]sample, len(order))
	for i, uri := range order {
		samples[i] = c.samples[uri]
	}
	c.mu.Unlock()
	now := time.Now()
	for i, uri := range order {
		s := samples[i]
		ch <- prometheus.MustNewConstMetric(queueMessages, prometheus.GaugeValue, float64(s.counts.Ready), uri, "ready")
		ch <- prometheus.MustNewConstMetric(queueMessages, prometheus.GaugeValue, float64(s.counts.Deferred), uri, "deferred")
		ch <- prometheus.MustNewConstMetric(queueMessages, prometheus.GaugeValue, float64(s.counts.InFlight), uri, "in_flight")
		oldest := 0.0
		if !s.counts.OldestReady.IsZero() {
			oldest = max(s.at.Sub(s.counts.OldestReady).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(queueOldest, prometheus.GaugeValue, oldest, uri)
		ch <- prometheus.MustNewConstMetric(queueSampleAge, prometheus.GaugeValue, max(now.Sub(s.at).Seconds(), 0), uri)
	}
}

// SampleQueues counts the messages of qs now and then every interval, in
// the background, until ctx ends; scrapes read the last samples. Each
// count has a timeout (the interval, from MinSampleTimeout to MaxSampleTimeout); a failed
// one keeps the previous sample, whose ferry_queue_sample_age_seconds then
// grows, and is logged once until the queue's count succeeds again. every
// must be positive (it panics otherwise, as time.NewTicker does).
func (m *Metrics) SampleQueues(ctx context.Context, every time.Duration, qs ...queue.Queue) {
	if every <= 0 {
		panic("metrics: SampleQueues: non-positive interval " + every.String())
	}
	qs = slices.Clone(qs)
	timeout := min(max(every, MinSampleTimeout), MaxSampleTimeout)
	failing := make([]bool, len(qs))
	sampleAll := func() {
		for i, q := range qs {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			c, err := q.Count(cctx)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				if !failing[i] {
					m.log.Warn("metrics: cannot count a queue; its last sample stays", "queue", q.URI(), "err", err)
				}
				failing[i] = true
				continue
			}
			failing[i] = false
			m.qc.set(q.URI(), sample{counts: c, at: time.Now()})
		}
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		sampleAll()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				sampleAll()
			}
		}
	}()
}
