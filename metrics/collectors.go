package metrics

import (
	"slices"
	"sync"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor"
	"github.com/ferrybus/ferry/queue"
	"github.com/prometheus/client_golang/prometheus"
)

// endpointCollector reads each endpoint's received count and messages in
// flight at scrape time.
type endpointCollector struct {
	mu  sync.Mutex
	eps []*bus.Endpoint
}

var (
	receivedDesc = prometheus.NewDesc("ferry_messages_received_total",
		"Messages an inbox thread took up to handle (each delivery counts).", []string{"endpoint", "queue"}, nil)
	inFlightDesc = prometheus.NewDesc("ferry_messages_in_flight",
		"Messages a handler thread has now.", []string{"endpoint", "queue"}, nil)
)

func (c *endpointCollector) add(ep *bus.Endpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.eps = append(c.eps, ep)
}

// Describe implements prometheus.Collector.
func (c *endpointCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- receivedDesc
	ch <- inFlightDesc
}

// Collect implements prometheus.Collector. Endpoints of one name and inbox
// (two in one process) are summed, as one series.
func (c *endpointCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	eps := slices.Clone(c.eps)
	c.mu.Unlock()
	type key struct{ endpoint, queue string }
	type sums struct{ received, inFlight int64 }
	var order []key
	byKey := map[key]*sums{}
	for _, ep := range eps {
		k := key{ep.Name(), ep.Inbox().URI()}
		s, ok := byKey[k]
		if !ok {
			s = &sums{}
			byKey[k] = s
			order = append(order, k)
		}
		s.received += ep.Stats().Received
		s.inFlight += int64(ep.InFlight())
	}
	for _, k := range order {
		s := byKey[k]
		ch <- prometheus.MustNewConstMetric(receivedDesc, prometheus.CounterValue, float64(s.received), k.endpoint, k.queue)
		ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(s.inFlight), k.endpoint, k.queue)
	}
}

// distributorCollector reads each distributor's counters and registry at
// scrape time.
type distributorCollector struct {
	mu sync.Mutex
	ds []*distributor.Distributor
}

var (
	distLabels        = []string{"distributor"}
	distWorkerLabels  = []string{"distributor", "worker"}
	distActiveDesc    = prometheus.NewDesc("ferry_distributor_active", "1 while the distributor holds its control inbox, 0 as a standby.", distLabels, nil)
	distDistributed   = prometheus.NewDesc("ferry_distributor_distributed_total", "Messages moved to workers.", distLabels, nil)
	distMoves         = prometheus.NewDesc("ferry_distributor_moves_total", "Move statements that moved messages to workers.", distLabels, nil)
	distReclaimed     = prometheus.NewDesc("ferry_distributor_reclaimed_total", "Messages returned to the inbox from silent or stopped workers.", distLabels, nil)
	distAnnouncements = prometheus.NewDesc("ferry_distributor_announcements_total", "Control messages handled (started, thread available, heartbeat, stopping).", distLabels, nil)
	distWorkers       = prometheus.NewDesc("ferry_distributor_workers", "Worker sessions the distributor knows.", distLabels, nil)
	distIdle          = prometheus.NewDesc("ferry_distributor_idle_threads", "A worker's idle threads waiting for work.", distWorkerLabels, nil)
	distAvailAge      = prometheus.NewDesc("ferry_distributor_availability_age_seconds", "How long a worker's oldest waiting availability has waited (0 when none waits).", distWorkerLabels, nil)
	distLastSeen      = prometheus.NewDesc("ferry_distributor_worker_last_seen_seconds", "Seconds since the worker's last control message.", distWorkerLabels, nil)
)

func (c *distributorCollector) add(d *distributor.Distributor) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ds = append(c.ds, d)
}

// Describe implements prometheus.Collector.
func (c *distributorCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{distActiveDesc, distDistributed, distMoves, distReclaimed, distAnnouncements,
		distWorkers, distIdle, distAvailAge, distLastSeen} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *distributorCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	ds := slices.Clone(c.ds)
	c.mu.Unlock()
	now := time.Now()
	for _, d := range ds {
		name := d.Name()
		active := 0.0
		if d.Active() {
			active = 1
		}
		st := d.Stats()
		ch <- prometheus.MustNewConstMetric(distActiveDesc, prometheus.GaugeValue, active, name)
		ch <- prometheus.MustNewConstMetric(distDistributed, prometheus.CounterValue, float64(st.Distributed), name)
		ch <- prometheus.MustNewConstMetric(distMoves, prometheus.CounterValue, float64(st.Moves), name)
		ch <- prometheus.MustNewConstMetric(distReclaimed, prometheus.CounterValue, float64(st.Reclaimed), name)
		ch <- prometheus.MustNewConstMetric(distAnnouncements, prometheus.CounterValue, float64(st.Announcements), name)
		snap := d.Registry()
		ch <- prometheus.MustNewConstMetric(distWorkers, prometheus.GaugeValue, float64(len(snap.Workers)), name)
		ids := make([]string, 0, len(snap.Workers))
		for id := range snap.Workers {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		if len(ids) > MaxWorkers {
			ids = ids[:MaxWorkers] // bounded labels: the workers gauge still counts them all
		}
		for _, id := range ids {
			ch <- prometheus.MustNewConstMetric(distIdle, prometheus.GaugeValue, float64(snap.Available[id]), name, id)
			age := 0.0
			if since, ok := snap.Waiting[id]; ok {
				age = max(now.Sub(since).Seconds(), 0)
			}
			ch <- prometheus.MustNewConstMetric(distAvailAge, prometheus.GaugeValue, age, name, id)
			ch <- prometheus.MustNewConstMetric(distLastSeen, prometheus.GaugeValue, max(now.Sub(snap.LastSeen[id]).Seconds(), 0), name, id)
		}
	}
}

// storeCollector reads each store's round trips and errors at scrape time.
type storeCollector struct {
	mu     sync.Mutex
	stores []queue.Store
}

var (
	storeRoundTrips = prometheus.NewDesc("ferry_store_round_trips_total", "Statements sent for queue operations.", []string{"connection"}, nil)
	storeErrors     = prometheus.NewDesc("ferry_store_errors_total", "Statements for queue operations that failed.", []string{"connection"}, nil)
)

func (c *storeCollector) add(s queue.Store) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stores = append(c.stores, s)
}

// Describe implements prometheus.Collector.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- storeRoundTrips
	ch <- storeErrors
}

// Collect implements prometheus.Collector. Stores of one connection name
// (handles opened twice) are summed.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	stores := slices.Clone(c.stores)
	c.mu.Unlock()
	var order []string
	trips, errs := map[string]int64{}, map[string]int64{}
	for _, s := range stores {
		name := s.Name()
		if _, ok := trips[name]; !ok {
			order = append(order, name)
		}
		trips[name] += s.RoundTrips()
		errs[name] += s.Errors()
	}
	for _, name := range order {
		ch <- prometheus.MustNewConstMetric(storeRoundTrips, prometheus.CounterValue, float64(trips[name]), name)
		ch <- prometheus.MustNewConstMetric(storeErrors, prometheus.CounterValue, float64(errs[name]), name)
	}
}
