// Package distributor hands an endpoint's inbox messages to worker
// processes, Shuttle-style. The distributor owns a control inbox (its own
// queue and threads, so control messages never wait behind a deep inbox)
// where workers announce each idle thread; for each availability it moves up
// to DistributeSendCount messages from its inbox into that worker's work
// queue: a single UPDATE when both queues are in one database. The messages
// workers send and the rules about them are package control.
//
// Where other Shuttle-style distributors go wrong, this one does not:
//   - an availability expires unless renewed, so a dead worker stops receiving;
//   - a worker's new session replaces the old one's availabilities, so counts
//     never drift across restarts;
//   - messages left in the queue of a worker silent for ReclaimAfter (or that
//     announced it is stopping) are moved back to the inbox and handled elsewhere;
//   - two distributors on one control inbox do not compete: one holds a lock
//     in the database and the other waits as a standby.
package distributor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrybus/ferry/bus"
	rolehooks "github.com/ferrybus/ferry/internal/role" // the distributor has a type role
	"github.com/ferrybus/ferry/queue"
	"go.opentelemetry.io/otel/trace"
)

// Headers the distributor stamps on the messages it moves to a worker.
const (
	// HeaderDistributedTo records the worker queue a message was moved to;
	// a reclaim clears it.
	HeaderDistributedTo = "ferry.distributed-to"
)

// controlPrefetch is the control inbox's prefetch when its config sets none.
const controlPrefetch = 64

// DefaultLockTTL is the lock lease when Config sets none.
const DefaultLockTTL = 5 * time.Second

// Config configures a distributor.
type Config struct {
	// Name identifies the distributor endpoint. Required.
	Name string
	// Inbox is the inbox whose messages are distributed. Required.
	Inbox bus.InboxConfig
	// Distribute true: only distribute. False: handle inbox messages here
	// (with the Mux given to New) while no worker is available.
	Distribute bool
	// DistributeSendCount is how many messages one availability may take. Default 5.
	DistributeSendCount int
	// ControlInbox receives the workers' announcements. Required.
	ControlInbox bus.InboxConfig
	// ReclaimAfter is how long a worker may stay silent before the messages
	// in its queue are returned to the inbox. Default 60s.
	ReclaimAfter time.Duration
	// LockTTL bounds how long a distributor that stopped renewing its lock
	// (frozen, cut off, or on SQLite crashed) holds the control inbox before
	// a standby takes over; it renews every LockTTL/3. On PostgreSQL a
	// crashed distributor's lock is free as soon as its database session
	// ends. Default 5s.
	LockTTL time.Duration
	// ViewInterval is how often the distributor records its view (itself,
	// and when active its worker sessions) for `ferry workers`. Default 5s.
	ViewInterval time.Duration
	// Logger receives the distributor's events. Default slog.Default().
	Logger *slog.Logger
	// TracerProvider, when set, traces the moves to workers (a distribute
	// span per message, see trace.go) and the inbox's endpoint when it
	// handles messages here. The control inbox is not traced: workers'
	// announcements are soft state. Nil: no tracing, at no cost.
	TracerProvider trace.TracerProvider
	// SummaryInterval is bus.Config.SummaryInterval of the inbox it handles
	// itself when Distribute is false. Default 0: no summary.
	SummaryInterval time.Duration
}

// testHooks let tests interleave the loops with control messages deterministically.
type testHooks struct {
	// beforeMove runs in the distribute loop after it took a worker's
	// availabilities and before it moves messages to that worker.
	beforeMove func(worker, session string)
	// afterMove runs after each move to a worker with what it moved.
	afterMove func(n int, err error)
	// probeFailed runs when a reclaim pass finds the database unreachable.
	probeFailed func()
	// afterPass runs after each reclaim pass that reached the database.
	afterPass func()
	// lockPolled runs after each attempt to take or renew the lock.
	lockPolled func(held bool)
}

// Stats counts what a distributor did.
type Stats struct {
	// Distributed counts messages moved to workers.
	Distributed int64 `json:"distributed"`
	// Moves counts the move statements that moved them.
	Moves int64 `json:"moves"`
	// Reclaimed counts messages returned from silent or stopped workers.
	Reclaimed int64 `json:"reclaimed"`
	// Announcements counts the control messages handled (Started,
	// ThreadAvailable, Heartbeat, Stopping).
	Announcements int64 `json:"announcements"`
}

// Distributor moves inbox messages to available worker threads.
type Distributor struct {
	cfg     Config
	conns   *queue.Connections
	log     *slog.Logger
	inbox   queue.Queue
	control *bus.Endpoint
	local   *bus.Endpoint // only when !Distribute
	reg     *registry
	owner   string

	distributed, moves, reclaimed, announcements atomic.Int64
	// token is the fencing token of the lock while held, else 0.
	token atomic.Int64
	// expiredCtl counts expired control messages not yet summarised.
	expiredCtl   atomic.Int64
	expiredEvery time.Duration

	hooks testHooks
	tr    *tracing // nil: tracing off

	// sendCount is DistributeSendCount as in force: SetDistributeSendCount
	// changes it live (reconfigure.go).
	sendCount atomic.Int64

	cancel context.CancelFunc
	wg     sync.WaitGroup
	active atomic.Bool
	// viewCancel and viewDone end the view's loop (view.go).
	viewCancel context.CancelFunc
	viewDone   sync.WaitGroup
	activated  chan struct{} // a token when the active role starts
	// pausedPolls counts the distribute loop's waits on a paused inbox or
	// worker queue (tests follow it).
	pausedPolls atomic.Int64
	pausedSeen  atomic.Bool
}

// New validates cfg and builds a distributor. mux handles inbox messages
// locally when cfg.Distribute is false; it may be nil otherwise.
func New(ctx context.Context, conns *queue.Connections, cfg Config, mux *bus.Mux) (*Distributor, error) {
	if cfg.Name == "" {
		return nil, errors.New("distributor: name: required")
	}
	if cfg.DistributeSendCount < 0 {
		return nil, fmt.Errorf("distributor %q: inbox.distributeSendCount: %d is negative", cfg.Name, cfg.DistributeSendCount)
	}
	if cfg.DistributeSendCount == 0 {
		cfg.DistributeSendCount = 5
	}
	if cfg.ReclaimAfter <= 0 {
		cfg.ReclaimAfter = 60 * time.Second
	}
	if cfg.LockTTL <= 0 {
		cfg.LockTTL = DefaultLockTTL
	}
	if cfg.ViewInterval <= 0 {
		cfg.ViewInterval = DefaultViewInterval
	}
	if cfg.ControlInbox.WorkQueue == "" {
		return nil, fmt.Errorf("distributor %q: controlInbox.workQueue: required", cfg.Name)
	}
	if cfg.ControlInbox.WorkQueue == cfg.Inbox.WorkQueue {
		return nil, fmt.Errorf("distributor %q: controlInbox.workQueue: must differ from inbox.workQueue %q", cfg.Name, cfg.Inbox.WorkQueue)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	d := &Distributor{
		cfg: cfg, conns: conns, log: log.With("distributor", cfg.Name),
		reg: newRegistry(), owner: bus.NewID(), expiredEvery: 10 * time.Second, activated: make(chan struct{}, 1),
		tr: newTracing(cfg.TracerProvider),
	}
	d.sendCount.Store(int64(cfg.DistributeSendCount))

	// The control endpoint: its own queue and threads.
	cmux := d.controlMux()
	controlCfg := cfg.ControlInbox
	if controlCfg.Threads == 0 {
		controlCfg.Threads = 4
	}
	if controlCfg.Prefetch == 0 {
		// Taken messages wait in memory without a lease: a deep buffer lets
		// one take carry every thread's availability of several workers.
		controlCfg.Prefetch = controlPrefetch
	}
	var err error
	controlLog := slog.New(&expiredFilter{next: log.Handler(), count: &d.expiredCtl})
	// Control messages are soft state that workers renew: the control inbox
	// takes them in batches, with no lease and no ack (README: "Where each
	// step happens").
	soft := &rolehooks.Hooks{Take: true}
	d.control, err = bus.New(ctx, conns, bus.Config{Name: cfg.Name + ".control", Inbox: &controlCfg, Logger: controlLog, Role: soft}, cmux)
	if err != nil {
		return nil, fmt.Errorf("distributor %q: controlInbox: %w", cfg.Name, err)
	}

	inboxCfg := cfg.Inbox
	if !cfg.Distribute {
		// Handle locally only while no worker thread is available.
		gate := &rolehooks.Hooks{Gate: func() bool { return d.reg.count(time.Now()) == 0 }}
		d.local, err = bus.New(ctx, conns, bus.Config{Name: cfg.Name, Inbox: &inboxCfg, Logger: cfg.Logger, Role: gate, TracerProvider: cfg.TracerProvider, SummaryInterval: cfg.SummaryInterval}, mux)
		if err != nil {
			return nil, fmt.Errorf("distributor %q: %w", cfg.Name, err)
		}
		d.inbox = d.local.Inbox()
	} else {
		if inboxCfg.WorkQueue == "" {
			return nil, fmt.Errorf("distributor %q: inbox.workQueue: required", cfg.Name)
		}
		if d.inbox, err = conns.Queue(ctx, inboxCfg.WorkQueue); err != nil {
			return nil, fmt.Errorf("distributor %q: inbox.workQueue: %w", cfg.Name, err)
		}
	}
	return d, nil
}

// Stats returns the distributor's counters.
func (d *Distributor) Stats() Stats {
	return Stats{Distributed: d.distributed.Load(), Moves: d.moves.Load(), Reclaimed: d.reclaimed.Load(), Announcements: d.announcements.Load()}
}

// Registry returns a snapshot of known workers and their available threads.
func (d *Distributor) Registry() Snapshot { return d.reg.snapshot(time.Now()) }

// Active reports whether this distributor holds the control inbox (and is
// not a standby).
func (d *Distributor) Active() bool { return d.active.Load() }

// Local is the endpoint that handles inbox messages here while no worker
// is available; nil when the distributor only distributes.
func (d *Distributor) Local() *bus.Endpoint { return d.local }

// Inbox is the queue whose messages are distributed.
func (d *Distributor) Inbox() queue.Queue { return d.inbox }

// Start runs the distributor. If another distributor holds the control
// inbox, this one waits as a standby and takes over when that one's lock
// lapses. Start returns at once in both cases.
func (d *Distributor) Start(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.wg.Add(1)
	go d.holdLock(runCtx)
	viewCtx, viewCancel := context.WithCancel(context.Background())
	d.viewCancel = viewCancel
	d.viewDone.Add(1)
	go func() { defer d.viewDone.Done(); d.viewLoop(viewCtx) }()
	return nil
}

// Stop stops distributing, stops the endpoints and frees the lock for a standby.
func (d *Distributor) Stop(ctx context.Context) error {
	if d.cancel == nil {
		return nil
	}
	wasActive := d.Active()
	d.cancel()
	d.wg.Wait()
	d.viewCancel()
	d.viewDone.Wait()
	if err := d.forgetView(ctx, wasActive); err != nil {
		d.log.Warn("cannot record the distributor's view at stop", "err", err)
	}
	return d.control.Inbox().Store().Unlock(ctx, d.lockName(), d.owner)
}
