// Package distributor hands an endpoint's inbox messages to worker
// processes, Shuttle-style. The distributor owns a control inbox (its own
// queue and threads, so control messages never wait behind a deep inbox)
// where workers announce each idle thread; for each availability it moves up
// to DistributeSendCount messages from its inbox into that worker's work
// queue: a single UPDATE when both queues are in one database.
//
// Where the anchors failed, it does not:
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
	"github.com/ferrybus/ferry/internal/waiter"
	"github.com/ferrybus/ferry/queue"
	"github.com/ferrybus/ferry/worker"
)

// Headers the distributor stamps on the messages it moves to a worker.
const (
	// HeaderDistributedTo records the worker queue a message was moved to;
	// a reclaim clears it.
	HeaderDistributedTo = "ferry.distributed-to"
	// HeaderDistributedFrom records the distributor inbox a message came
	// from. The distributor also stamps bus.HeaderReturnTo, which is what
	// sends a failed message back there; this one is kept for operators
	// and for workers of earlier versions, which read it instead.
	HeaderDistributedFrom = "ferry.distributed-from"
)

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
	// Logger receives the distributor's events. Default slog.Default().
	Logger *slog.Logger
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
}

// Distributor moves inbox messages to available worker threads.
type Distributor struct {
	cfg     Config
	conns   *queue.Connections
	log     *slog.Logger
	inbox   *queue.SQLQueue
	control *bus.Endpoint
	local   *bus.Endpoint // only when !Distribute
	reg     *registry
	owner   string

	distributed, moves, reclaimed atomic.Int64
	// token is the fencing token of the lock while held, else 0.
	token atomic.Int64
	// expiredCtl counts expired control messages not yet summarised.
	expiredCtl   atomic.Int64
	expiredEvery time.Duration

	hooks testHooks

	cancel context.CancelFunc
	wg     sync.WaitGroup
	active atomic.Bool
	lockMu sync.Mutex // serialises Start/Stop of the active role
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
		reg: newRegistry(), owner: bus.NewID(), expiredEvery: 10 * time.Second,
	}

	// The control endpoint: its own queue and threads.
	cmux := bus.NewMux()
	bus.Handle(cmux, worker.TypeStarted, func(ctx context.Context, m *bus.Message, s worker.Started) error {
		d.onStarted(ctx, s)
		return nil
	})
	bus.Handle(cmux, worker.TypeThreadAvailable, func(ctx context.Context, m *bus.Message, a worker.ThreadAvailable) error {
		d.onAvailable(ctx, a)
		return nil
	})
	bus.Handle(cmux, worker.TypeHeartbeat, func(ctx context.Context, m *bus.Message, h worker.Heartbeat) error {
		d.reg.heartbeat(h, time.Now())
		d.persist(ctx, h.WorkerID, false)
		return nil
	})
	bus.Handle(cmux, worker.TypeStopping, func(ctx context.Context, m *bus.Message, s worker.Stopping) error {
		d.onStopping(ctx, s)
		return nil
	})
	controlCfg := cfg.ControlInbox
	if controlCfg.Threads == 0 {
		controlCfg.Threads = 4
	}
	if controlCfg.Retry == nil {
		controlCfg.Retry = &bus.RetryPolicy{MaxAttempts: 3}
	}
	var err error
	controlLog := slog.New(&expiredFilter{next: log.Handler(), count: &d.expiredCtl})
	d.control, err = bus.New(ctx, conns, bus.Config{Name: cfg.Name + ".control", Inbox: &controlCfg, Logger: controlLog}, cmux)
	if err != nil {
		return nil, fmt.Errorf("distributor %q: controlInbox: %w", cfg.Name, err)
	}

	inboxCfg := cfg.Inbox
	if !cfg.Distribute {
		// Handle locally only while no worker thread is available.
		gate := &rolehooks.Hooks{Gate: func() bool { return d.reg.count(time.Now()) == 0 }}
		d.local, err = bus.New(ctx, conns, bus.Config{Name: cfg.Name, Inbox: &inboxCfg, Logger: cfg.Logger, Role: gate}, mux)
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

func (d *Distributor) onStarted(ctx context.Context, s worker.Started) {
	d.reg.started(s, time.Now())
	d.persist(ctx, s.WorkerID, true)
	d.log.Info("worker started", "worker", s.WorkerID, "session", s.Session, "inbox", s.Inbox, "threads", s.Threads)
}

func (d *Distributor) onAvailable(ctx context.Context, a worker.ThreadAvailable) {
	d.reg.available(a, time.Now())
	d.persist(ctx, a.WorkerID, false)
}

// onStopping ends the session and returns its queue. A move to it already
// in flight is undone by the distribute loop once it lands (see landed).
func (d *Distributor) onStopping(ctx context.Context, s worker.Stopping) {
	if w := d.reg.stopping(s, time.Now()); w != nil {
		d.log.Info("worker stopping; returning its queue", "worker", s.WorkerID, "session", s.Session)
		if d.reclaim(ctx, *w) {
			d.forget(ctx, w.id, time.Now())
		}
	}
}

// Stats returns the distributor's counters.
func (d *Distributor) Stats() Stats {
	return Stats{Distributed: d.distributed.Load(), Moves: d.moves.Load(), Reclaimed: d.reclaimed.Load()}
}

// Registry returns a snapshot of known workers and their available threads.
func (d *Distributor) Registry() Snapshot { return d.reg.snapshot(time.Now()) }

// Active reports whether this distributor holds the control inbox (and is
// not a standby).
func (d *Distributor) Active() bool { return d.active.Load() }

// Inbox is the queue whose messages are distributed.
func (d *Distributor) Inbox() *queue.SQLQueue { return d.inbox }

// lockName is the database lock that makes one distributor per control inbox.
func (d *Distributor) lockName() string { return "distributor:" + d.control.Inbox().URI() }

// Start runs the distributor. If another distributor holds the control
// inbox, this one waits as a standby and takes over when that one's lock
// lapses. Start returns at once in both cases.
func (d *Distributor) Start(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.wg.Add(1)
	go d.holdLock(runCtx)
	return nil
}

// holdLock takes and renews the lock; it starts the active role when it has
// it and stops it when it loses it. The active distributor renews every
// LockTTL/3; a standby tries twice a second, so that it takes over within a
// second of the holder's death on PostgreSQL (where a dead holder's session,
// and with it its claim, ends at once) and within LockTTL on SQLite.
func (d *Distributor) holdLock(ctx context.Context) {
	defer d.wg.Done()
	store := d.control.Inbox().Store()
	renew := d.cfg.LockTTL / 3
	poll := min(renew, 500*time.Millisecond)
	var r *role
	var sess *queue.LockSession
	defer func() {
		r.stop(d)
		d.token.Store(0)
		sess.Close()
	}()
	standbyLogged, failing := false, false
	for {
		var tok int64
		var err error
		// The session marks this distributor alive; reopen it when its
		// connection died (its claim on the lock went with it).
		if sess != nil {
			if aerr := sess.Alive(ctx); aerr != nil {
				sess.Close()
				sess = nil
			}
		}
		if sess == nil {
			sess, err = store.OpenLockSession(ctx, d.lockName(), d.owner)
		}
		if err == nil {
			tok, err = store.AcquireLock(ctx, d.lockName(), d.owner, d.cfg.LockTTL)
		}
		if d.hooks.lockPolled != nil {
			d.hooks.lockPolled(tok != 0)
		}
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				d.log.Warn("distributor lock renewal failed", "err", err)
			}
			failing = true
		case tok != 0 && r == nil:
			failing = false
			d.token.Store(tok)
			if r, err = d.startActive(ctx); err != nil {
				d.log.Error("distributor failed to start", "err", err)
			}
		case tok != 0:
			if failing {
				d.log.Info("distributor lock renewed again")
			}
			failing = false
			d.token.Store(tok)
		case r != nil:
			failing = false
			d.token.Store(0)
			d.log.Warn("distributor lost its lock; standing by")
			r.stop(d)
			r = nil
		case !standbyLogged:
			failing = false
			standbyLogged = true
			d.log.Info("another distributor holds the control inbox; standing by", "lock", d.lockName())
		}
		every := renew
		if r == nil {
			every = poll
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// fence is the current holding of the lock, for moves and reclaims: a
// statement fenced with it moves nothing once another distributor took over.
func (d *Distributor) fence() queue.Fence {
	return d.control.Inbox().Store().Fence(d.lockName(), d.token.Load())
}

// role is the running active side of a distributor.
type role struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// stop ends the loops, then the endpoints. A nil role is a no-op.
func (r *role) stop(d *Distributor) {
	if r == nil {
		return
	}
	r.cancel()
	<-r.done
	d.stopActive()
}

// startActive starts the control endpoint, the local endpoint and the loops.
func (d *Distributor) startActive(parent context.Context) (*role, error) {
	if err := d.control.Start(parent); err != nil {
		return nil, err
	}
	if d.local != nil {
		if err := d.local.Start(parent); err != nil {
			d.control.Stop(parent)
			return nil, err
		}
	}
	// Workers a previous distributor knew: their queues are returned if they
	// stay silent, even though this one never heard from them.
	if recs, err := d.control.Inbox().Store().Workers(parent, d.control.Inbox().URI()); err != nil {
		d.log.Warn("cannot read recorded workers; only announcing workers are known", "err", err)
	} else {
		d.reg.restore(recs, time.Now())
	}
	d.active.Store(true)
	ctx, cancel := context.WithCancel(parent)
	r := &role{cancel: cancel, done: make(chan struct{})}
	var loops sync.WaitGroup
	loops.Add(3)
	go func() { defer loops.Done(); d.distributeLoop(ctx) }()
	go func() { defer loops.Done(); d.reclaimLoop(ctx) }()
	go func() { defer loops.Done(); d.summariseExpired(ctx) }()
	go func() { loops.Wait(); close(r.done) }()
	d.log.Info("distributor active", "inbox", d.inbox.URI(), "control", d.control.Inbox().URI(),
		"distribute", d.cfg.Distribute, "distributeSendCount", d.cfg.DistributeSendCount)
	return r, nil
}

func (d *Distributor) stopActive() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if d.local != nil {
		d.local.Stop(ctx)
	}
	d.control.Stop(ctx)
	d.flushExpired()
	d.active.Store(false)
}

// Stop stops distributing, stops the endpoints and frees the lock for a standby.
func (d *Distributor) Stop(ctx context.Context) error {
	if d.cancel == nil {
		return nil
	}
	d.cancel()
	d.wg.Wait()
	return d.control.Inbox().Store().Unlock(ctx, d.lockName(), d.owner)
}

// distributeLoop serves availabilities first in, first out. All waiting
// availabilities of one worker are served by one move: each may take up to
// DistributeSendCount messages, and those it does not use are put back.
func (d *Distributor) distributeLoop(ctx context.Context) {
	// With nothing to move the loop polls from 10ms up to a second; failed
	// moves are tried again every second, and an outage is logged once when
	// it begins and once when it ends.
	w := waiter.New(waiter.Bounds{MinPoll: 10 * time.Millisecond, MaxPoll: time.Second, MinBackoff: time.Second, MaxBackoff: time.Second})
	for ctx.Err() == nil {
		changed := d.reg.wait()
		as := d.reg.takeWorker(time.Now())
		if len(as) == 0 {
			select {
			case <-ctx.Done():
			case <-changed:
			case <-time.After(time.Second): // expiry sweep
			}
			continue
		}
		a := as[0]
		if d.hooks.beforeMove != nil {
			d.hooks.beforeMove(a.worker, a.session)
		}
		wake := d.inbox.Wake()
		dst, err := d.conns.Queue(ctx, a.inbox)
		if err != nil {
			d.log.Error("worker inbox cannot be resolved; availability dropped", "worker", a.worker, "inbox", a.inbox, "err", err)
			d.reg.settle(as, len(as))
			continue
		}
		per := d.cfg.DistributeSendCount
		n, err := d.inbox.MoveReadyFenced(ctx, dst, per*len(as), map[string]string{
			HeaderDistributedTo: a.inbox, HeaderDistributedFrom: d.inbox.URI(), bus.HeaderReturnTo: d.inbox.URI()}, d.fence())
		if d.hooks.afterMove != nil {
			d.hooks.afterMove(n, err)
		}
		if err != nil {
			d.reg.settle(as, 0)
			if ctx.Err() != nil {
				return
			}
			wait, first := w.Failed(time.Now())
			if first {
				d.log.Error("move to worker failed; trying again every second", "worker", a.worker, "err", err)
			} else {
				d.log.Debug("move to worker failed again", "worker", a.worker, "err", err, "failures", w.Failures())
			}
			// Not cut short by the inbox's wake-ups: sends to the inbox
			// can go on while moves to this worker fail.
			waiter.Sleep(ctx, wait, nil)
			continue
		}
		if down, failures, ended := w.Recovered(time.Now()); ended {
			d.log.Info("moves to workers succeed again", "down", down.Round(100*time.Millisecond), "failures", failures)
		}
		if n > 0 {
			d.distributed.Add(int64(n))
			d.moves.Add(1)
			w.Found()
			d.reg.settle(as, (n+per-1)/per)
			if w, gone := d.reg.landed(as); gone {
				// The session stopped (or was forgotten) while the move ran:
				// nobody will take these, so give them back now.
				d.log.Info("worker stopped while messages were moved to it; returning its queue", "worker", w.id, "session", w.session, "messages", n)
				if d.reclaim(ctx, w) {
					d.forget(ctx, w.id, time.Now())
				}
			}
			continue
		}
		// Nothing to send: keep the availabilities and wait for the inbox.
		d.reg.settle(as, 0)
		w.Idle(ctx, wake)
	}
}

// reclaimLoop returns the queues of silent workers to the inbox. Silence is
// measured only over time the distributor was in contact with the database:
// each pass first checks it can reach it, and after a gap (an outage, or the
// process frozen) the workers' last sightings move forward by the gap, since
// their messages could not have reached it either.
func (d *Distributor) reclaimLoop(ctx context.Context) {
	every := min(max(d.cfg.ReclaimAfter/4, 50*time.Millisecond), 5*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	store := d.control.Inbox().Store()
	lastContact := time.Now()
	lost := false // the last pass could not reach the database
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, max(every, 2*time.Second))
		_, err := store.DB().ExecContext(pctx, `SELECT 1`)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !lost {
				lost = true
				d.log.Warn("distributor cannot reach the database; reclaiming paused, worker silence not counted", "err", err)
			}
			if d.hooks.probeFailed != nil {
				d.hooks.probeFailed()
			}
			continue
		}
		now := time.Now()
		if gap := now.Sub(lastContact); gap > 2*every {
			d.reg.excuse(gap-every, now)
			d.log.Info("distributor in contact with the database again; worker silence meanwhile not counted", "outOfContact", gap.Round(time.Millisecond))
		}
		lastContact, lost = now, false
		cutoff := now.Add(-d.cfg.ReclaimAfter)
		for _, w := range d.reg.silent(cutoff) {
			if d.reclaim(ctx, w) {
				d.forget(ctx, w.id, cutoff)
			}
		}
		if d.hooks.afterPass != nil {
			d.hooks.afterPass()
		}
	}
}

// reclaim moves the visible messages of a worker's queue back to the inbox
// and reports whether the worker's queue is now empty. Messages still leased
// by the worker come back when their lease ends, at a later pass.
func (d *Distributor) reclaim(ctx context.Context, w workerState) bool {
	src, err := d.conns.Queue(ctx, w.inbox)
	if err != nil {
		d.log.Error("cannot reclaim from worker", "worker", w.id, "inbox", w.inbox, "err", err)
		return false
	}
	total := 0
	for {
		n, err := src.MoveReadyFenced(ctx, d.inbox, 1000, map[string]string{HeaderDistributedTo: ""}, d.fence())
		if err != nil {
			d.log.Error("reclaim failed", "worker", w.id, "err", err)
			return false
		}
		total += n
		if n < 1000 {
			break
		}
	}
	if total > 0 {
		d.reclaimed.Add(int64(total))
		d.log.Warn("returned messages of a silent or stopped worker to the inbox", "worker", w.id, "inbox", w.inbox, "messages", total)
	}
	c, err := src.Count(ctx)
	return err == nil && c.Total() == 0
}

// persist records a worker's session and last sighting, at most every
// ReclaimAfter/4 unless force, so a distributor that takes over knows it.
func (d *Distributor) persist(ctx context.Context, id string, force bool) {
	every := d.cfg.ReclaimAfter / 4
	if force {
		every = 0
	}
	w, ok := d.reg.persistDue(id, time.Now(), every)
	if !ok {
		return
	}
	err := d.control.Inbox().Store().RecordWorker(ctx, d.control.Inbox().URI(),
		queue.WorkerRecord{ID: w.id, Session: w.session, Inbox: w.inbox, LastSeen: w.lastSeen})
	if err != nil {
		d.log.Warn("cannot record worker", "worker", id, "err", err)
	}
}

// forget drops a gone worker whose queue is empty, here and in the database.
func (d *Distributor) forget(ctx context.Context, id string, cutoff time.Time) {
	session, ok := d.reg.forget(id, cutoff)
	if !ok {
		return
	}
	if err := d.control.Inbox().Store().ForgetWorker(ctx, d.control.Inbox().URI(), id, session); err != nil {
		d.log.Warn("cannot forget worker record", "worker", id, "err", err)
	}
}
