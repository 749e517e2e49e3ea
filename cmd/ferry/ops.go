package main

// The operations HTTP server of `ferry run` (internal/opshttp): /metrics,
// /healthz, /readyz and, with http.pprof, /debug/pprof/.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor"
	"github.com/ferrybus/ferry/internal/config"
	"github.com/ferrybus/ferry/internal/opshttp"
	"github.com/ferrybus/ferry/metrics"
	"github.com/ferrybus/ferry/queue"
	"github.com/ferrybus/ferry/worker"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// opsShutdownTimeout bounds the operations server's graceful shutdown.
const opsShutdownTimeout = 5 * time.Second

// queueSampleInterval is how often `ferry run --http` counts the queues
// of its endpoint for the ferry_queue_* metrics (in the background: a
// scrape never touches a database).
const queueSampleInterval = 10 * time.Second

// instrument registers the process's metrics on reg: the endpoint r runs
// (a distributor with its control and local endpoints, a worker's
// endpoint), the stores of conns it uses, and a sampler of its queues'
// depths that runs until ctx ends. It is called once, after the endpoint
// started.
func instrument(ctx context.Context, reg *prometheus.Registry, r runner, conns *queue.Connections, log *slog.Logger) {
	m := metrics.New(reg)
	if rr, ok := r.(running); ok { // the reloadable wrapper: look at what it runs
		r = rr.runner
	}
	var eps []*bus.Endpoint
	var qs []queue.Queue
	switch x := r.(type) {
	case *bus.Endpoint:
		m.AddEndpoint(x)
		eps = append(eps, x)
	case *worker.Worker:
		m.AddWorker(x)
		eps = append(eps, x.Endpoint())
	case *distributor.Distributor:
		m.AddDistributor(x)
		eps = append(eps, x.Endpoints()...)
		qs = append(qs, x.Inbox())
	}
	seen := map[string]bool{}
	var sampled []queue.Queue
	add := func(q queue.Queue) {
		if q == nil || seen[q.URI()] {
			return
		}
		seen[q.URI()] = true
		sampled = append(sampled, q)
		m.AddStore(q.Store()) // the same store twice counts once
	}
	for _, q := range qs {
		add(q)
	}
	for _, ep := range eps {
		add(ep.Inbox())
		if uri := ep.ErrorQueueURI(); uri != "" {
			q, err := conns.Queue(ctx, uri)
			if err != nil {
				log.Warn("metrics: error queue not sampled", "queue", uri, "err", err)
				continue
			}
			add(q)
		}
	}
	m.SampleQueues(ctx, queueSampleInterval, sampled...)
}

// httpAddr is the operations server's address: --http when given (flag
// set), else http.addr; "" for no server.
func httpAddr(cfg *config.Config, flag string, set bool) (string, error) {
	if !set {
		return cfg.HTTP.Addr, nil
	}
	if flag == "" {
		return "", usagef("run: --http: empty: want an address such as \":9090\" (127.0.0.1 only) or \"0.0.0.0:9090\"")
	}
	if _, err := opshttp.ListenAddr(flag); err != nil {
		return "", usagef("run: --http %v", err)
	}
	return flag, nil
}

// ops is the operations server of a run and what its checks look at: the
// runner and its connections once the endpoint has started.
type ops struct {
	srv *opshttp.Server
	reg *prometheus.Registry
	log *slog.Logger

	mu    sync.Mutex
	r     runner
	conns *queue.Connections
	// stopSampling ends the queue sampler of the metrics (stopping).
	stopSampling context.CancelFunc
}

// startOps starts the operations server on addr before the endpoint
// starts, so that /healthz answers while it retries a database and
// /readyz says why it is not ready. It returns nil when addr is "".
func startOps(cfg *config.Config, addr string, log *slog.Logger) (*ops, error) {
	if addr == "" {
		return nil, nil
	}
	o := &ops{reg: prometheus.NewRegistry(), log: log}
	srv, err := opshttp.New(opshttp.Config{
		Addr:    addr,
		Metrics: promhttp.HandlerFor(o.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn), MaxRequestsInFlight: 4}),
		Pprof:   cfg.HTTP.Pprof,
		Logger:  log,
	})
	if err != nil {
		return nil, err
	}
	o.srv = srv
	if err := srv.AddCheck("endpoint", o.checkEndpoint); err != nil {
		return nil, err
	}
	for _, name := range queue.NewConnections(cfg.Connections, queue.Options{}).Names() {
		if err := srv.AddCheck("database "+name, o.checkDatabase(name)); err != nil {
			return nil, err
		}
	}
	if err := srv.Start(); err != nil {
		key := "http.addr"
		if addr != cfg.HTTP.Addr {
			key = "--http"
		}
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	log.Info("serving /metrics, /healthz and /readyz", "addr", srv.Addr(), "pprof", cfg.HTTP.Pprof)
	return o, nil
}

// started records the started endpoint for the checks and instruments it.
func (o *ops) started(r runner, conns *queue.Connections) {
	if o == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	o.mu.Lock()
	o.r, o.conns, o.stopSampling = r, conns, cancel
	o.mu.Unlock()
	instrument(ctx, o.reg, r, conns, o.log)
}

// stopping marks the endpoint as stopping: /readyz fails from now on, and
// no check touches the connections, which are about to close (a check
// must not open a store again).
func (o *ops) stopping() {
	if o == nil {
		return
	}
	o.mu.Lock()
	o.r, o.conns = nil, nil
	if o.stopSampling != nil {
		o.stopSampling()
	}
	o.mu.Unlock()
}

// shutdown stops the server, waiting at most opsShutdownTimeout.
func (o *ops) shutdown() {
	if o == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), opsShutdownTimeout)
	defer cancel()
	if err := o.srv.Shutdown(ctx); err != nil {
		o.log.Warn("operations HTTP server did not shut down cleanly", "err", err)
	}
}

func (o *ops) state() (runner, *queue.Connections) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.r, o.conns
}

// checkEndpoint: the endpoint has started and is not stopping; a
// distributor is ready active or standby.
func (o *ops) checkEndpoint(context.Context) error {
	r, _ := o.state()
	if r == nil {
		return errors.New("endpoint not started (starting, waiting for a database, or stopping)")
	}
	return nil // a distributor is ready active or standby: one of each is as it should be
}

// checkDatabase: the connection name answers a ping.
func (o *ops) checkDatabase(name string) opshttp.Check {
	return func(ctx context.Context) error {
		_, conns := o.state()
		if conns == nil {
			return errors.New("not connected (starting, waiting for the database, or stopping)")
		}
		s, err := conns.Store(ctx, name)
		if err != nil {
			return err
		}
		return opshttp.Ping(s.DB())(ctx)
	}
}

// busConfig is the endpoint's bus.Config with the summary lines of
// log.summaryInterval.
func busConfig(cfg *config.Config, ep *config.Endpoint, id string, log *slog.Logger) bus.Config {
	c := ep.BusConfig(id, cfg.Routes, log)
	c.SummaryInterval = cfg.SummaryInterval()
	return c
}

// distributorConfig is the endpoint's distributor.Config with the summary
// lines of log.summaryInterval.
func distributorConfig(cfg *config.Config, ep *config.Endpoint, name string, log *slog.Logger) distributor.Config {
	c := ep.DistributorConfig(name, log)
	c.SummaryInterval = cfg.SummaryInterval()
	return c
}
