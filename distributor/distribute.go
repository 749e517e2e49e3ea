package distributor

import (
	"context"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/waiter"
	"github.com/ferrybus/ferry/queue"
)

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
			HeaderDistributedTo: a.inbox, bus.HeaderReturnTo: d.inbox.URI()}, d.fence(), handoff(as))
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

// handoff is how a move for as (one worker session's availabilities) hands
// the messages over: leased to the session's handoff token when its
// availabilities carry one (a worker that predates handoffs sends none).
func handoff(as []*availability) queue.Handoff {
	for _, a := range as {
		if a.handoff != 0 && a.lease > 0 {
			return queue.Handoff{Token: a.handoff, For: a.lease}
		}
	}
	return queue.Handoff{}
}
