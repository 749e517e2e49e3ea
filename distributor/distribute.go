package distributor

import (
	"context"
	"time"

	"github.com/ferrybus/ferry/bus"
)

// distributeLoop serves availabilities first in, first out. All waiting
// availabilities of one worker are served by one move: each may take up to
// DistributeSendCount messages, and those it does not use are put back.
func (d *Distributor) distributeLoop(ctx context.Context) {
	poll := 10 * time.Millisecond
	// failingSince is when moves began to fail (zero while they succeed):
	// an outage is logged once when it begins and once when it ends.
	var failingSince time.Time
	var failures int
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
			bus.HeaderDistributedTo: a.inbox, bus.HeaderDistributedFrom: d.inbox.URI()}, d.fence())
		if d.hooks.afterMove != nil {
			d.hooks.afterMove(n, err)
		}
		if err != nil {
			d.reg.settle(as, 0)
			if ctx.Err() != nil {
				return
			}
			failures++
			if failingSince.IsZero() {
				failingSince = time.Now()
				d.log.Error("move to worker failed; trying again every second", "worker", a.worker, "err", err)
			} else {
				d.log.Debug("move to worker failed again", "worker", a.worker, "err", err, "failures", failures)
			}
			sleep(ctx, time.Second)
			continue
		}
		if !failingSince.IsZero() {
			d.log.Info("moves to workers succeed again", "down", time.Since(failingSince).Round(100*time.Millisecond), "failures", failures)
			failingSince, failures = time.Time{}, 0
		}
		if n > 0 {
			d.distributed.Add(int64(n))
			d.moves.Add(1)
			poll = 10 * time.Millisecond
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
		select {
		case <-ctx.Done():
		case <-wake:
			poll = 10 * time.Millisecond
		case <-time.After(poll):
			poll = min(2*poll, time.Second)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
