// Package worker runs an endpoint as a worker of a distributor: it handles
// messages from its own work queue, into which the distributor moves work,
// and tells the distributor's control inbox about itself with the messages
// of package control: Started when a session begins, one ThreadAvailable
// per idle thread repeated every AvailabilityInterval, a Heartbeat every
// AvailabilityInterval while no thread is idle, and Stopping on a graceful
// stop.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor/control"
	"github.com/ferrybus/ferry/internal/role"
	"github.com/ferrybus/ferry/queue"
)

// Config configures the worker role of an endpoint.
type Config struct {
	// ID identifies the worker among the distributor's workers. Required.
	ID string
	// DistributorControlQueue is the URI of the distributor's control inbox. Required.
	DistributorControlQueue string
	// AvailabilityInterval is how often an idle thread repeats its
	// availability, and a busy worker its heartbeat. Default 15s.
	AvailabilityInterval time.Duration
}

// DefaultAvailabilityInterval is used when Config sets none.
const DefaultAvailabilityInterval = control.DefaultInterval

// Worker is an endpoint that takes its work from a distributor.
type Worker struct {
	cfg     Config
	ep      *bus.Endpoint
	hooks   *role.Hooks
	abandon func() // the endpoint's crash-like stop
	control string
	log     *slog.Logger

	mu       sync.Mutex
	session  string
	handoff  int64             // the session's token: its work is moved in leased to it (control.ThreadAvailable.Handoff)
	idle     map[int]time.Time // idle thread -> when its availability was last sent (zero: not yet)
	lastSent time.Time         // last control message of any kind
	kick     chan struct{}
	// live settings (reconfigure.go): size is the thread count announced
	// (guarded by mu), resized says it changed since, interval is
	// AvailabilityInterval in force.
	size     int
	resized  bool
	interval atomic.Int64
	stop     chan struct{}
	done     chan struct{}
}

// New makes a worker of an endpoint configured by epCfg, which must have an
// inbox: the worker's own work queue.
func New(ctx context.Context, conns *queue.Connections, epCfg bus.Config, mux *bus.Mux, cfg Config) (*Worker, error) {
	if cfg.ID == "" {
		return nil, errors.New("worker: id: required")
	}
	if epCfg.Inbox == nil {
		return nil, fmt.Errorf("worker %q: inbox: required (the worker's own work queue)", cfg.ID)
	}
	if cfg.DistributorControlQueue == "" {
		return nil, fmt.Errorf("worker %q: worker.distributorControlQueue: required", cfg.ID)
	}
	if _, err := queue.ParseURI(cfg.DistributorControlQueue); err != nil {
		return nil, fmt.Errorf("worker %q: worker.distributorControlQueue: %w", cfg.ID, err)
	}
	if cfg.AvailabilityInterval <= 0 {
		cfg.AvailabilityInterval = DefaultAvailabilityInterval
	}
	if epCfg.Name == "" {
		epCfg.Name = cfg.ID
	}
	// A role's hooks may come from ferry's own tests (the type is internal),
	// which then crash the worker through hooks.Abandon.
	hooks := epCfg.Role
	if hooks == nil {
		hooks = &role.Hooks{}
	}
	epCfg.Role = hooks
	ep, err := bus.New(ctx, conns, epCfg, mux)
	if err != nil {
		return nil, fmt.Errorf("worker %q: %w", cfg.ID, err)
	}
	log := epCfg.Logger
	if log == nil {
		log = slog.Default()
	}
	w := &Worker{
		cfg: cfg, ep: ep, hooks: hooks, control: cfg.DistributorControlQueue,
		log:  log.With("worker", cfg.ID),
		idle: map[int]time.Time{}, kick: make(chan struct{}, 1),
	}
	hooks.Idle, hooks.ThreadBusy = w.threadsIdle, w.threadBusy
	hooks.Resized, hooks.Retired = w.threadsResized, w.threadsRetired // reconfigure.go
	w.interval.Store(int64(cfg.AvailabilityInterval))
	w.abandon = hooks.Abandon
	hooks.Abandon = w.crash
	return w, nil
}

// Endpoint is the worker's endpoint (its inbox, stats, sending).
func (w *Worker) Endpoint() *bus.Endpoint { return w.ep }

// Session is the id of the current session ("" before Start).
func (w *Worker) Session() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.session
}

// Start opens a new session, announces it and starts handling. What a
// previous session of this worker still held leased in its queue (it died)
// is taken back at once: the queue is this worker's alone.
func (w *Worker) Start(ctx context.Context) error {
	if n, err := w.ep.Inbox().ReleaseLeased(ctx); err != nil {
		w.log.Warn("cannot take back messages a previous session held; they return when their leases end", "err", err)
	} else if n > 0 {
		w.log.Info("took back messages a previous session of this worker held", "messages", n, "inbox", w.ep.Inbox().URI())
	}
	w.mu.Lock()
	w.session = bus.NewID()
	w.handoff = newHandoffToken()
	// The endpoint reads what is handed over to this session's token.
	w.hooks.Handoff = w.handoff
	w.idle = map[int]time.Time{}
	w.size, w.resized = w.ep.Threads(), false
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	w.mu.Unlock()
	if err := w.send(ctx, control.Started{WorkerID: w.cfg.ID, Session: w.session, Inbox: w.ep.Inbox().URI(), Threads: w.ep.Threads(), SentAt: time.Now()}); err != nil {
		return fmt.Errorf("worker %q: announce start: %w", w.cfg.ID, err)
	}
	go w.announce()
	if err := w.ep.Start(ctx); err != nil {
		close(w.stop)
		<-w.done
		return err
	}
	w.log.Info("worker started", "session", w.session, "inbox", w.ep.Inbox().URI(), "distributor", w.control)
	return nil
}

// Stop stops announcing, stops the endpoint (in-flight handlers finish until
// ctx ends, the rest is released), then tells the distributor the session
// ended, so it returns what is left in the worker's queue at once.
func (w *Worker) Stop(ctx context.Context) error {
	if w.stop == nil {
		return nil
	}
	select {
	case <-w.stop:
		return nil
	default:
	}
	close(w.stop)
	<-w.done
	err := w.ep.Stop(ctx)
	sendCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if serr := w.send(sendCtx, control.Stopping{WorkerID: w.cfg.ID, Session: w.Session(), Inbox: w.ep.Inbox().URI(), SentAt: time.Now()}); serr != nil {
		w.log.Warn("could not announce stop; the distributor will reclaim after silence", "err", serr)
	}
	return err
}

// crash stops the worker as a crash would, for failure tests (through
// role.Hooks.Abandon): no Stopping message, no more availabilities or
// heartbeats, and the messages it holds stay leased until their leases end.
func (w *Worker) crash() {
	if w.stop == nil {
		return
	}
	select {
	case <-w.stop:
		return
	default:
	}
	close(w.stop)
	<-w.done
	w.abandon()
}

// send posts a control message that expires when it could only mislead.
func (w *Worker) send(ctx context.Context, body any) error {
	w.mu.Lock()
	w.lastSent = time.Now()
	w.mu.Unlock()
	// Control traffic is not traced: soft state, renewed all the time.
	return w.ep.Send(role.Untraced(ctx), body, bus.To(w.control), bus.ExpiresIn(control.Lifetime(w.AvailabilityInterval())), bus.Priority(0))
}

// sendBatch posts several control messages in one statement.
func (w *Worker) sendBatch(ctx context.Context, bodies []any) error {
	w.mu.Lock()
	w.lastSent = time.Now()
	w.mu.Unlock()
	return w.ep.SendBatch(role.Untraced(ctx), bodies, bus.To(w.control), bus.ExpiresIn(control.Lifetime(w.AvailabilityInterval())))
}

func (w *Worker) threadsIdle(threads []int) {
	w.mu.Lock()
	added := false
	for _, t := range threads {
		if t >= w.size {
			continue // retiring: the endpoint was resized since it listed them
		}
		if _, ok := w.idle[t]; !ok {
			w.idle[t] = time.Time{}
			added = true
		}
	}
	w.mu.Unlock()
	if added {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

func (w *Worker) threadBusy(thread int) {
	w.mu.Lock()
	delete(w.idle, thread)
	w.mu.Unlock()
}

// announce sends availabilities for newly idle threads at once, repeats them
// every interval while the threads stay idle, and sends heartbeats while none is.
func (w *Worker) announce() {
	defer close(w.done)
	interval := w.AvailabilityInterval()
	tick := time.NewTicker(max(interval/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.kick:
		case <-tick.C:
		}
		if iv := w.AvailabilityInterval(); iv != interval { // SetAvailabilityInterval
			interval = iv
			tick.Reset(max(interval/4, 10*time.Millisecond))
		}
		w.announceSize() // reconfigure.go: a resize first, so the distributor drops retired threads
		now := time.Now()
		w.mu.Lock()
		var due []int
		for t, sent := range w.idle {
			if sent.IsZero() || now.Sub(sent) >= interval {
				due = append(due, t)
				w.idle[t] = now
			}
		}
		heartbeat := len(w.idle) == 0 && now.Sub(w.lastSent) >= interval
		session, handoff := w.session, w.handoff
		w.mu.Unlock()
		sort.Ints(due)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		inbox := w.ep.Inbox().URI()
		if len(due) > 0 {
			// One message per idle thread, all in one statement.
			msgs := control.Availabilities(control.ThreadAvailable{
				WorkerID: w.cfg.ID, Session: session, Inbox: inbox, SentAt: now, ValidFor: control.Lifetime(interval),
				Handoff: handoff, Lease: w.hooks.Lease}, due)
			if err := w.sendBatch(ctx, msgs); err != nil {
				w.log.Warn("availability not sent; will retry", "threads", due, "err", err)
				w.mu.Lock()
				for _, t := range due {
					if _, ok := w.idle[t]; ok {
						w.idle[t] = time.Time{}
					}
				}
				w.mu.Unlock()
			}
		}
		if heartbeat {
			if err := w.send(ctx, control.Heartbeat{WorkerID: w.cfg.ID, Session: session, Inbox: inbox, SentAt: now}); err != nil {
				w.log.Warn("heartbeat not sent", "err", err)
			}
		}
		cancel()
	}
}

// newHandoffToken returns a random non-zero lease token for a session: zero
// means no handoff.
func newHandoffToken() int64 {
	for {
		if t := rand.Int64(); t != 0 {
			return t
		}
	}
}
