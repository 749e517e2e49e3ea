package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor"
	"github.com/ferrybus/ferry/internal/alerts"
	"github.com/ferrybus/ferry/internal/config"
	"github.com/ferrybus/ferry/queue"
	"github.com/ferrybus/ferry/worker"
)

// alertsStopTimeout bounds how long a stopping `ferry run` gives the
// webhook the notifications still pending.
const alertsStopTimeout = 2 * time.Second

// startAlerts starts the evaluation of the alert rules that concern
// `ferry run name`: failure rules of this endpoint, queue rules this
// endpoint evaluates (config.AlertQueueEndpoint), and distributor rules of
// this distributor. It returns nil when no rule concerns it.
func startAlerts(ctx context.Context, cfg *config.Config, name, id string, r runner, conns *queue.Connections, log *slog.Logger) (*alerts.Engine, error) {
	a := cfg.Alerts
	if a == nil {
		return nil, nil
	}
	var ep *bus.Endpoint
	var dist *distributor.Distributor
	if rr, ok := r.(running); ok { // the reloadable wrapper: look at what it runs
		r = rr.runner
	}
	switch x := r.(type) {
	case *bus.Endpoint:
		ep = x
	case *worker.Worker:
		ep = x.Endpoint()
	case *distributor.Distributor:
		dist, ep = x, x.Local()
	}
	var rules []alerts.Rule
	queues := map[string]bool{}
	for _, cr := range a.Rules {
		rule := alerts.Rule{Name: cr.Name, Kind: alerts.Kind(cr.Kind), Endpoint: cr.Endpoint}
		switch rule.Kind {
		case alerts.FailureRate, alerts.FailureCount:
			if cr.Endpoint != name || ep == nil {
				continue
			}
			rule.Threshold, rule.Window, rule.MinMessages = cr.ThresholdNumber(), cr.Window, cr.MinMessages
			if rule.Window == 0 {
				rule.Window = config.DefaultAlertWindow
			}
			if rule.MinMessages == 0 {
				rule.MinMessages = config.DefaultMinMessages
			}
		case alerts.QueueDepth, alerts.QueueAge:
			if cfg.AlertQueueEndpoint(cr) != name {
				continue
			}
			rule.Endpoint = ""
			rule.Queue = strings.ReplaceAll(cr.Queue, "{id}", id)
			rule.Threshold, rule.ThresholdDuration, rule.Total = cr.ThresholdNumber(), cr.ThresholdDuration(), cr.Count == "total"
			if rule.Kind == alerts.QueueAge {
				rule.Threshold = 0
			}
			queues[rule.Queue] = true
		case alerts.WorkerSilent, alerts.LockLost:
			if cr.Endpoint != name || dist == nil {
				continue
			}
			rule.ThresholdDuration = cr.ThresholdDuration()
		}
		rules = append(rules, rule)
	}
	if len(rules) == 0 {
		return nil, nil
	}
	host, _ := os.Hostname()
	ecfg := alerts.Config{
		Rules: rules, Interval: a.Interval, RepeatInterval: a.RepeatInterval, MaxAlerts: a.MaxAlerts,
		Process: alerts.Process{ID: id, Host: host, PID: os.Getpid()}, Logger: log,
	}
	if w := a.Webhook; w != nil {
		ecfg.Webhook = alerts.Webhook{URL: w.URL, Timeout: w.Timeout, MaxAttempts: w.MaxAttempts, Headers: w.Headers}
	}
	eng, err := alerts.New(ecfg)
	if err != nil {
		return nil, &config.Error{File: cfg.File(), Key: "alerts", Msg: err.Error()}
	}
	if ep != nil {
		ep.AddObserver(eng.Observer(name))
	}
	if dist != nil {
		eng.WatchDistributor(name, dist)
	}
	for uri := range queues {
		q, err := conns.Queue(ctx, uri)
		if err != nil {
			return nil, fmt.Errorf("alerts: queue %s: %w", uri, err)
		}
		var active func() bool
		if dist != nil {
			active = dist.Active // a standby leaves its queues to the active distributor
		}
		eng.WatchQueue(uri, q, active)
	}
	if err := eng.Start(ctx); err != nil {
		return nil, err
	}
	return eng, nil
}

// stopAlerts stops eng (nil: nothing) before its endpoint stops, so that a
// distributor's stop raises no lockLost alert.
func stopAlerts(eng *alerts.Engine) {
	if eng == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), alertsStopTimeout)
	defer cancel()
	eng.Stop(ctx)
}
