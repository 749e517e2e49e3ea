package distributor

import (
	"context"
	"time"

	"github.com/ferrybus/ferry/queue"
)

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
			if d.reclaim(ctx, w, false) { // silent, maybe alive: its leases run out
				d.forget(ctx, w.id, w.session, cutoff)
			}
		}
		if d.hooks.afterPass != nil {
			d.hooks.afterPass()
		}
	}
}

// reclaim moves the visible messages of a worker's queue back to the inbox
// and reports whether the worker's queue is now empty. Messages still leased
// by the worker come back when their lease ends, at a later pass; except,
// when its session is gone (it said Stopping, after its endpoint stopped),
// those leased with the session's handoff token: moves that landed after
// its endpoint had given back what it held, which nobody would read.
func (d *Distributor) reclaim(ctx context.Context, w workerState, gone bool) bool {
	src, err := d.conns.Queue(ctx, w.inbox)
	if err != nil {
		d.log.Error("cannot reclaim from worker", "worker", w.id, "inbox", w.inbox, "err", err)
		return false
	}
	if gone && w.handoff != 0 {
		n, err := src.ReleaseToken(ctx, w.handoff)
		if err != nil {
			d.log.Error("reclaim failed", "worker", w.id, "err", err)
			return false
		}
		if n > 0 {
			d.log.Info("released messages moved to a stopped worker session after its stop", "worker", w.id, "session", w.session, "messages", n)
		}
	}
	total := 0
	for {
		n, err := src.MoveReadyFenced(ctx, d.inbox, 1000, map[string]string{HeaderDistributedTo: ""}, d.fence(), queue.Handoff{})
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

// forget drops a gone worker session whose queue is empty, here and in the
// database; a newer session of the worker stays.
func (d *Distributor) forget(ctx context.Context, id, session string, cutoff time.Time) {
	session, ok := d.reg.forget(id, session, cutoff)
	if !ok {
		return
	}
	if err := d.control.Inbox().Store().ForgetWorker(ctx, d.control.Inbox().URI(), id, session); err != nil {
		d.log.Warn("cannot forget worker record", "worker", id, "err", err)
	}
}
