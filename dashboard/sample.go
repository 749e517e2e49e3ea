package dashboard

import (
	"context"
	"fmt"
	"html/template"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ferrybus/ferry/queue"
)

// ringSize bounds the samples kept: at the default 5s interval, 5 minutes.
const ringSize = 60

// maxSampledQueues bounds the queues whose depth a sample keeps.
const maxSampledQueues = 500

// sample is one look at every connection: per connection the highest row
// id seen so far (row ids only grow within a database, and a move within
// one keeps the id, so its increase counts enqueued messages), and each
// queue's depth.
type sample struct {
	at    time.Time
	high  map[string]int64 // connection → highest row id seen
	depth map[string]int64 // queue URI → ready+deferred+in flight
}

// sampler counts the queues every interval into a bounded ring, for the
// overview's charts. What it measures is said on the page: messages
// enqueued per minute, from the growth of each database's highest row id
// (a message enqueued and removed between two samples, while no newer one
// stays, is missed until a later one lands above it).
type sampler struct {
	conns    *queue.Connections
	interval time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	samples []sample // oldest first, at most ringSize
	high    map[string]int64
}

func newSampler(conns *queue.Connections, interval time.Duration, log *slog.Logger) *sampler {
	return &sampler{conns: conns, interval: interval, log: log, high: map[string]int64{}}
}

func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		s.take(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// take records one sample; a connection that fails is skipped this time.
func (s *sampler) take(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, max(s.interval, time.Second))
	defer cancel()
	smp := sample{at: time.Now(), high: map[string]int64{}, depth: map[string]int64{}}
	for _, name := range s.conns.Names() {
		st, err := s.conns.Store(ctx, name)
		if err != nil {
			s.log.Debug("dashboard sample skipped a connection", "connection", name, "err", err)
			continue
		}
		qs, err := st.Queues(ctx)
		if err != nil {
			s.log.Debug("dashboard sample skipped a connection", "connection", name, "err", err)
			continue
		}
		var top int64
		for i, qi := range qs {
			if i == maxSampledQueues {
				break
			}
			smp.depth[queue.URI{Connection: name, Queue: qi.Name}.String()] = qi.Total()
			q, err := st.Queue(qi.Name)
			if err != nil {
				continue
			}
			if last, err := q.LastRowID(ctx); err == nil {
				top = max(top, last)
			}
		}
		s.mu.Lock()
		s.high[name] = max(s.high[name], top)
		smp.high[name] = s.high[name]
		s.mu.Unlock()
	}
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) == ringSize {
		copy(s.samples, s.samples[1:])
		s.samples = s.samples[:ringSize-1]
	}
	s.samples = append(s.samples, smp)
}

// chart is an inline SVG line chart of a series, with its latest value.
type chart struct {
	Points string // the polyline's points
	Latest string
	Peak   string
	Span   string // the time the series covers
	Empty  bool
}

const chartW, chartH = 120, 28

// enqueueRate is the connection's enqueued messages per minute between
// consecutive samples.
func (s *sampler) enqueueRate(conn string) chart {
	s.mu.Lock()
	defer s.mu.Unlock()
	var vals []float64
	for i := 1; i < len(s.samples); i++ {
		a, b := s.samples[i-1], s.samples[i]
		ha, oka := a.high[conn]
		hb, okb := b.high[conn]
		dt := b.at.Sub(a.at).Minutes()
		if !oka || !okb || dt <= 0 {
			continue
		}
		vals = append(vals, float64(hb-ha)/dt)
	}
	return s.chartOf(vals, "/min")
}

// depth is the queue's depth over the samples.
func (s *sampler) depth(uri string) chart {
	s.mu.Lock()
	defer s.mu.Unlock()
	vals := make([]float64, 0, len(s.samples))
	for _, smp := range s.samples {
		vals = append(vals, float64(smp.depth[uri]))
	}
	return s.chartOf(vals, "")
}

// chartOf draws vals (s.mu held) scaled to the chart's box.
func (s *sampler) chartOf(vals []float64, unit string) chart {
	c := chart{Empty: len(vals) == 0}
	if len(s.samples) > 1 {
		c.Span = s.samples[len(s.samples)-1].at.Sub(s.samples[0].at).Round(time.Second).String()
	}
	if len(vals) == 0 {
		return c
	}
	if len(vals) == 1 { // one value: a flat line
		vals = append(vals, vals[0])
	}
	peak := 0.0
	for _, v := range vals {
		peak = max(peak, v)
	}
	var b strings.Builder
	for i, v := range vals {
		x := 0.0
		if len(vals) > 1 {
			x = float64(i) * chartW / float64(len(vals)-1)
		}
		y := float64(chartH - 2)
		if peak > 0 {
			y = 2 + (chartH-4)*(1-v/peak)
		}
		fmt.Fprintf(&b, "%.1f,%.1f ", x, y)
	}
	c.Points = strings.TrimSpace(b.String())
	c.Latest = fmt.Sprintf("%.0f%s", vals[len(vals)-1], unit)
	c.Peak = fmt.Sprintf("%.0f%s", peak, unit)
	return c
}

// svg renders c as an inline SVG (no style attributes: the CSP forbids them).
func (c chart) svg(label string) template.HTML {
	if c.Empty {
		return template.HTML(`<span class="muted">collecting…</span>`)
	}
	return template.HTML(fmt.Sprintf(`<svg class="spark" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s"><polyline points="%s"/></svg>`,
		chartW, chartH, chartW, chartH, template.HTMLEscapeString(label), c.Points))
}

// span is the time the samples cover, "" with fewer than two.
func (s *sampler) span() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) < 2 {
		return ""
	}
	return s.samples[len(s.samples)-1].at.Sub(s.samples[0].at).Round(time.Second).String()
}
