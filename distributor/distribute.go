package distributor

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/waiter"
	"github.com/ferrybus/ferry/queue"
)

// maxMoves bounds the moves in flight at once; there is at most one per
// worker, so this matters only with more workers than that.
const maxMoves = 8

// moveQuantum is the most one move takes: a worker's turn takes its oldest
// availabilities up to this many messages, and with a DistributeSendCount
// above it an availability is served over several turns. So with a large
// send count the workers still take the inbox in small alternating steps,
// and none takes a whole backlog because its availabilities came first.
const moveQuantum = 256

// pausedPoll is how often the distribute loop asks again whether a paused
// inbox or worker queue (queue.Queue.Paused, read from the database once a
// second) was resumed.
const pausedPoll = 250 * time.Millisecond

// inboxPaused reports whether the inbox is paused, logging when a pause
// begins and ends.
func (d *Distributor) inboxPaused() bool {
	if !d.inbox.Paused() {
		if d.pausedSeen.Swap(false) {
			d.log.Info("distributor inbox resumed; distributing again", "inbox", d.inbox.URI())
		}
		return false
	}
	if !d.pausedSeen.Swap(true) {
		d.log.Info("distributor inbox paused; moving nothing to workers until it is resumed", "inbox", d.inbox.URI())
	}
	d.pausedPolls.Add(1)
	return true
}

// moveResult is what a move tells the distribute loop.
type moveResult struct {
	n int
	// short is set when the move succeeded with fewer messages than it
	// asked for: the inbox was drained, as of wake (taken before it).
	short bool
	wake  <-chan struct{}
}

// distributeLoop serves the workers in turns, first in, first out (see
// registry): each move takes the waiting availabilities of one worker, each
// up to DistributeSendCount messages, and those it does not use are put
// back. Moves to different workers run at once (up to maxMoves), one at a
// time per worker, so a slow or unreachable worker database holds up only
// that worker.
func (d *Distributor) distributeLoop(ctx context.Context) {
	// With nothing to move the loop polls from 10ms up to a second; failed
	// moves to a worker are tried again every second, and its outage is
	// logged once when it begins and once when it ends.
	idle := waiter.New(waiter.Bounds{MinPoll: 10 * time.Millisecond, MaxPoll: time.Second})
	fails := &moveFailures{byWorker: map[string]*waiter.Waiter{}}
	results := make(chan moveResult)
	var moves sync.WaitGroup
	defer moves.Wait()
	running := 0
	// drained, when set, is the inbox's wake-up channel from before a move
	// that came back short: the inbox was empty, so no move starts until
	// it fires or a poll is due (and moves racing for a few messages do
	// not each cost a statement).
	var drained <-chan struct{}
	// probing is set while the inbox may hold only a few messages (at the
	// start and after it was drained): one move at a time, until one comes
	// back full, so that moves to several workers do not race for them.
	// A probe slower than slowTurn holds up no one.
	probing := true
	var probeBegan time.Time
	ended := func(r moveResult) {
		running--
		if r.n > 0 {
			idle.Found()
		}
		switch {
		case r.short && drained == nil:
			drained = r.wake
		case !r.short && r.n > 0:
			drained, probing = nil, false
		}
	}
	for ctx.Err() == nil {
		if drained != nil {
			switch r, why := waiter.IdleOr(ctx, idle, drained, results); why {
			case waiter.Other:
				ended(r)
			case waiter.Woken, waiter.Polled:
				drained, probing = nil, true
			}
			continue
		}
		if d.inboxPaused() {
			// Paused: move nothing; moves in flight finish.
			select {
			case <-ctx.Done():
			case r := <-results:
				ended(r)
			case <-time.After(pausedPoll):
			}
			continue
		}
		changed := d.reg.wait()
		sweep := time.Second // expiry
		probe := time.Until(probeBegan.Add(slowTurn))
		if running < maxMoves && (!probing || running == 0 || probe <= 0) {
			t, ok := d.reg.take(time.Now(), d.SendCount(), moveQuantum) // live: SetDistributeSendCount
			if ok {
				if running == 0 {
					probeBegan = time.Now()
				}
				running++
				moves.Add(1)
				go func() {
					defer moves.Done()
					r := d.move(ctx, t, fails)
					select {
					case results <- r:
					case <-ctx.Done():
					}
				}()
				continue
			}
			if t.retry > 0 {
				sweep = t.retry // a slow turn stops holding up the others
			}
		} else if probing && running > 0 {
			sweep = probe // a slow probe stops holding up the others
		}
		select {
		case <-ctx.Done():
		case r := <-results:
			ended(r)
		case <-changed:
		case <-time.After(sweep):
		}
	}
}

// move runs the move of a turn (from registry.take), settles its
// availabilities and ends the worker's turn. After a failure the turn ends
// only after the retry delay, so the worker's availabilities wait while
// the others are served.
func (d *Distributor) move(ctx context.Context, t turn, fails *moveFailures) moveResult {
	a, as, limit := t, t.as, t.limit
	if d.hooks.beforeMove != nil {
		d.hooks.beforeMove(a.worker, a.session)
	}
	wake := d.inbox.Wake()
	dst, err := d.conns.Queue(ctx, a.inbox)
	if err != nil {
		d.log.Error("worker inbox cannot be resolved; availability dropped", "worker", a.worker, "inbox", a.inbox, "err", err)
		d.reg.discard(as)
		d.reg.release(a.worker)
		return moveResult{}
	}
	per := t.per
	if dst.Paused() {
		// A paused worker queue gets nothing: its availabilities wait, and
		// its turn ends after a while, the others served meanwhile.
		d.pausedPolls.Add(1)
		d.log.Debug("worker queue paused; moving nothing to it", "worker", a.worker, "queue", a.inbox)
		d.reg.settle(as, per, 0, false)
		waiter.Sleep(ctx, pausedPoll, nil)
		d.reg.release(a.worker)
		return moveResult{}
	}
	n, err := d.moveReady(ctx, dst, limit, map[string]string{
		HeaderDistributedTo: a.inbox, bus.HeaderReturnTo: d.inbox.URI()}, t.handoff, a.worker)
	if d.hooks.afterMove != nil {
		d.hooks.afterMove(n, err)
	}
	if err != nil {
		d.reg.settle(as, per, 0, false)
		if ctx.Err() == nil {
			// Not cut short by the inbox's wake-ups: sends to the inbox can
			// go on while moves to this worker fail.
			waiter.Sleep(ctx, fails.failed(d.log, a.worker, err), nil)
		}
		d.reg.release(a.worker)
		return moveResult{}
	}
	if n > 0 {
		// Counted before anything else: the worker may handle them at once.
		d.distributed.Add(int64(n))
		d.moves.Add(1)
	}
	fails.recovered(d.log, a.worker)
	d.reg.settle(as, per, n, n == limit)
	d.reg.release(a.worker)
	res := moveResult{n: n, short: n < limit, wake: wake}
	if n == 0 {
		// Nothing to send: the availabilities wait for the inbox.
		return res
	}
	if w, gone := d.reg.landed(as); gone {
		// Giving back is not cut short by the distributor's own stop: the
		// move has landed, and nobody else would return these.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), giveBackTimeout)
		defer cancel()
		if !w.stopping {
			// A newer session replaced the one the move was for: make what
			// was handed to the old one visible, for the new one to read.
			if w.handoff != 0 {
				if _, err := dst.ReleaseToken(ctx, w.handoff); err != nil {
					d.log.Warn("cannot release messages moved to a replaced session; they come back when their lease ends", "worker", w.id, "session", w.session, "err", err)
				}
			}
			return res
		}
		// The session stopped (or was forgotten) while the move ran:
		// nobody will take these, so give them back now.
		d.log.Info("worker stopped while messages were moved to it; returning its queue", "worker", w.id, "session", w.session, "messages", n)
		if d.reclaim(ctx, w, true) {
			d.forget(ctx, w.id, w.session, time.Now())
		}
	}
	return res
}

// giveBackTimeout bounds returning a move that landed on a gone session.
const giveBackTimeout = 5 * time.Second

// moveFailures follows, per worker, a run of failed moves: the retry delay,
// and logging the outage once when it begins and once when it ends.
type moveFailures struct {
	mu       sync.Mutex
	byWorker map[string]*waiter.Waiter // only workers whose last move failed
}

// failed records a failed move to worker and returns how long to wait
// before the next.
func (f *moveFailures) failed(log *slog.Logger, worker string, err error) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	w, ok := f.byWorker[worker]
	if !ok {
		w = waiter.New(waiter.Bounds{MinBackoff: time.Second, MaxBackoff: time.Second})
		f.byWorker[worker] = w
	}
	wait, first := w.Failed(time.Now())
	if first {
		log.Error("move to worker failed; trying again every second", "worker", worker, "err", err)
	} else {
		log.Debug("move to worker failed again", "worker", worker, "err", err, "failures", w.Failures())
	}
	return wait
}

// recovered records a successful move to worker, logging the end of its
// outage if it had one.
func (f *moveFailures) recovered(log *slog.Logger, worker string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w, ok := f.byWorker[worker]
	if !ok {
		return
	}
	delete(f.byWorker, worker)
	if down, failures, ended := w.Recovered(time.Now()); ended {
		log.Info("moves to worker succeed again", "worker", worker, "down", down.Round(100*time.Millisecond), "failures", failures)
	}
}

// handoff is how a move for as (one worker session's availabilities) hands
// the messages over: leased to the session's handoff token when its
// availabilities carry one (a worker that predates handoffs sends none).
// Call with the registry's mu held: a renewal may change them.
func handoff(as []*availability) queue.Handoff {
	for _, a := range as {
		if a.handoff != 0 && a.lease > 0 {
			return queue.Handoff{Token: a.handoff, For: a.lease}
		}
	}
	return queue.Handoff{}
}
