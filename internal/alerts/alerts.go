// Package alerts evaluates threshold rules about endpoints, queues and
// distributors on a tick, and notifies a webhook (and the log) when an alert
// starts firing, again every RepeatInterval while it fires, and once when it
// is resolved.
//
// Inputs come through small seams so that tests drive them: endpoint
// outcomes through a bus.Observer (Engine.Observer), queue depths through
// Counter (a queue.Queue is one), distributors through Distributor (a
// *distributor.Distributor is one). Observers only move counters under a
// short lock; sampling, evaluation and webhook calls run on the engine's
// goroutines, so a slow database or a webhook that is down never holds up
// message handling.
package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor"
	"github.com/ferrybus/ferry/queue"
)

// Kind is what a rule watches.
type Kind string

// The kinds of rule.
const (
	// FailureRate: failed attempts / (handled + failed attempts) of an
	// endpoint over Window reaches Threshold (a ratio, 0 to 1), with at
	// least MinMessages attempts in the window. Subject: the endpoint.
	FailureRate Kind = "failureRate"
	// FailureCount: a message's failed attempt is its Threshold-th attempt
	// or later (its durable attempt count). Fires once per message id;
	// resolved when the endpoint handles it, moves it to the error queue or
	// discards it. Subject: the message id.
	FailureCount Kind = "failureCount"
	// QueueDepth: a queue holds Threshold messages or more (ready ones, or
	// all with Total). Subject: the queue URI.
	QueueDepth Kind = "queueDepth"
	// QueueAge: the oldest ready message of a queue has waited
	// ThresholdDuration or longer. Subject: the queue URI.
	QueueAge Kind = "queueAge"
	// WorkerSilent: a worker the distributor knows has sent nothing for
	// longer than ThresholdDuration. Subject: the worker id.
	WorkerSilent Kind = "workerSilent"
	// LockLost: the distributor was active and is no longer (it lost its
	// lock on the control inbox) while the engine is not stopping; resolved
	// when it is active again. Subject: the distributor endpoint.
	LockLost Kind = "lockLost"
)

// Rule is one alerting rule.
type Rule struct {
	// Name identifies the rule in notifications. Required, unique.
	Name string
	Kind Kind
	// Endpoint is the endpoint a FailureRate or FailureCount rule watches,
	// or the distributor of a WorkerSilent or LockLost rule.
	Endpoint string
	// Queue is the queue URI of a QueueDepth or QueueAge rule.
	Queue string
	// Window is FailureRate's window.
	Window time.Duration
	// MinMessages is how many attempts FailureRate's window must hold
	// before it may fire.
	MinMessages int
	// Threshold is FailureRate's ratio, FailureCount's attempts and
	// QueueDepth's messages.
	Threshold float64
	// ThresholdDuration is QueueAge's age and WorkerSilent's silence.
	ThresholdDuration time.Duration
	// Total makes QueueDepth count every message (ready, deferred and in
	// flight), not only the ready ones.
	Total bool
}

// Process identifies the process that sends the notifications.
type Process struct {
	ID   string `json:"id"`
	Host string `json:"host"`
	PID  int    `json:"pid"`
}

// Webhook is where notifications are POSTed.
type Webhook struct {
	// URL receives each notification as a JSON Alert. Empty: alerts are
	// only logged.
	URL string
	// Timeout bounds each POST. Default 5s.
	Timeout time.Duration
	// MaxAttempts bounds the POSTs of one notification. Default 3.
	MaxAttempts int
	// Backoff is the wait before the second attempt, doubling for each
	// next one up to 30s. Default 1s.
	Backoff time.Duration
	// Headers are added to each request (e.g. Authorization).
	Headers map[string]string
	// Client sends the requests. Default: a client of its own.
	Client *http.Client
}

// Defaults of Config and Webhook.
const (
	DefaultInterval       = 5 * time.Second
	DefaultRepeatInterval = time.Hour
	DefaultMaxAlerts      = 10_000
	DefaultTimeout        = 5 * time.Second
	DefaultMaxAttempts    = 3
	DefaultBackoff        = time.Second
	// DefaultPending is how many notifications may wait for the webhook.
	DefaultPending = 1000
	maxBackoff     = 30 * time.Second
)

// Config configures an Engine.
type Config struct {
	Rules []Rule
	// Interval is how often rules are evaluated. Default 5s.
	Interval time.Duration
	// RepeatInterval is how often a firing alert is notified again.
	// Default 1h. FailureCount alerts are notified once.
	RepeatInterval time.Duration
	// MaxAlerts bounds the firing alerts tracked, and separately the
	// message (FailureCount) alerts: past it the oldest is forgotten
	// (no resolved notice follows) and counted in Stats.Evicted. Default 10,000.
	MaxAlerts int
	// SampleTimeout bounds each queue sample. Default: Interval.
	SampleTimeout time.Duration
	// Pending bounds the notifications waiting for the webhook; more are
	// dropped (logged, counted). Default 1000.
	Pending int
	Webhook Webhook
	Process Process
	// Logger receives every notification and the engine's problems.
	// Default slog.Default().
	Logger *slog.Logger
	// Clock is the time. Default time.Now.
	Clock func() time.Time
}

// Counter is a queue that can be sampled; queue.Queue is one.
type Counter interface {
	Count(ctx context.Context) (queue.Counts, error)
}

// Distributor is what the engine reads of a distributor;
// *distributor.Distributor is one.
type Distributor interface {
	Active() bool
	Registry() distributor.Snapshot
}

// Stats counts what an engine did.
type Stats struct {
	// Firing is how many alerts fire now (message alerts included).
	Firing int `json:"firing"`
	// Notified counts notifications (firing, repeated, resolved).
	Notified int64 `json:"notified"`
	// Sent counts notifications the webhook accepted (2xx).
	Sent int64 `json:"sent"`
	// Failed counts notifications given up after MaxAttempts.
	Failed int64 `json:"failed"`
	// Dropped counts notifications not sent: the pending queue was full,
	// or the engine stopped first.
	Dropped int64 `json:"dropped"`
	// Evicted counts alerts forgotten over MaxAlerts.
	Evicted int64 `json:"evicted"`
}

// Engine evaluates rules and sends notifications.
type Engine struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	rules []Rule

	obs    map[string]*observer // by endpoint
	msgs   *msgTracker
	queues map[string]*watchedQueue // by URI
	dists  map[string]Distributor   // by endpoint

	mu        sync.Mutex // evaluation
	firing    *tracker
	wasActive map[int]bool // LockLost rule → Active at the last evaluation
	stopping  atomic.Bool

	out      chan Alert
	outMu    sync.RWMutex // closed is set under it, pushes read it
	closed   bool
	cancel   context.CancelFunc
	quit     chan struct{} // closed by Stop: evaluation ends
	tickDone chan struct{}
	sendDone chan struct{}

	notified, sent, failed, dropped atomic.Int64
}

// watchedQueue is a sampled queue: its rules run only while active allows.
type watchedQueue struct {
	q      Counter
	active func() bool
	down   bool // the last sample failed (logged once per outage)
}

// New checks cfg and builds an engine. Its sources are given next
// (Observer, WatchQueue, WatchDistributor), then Start runs it.
func New(cfg Config) (*Engine, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.RepeatInterval <= 0 {
		cfg.RepeatInterval = DefaultRepeatInterval
	}
	if cfg.MaxAlerts <= 0 {
		cfg.MaxAlerts = DefaultMaxAlerts
	}
	if cfg.SampleTimeout <= 0 {
		cfg.SampleTimeout = cfg.Interval
	}
	if cfg.Pending <= 0 {
		cfg.Pending = DefaultPending
	}
	w := &cfg.Webhook
	if w.Timeout <= 0 {
		w.Timeout = DefaultTimeout
	}
	if w.MaxAttempts <= 0 {
		w.MaxAttempts = DefaultMaxAttempts
	}
	if w.Backoff <= 0 {
		w.Backoff = DefaultBackoff
	}
	if w.Client == nil {
		w.Client = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	e := &Engine{
		cfg: cfg, log: cfg.Logger, now: cfg.Clock, rules: cfg.Rules,
		obs: map[string]*observer{}, queues: map[string]*watchedQueue{}, dists: map[string]Distributor{},
		firing: newTracker(cfg.MaxAlerts), wasActive: map[int]bool{},
		out: make(chan Alert, cfg.Pending),
	}
	e.msgs = newMsgTracker(cfg.MaxAlerts)
	names := map[string]bool{}
	var errs []error
	for i, r := range cfg.Rules {
		if err := r.check(); err != nil {
			errs = append(errs, fmt.Errorf("alerts: rule %d %q: %w", i, r.Name, err))
			continue
		}
		if names[r.Name] {
			errs = append(errs, fmt.Errorf("alerts: rule %d %q: name used by an earlier rule", i, r.Name))
		}
		names[r.Name] = true
		switch r.Kind {
		case FailureRate, FailureCount:
			o := e.obs[r.Endpoint]
			if o == nil {
				o = &observer{e: e}
				e.obs[r.Endpoint] = o
			}
			if r.Kind == FailureRate {
				o.rates = append(o.rates, newRate(i, r.Window))
			} else {
				o.counts = append(o.counts, i)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return e, nil
}

// check reports what is wrong with a rule on its own.
func (r Rule) check() error {
	if r.Name == "" {
		return errors.New("name: required")
	}
	switch r.Kind {
	case FailureRate:
		if r.Endpoint == "" || r.Window <= 0 || r.MinMessages < 1 || r.Threshold <= 0 || r.Threshold > 1 {
			return errors.New("failureRate needs an endpoint, a window, minMessages ≥ 1 and a threshold in (0, 1]")
		}
	case FailureCount:
		if r.Endpoint == "" || r.Threshold < 1 {
			return errors.New("failureCount needs an endpoint and a threshold ≥ 1")
		}
	case QueueDepth:
		if r.Queue == "" || r.Threshold < 1 {
			return errors.New("queueDepth needs a queue and a threshold ≥ 1")
		}
	case QueueAge:
		if r.Queue == "" || r.ThresholdDuration <= 0 {
			return errors.New("queueAge needs a queue and a positive threshold duration")
		}
	case WorkerSilent:
		if r.Endpoint == "" || r.ThresholdDuration <= 0 {
			return errors.New("workerSilent needs a distributor endpoint and a positive threshold duration")
		}
	case LockLost:
		if r.Endpoint == "" {
			return errors.New("lockLost needs a distributor endpoint")
		}
	default:
		return fmt.Errorf("kind %q: unknown", r.Kind)
	}
	return nil
}

// Observer is the observer of the endpoint's outcomes for its FailureRate
// and FailureCount rules: add it with bus.Endpoint.AddObserver. An endpoint
// no rule watches gets an observer that does nothing.
func (e *Engine) Observer(endpoint string) bus.Observer {
	if o := e.obs[endpoint]; o != nil {
		o.added.Store(true)
		return o
	}
	return nopObserver{}
}

// WatchQueue gives the queue that rules name uri. active, when not nil,
// says whether its rules run now (a standby distributor's do not).
func (e *Engine) WatchQueue(uri string, q Counter, active func() bool) {
	e.queues[uri] = &watchedQueue{q: q, active: active}
}

// WatchDistributor gives the distributor that rules name endpoint.
func (e *Engine) WatchDistributor(endpoint string, d Distributor) {
	e.dists[endpoint] = d
}

// Start checks that every rule has its source and runs the engine: it
// evaluates the rules every Interval and sends notifications, until Stop.
func (e *Engine) Start(ctx context.Context) error {
	var errs []error
	for _, r := range e.rules {
		switch r.Kind {
		case FailureRate, FailureCount:
			if !e.obs[r.Endpoint].added.Load() {
				errs = append(errs, fmt.Errorf("alerts: rule %q: endpoint %q is not observed (Observer was not asked for it)", r.Name, r.Endpoint))
			}
		case QueueDepth, QueueAge:
			if e.queues[r.Queue] == nil {
				errs = append(errs, fmt.Errorf("alerts: rule %q: queue %q is not watched", r.Name, r.Queue))
			}
		case WorkerSilent, LockLost:
			if e.dists[r.Endpoint] == nil {
				errs = append(errs, fmt.Errorf("alerts: rule %q: distributor %q is not watched", r.Name, r.Endpoint))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.cancel = cancel
	e.quit, e.tickDone, e.sendDone = make(chan struct{}), make(chan struct{}), make(chan struct{})
	go e.sendLoop(runCtx)
	go func() {
		defer close(e.tickDone)
		t := time.NewTicker(e.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-e.quit:
				return
			case <-t.C:
				e.Evaluate(runCtx)
			}
		}
	}()
	e.log.Info("alerts: evaluating", "rules", len(e.rules), "interval", e.cfg.Interval, "webhook", e.cfg.Webhook.URL != "")
	return nil
}

// Stop ends evaluation (a distributor stopped after it raises no LockLost
// alert), then gives the notifications still pending until ctx ends to
// the webhook; those left are dropped and counted. Firing alerts get no
// resolved notice: the process stops, the conditions may last.
func (e *Engine) Stop(ctx context.Context) {
	if e.stopping.Swap(true) || e.cancel == nil {
		return
	}
	close(e.quit)
	<-e.tickDone
	e.outMu.Lock()
	if !e.closed {
		e.closed = true
		close(e.out)
	}
	e.outMu.Unlock()
	select {
	case <-e.sendDone:
	case <-ctx.Done():
		e.cancel()
		<-e.sendDone
	}
	e.cancel()
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	n := e.firing.len()
	e.mu.Unlock()
	return Stats{Firing: n + e.msgs.firing(), Notified: e.notified.Load(), Sent: e.sent.Load(), Failed: e.failed.Load(),
		Dropped: e.dropped.Load(), Evicted: e.firing.evicted.Load() + e.msgs.evicted.Load()}
}

// Firing lists the alerts firing now, for tests and tooling.
func (e *Engine) Firing() []Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Alert
	for _, a := range e.firing.all() {
		out = append(out, e.alert(a.rule, a.subject, "firing", a.value, a.startsAt, time.Time{}, a.message))
	}
	return out
}

// Evaluate evaluates every rule once at the clock's time and queues the
// notifications due. Start calls it every Interval; tests call it to drive
// the engine step by step.
func (e *Engine) Evaluate(ctx context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	samples := e.sample(ctx)
	for i, r := range e.rules {
		switch r.Kind {
		case FailureRate:
			e.evalRate(i, r, now)
		case QueueDepth, QueueAge:
			if s, ok := samples[r.Queue]; ok {
				e.evalQueue(i, r, s, now)
			}
		case WorkerSilent:
			e.evalSilent(i, r, now)
		case LockLost:
			e.evalLock(i, r, now)
		}
	}
	for _, n := range e.msgs.drain() {
		e.notify(e.alert(n.rule, n.id, n.status, n.value, n.startsAt, n.endsAt, n.message))
	}
	if n := e.firing.takeEvicted(); n > 0 {
		e.log.Warn("alerts: firing alerts over the bound; the oldest were forgotten without a resolved notice", "forgotten", n, "maxAlerts", e.cfg.MaxAlerts)
	}
	if n := e.msgs.takeEvicted(); n > 0 {
		e.log.Warn("alerts: message alerts over the bound; the oldest were forgotten without a resolved notice", "forgotten", n, "maxAlerts", e.cfg.MaxAlerts)
	}
}

// set moves the alert of rule i about subject: fire starts it (or repeats
// it when RepeatInterval has passed since its last notice), resolve ends it;
// neither keeps it as it is.
func (e *Engine) set(i int, subject string, fire, resolve bool, value float64, message string, now time.Time) {
	a := e.firing.get(i, subject)
	switch {
	case fire && a == nil:
		a = e.firing.add(i, subject, now)
		a.value, a.message, a.lastSent = value, message, now
		e.notify(e.alert(i, subject, "firing", value, a.startsAt, time.Time{}, message))
	case fire:
		a.value, a.message = value, message
		if now.Sub(a.lastSent) >= e.cfg.RepeatInterval {
			a.lastSent = now
			e.notify(e.alert(i, subject, "firing", value, a.startsAt, time.Time{}, message))
		}
	case resolve && a != nil:
		e.firing.remove(a)
		e.notify(e.alert(i, subject, "resolved", value, a.startsAt, now, message))
	}
}
