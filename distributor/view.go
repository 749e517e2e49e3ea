package distributor

import (
	"context"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ferrybus/ferry/queue"
)

// The distributor's view: what `ferry workers` shows. Every instance, active
// or standby, records itself every ViewInterval; the active one also
// records the worker sessions it knows, with their idle threads and queue
// depths. It is soft state in queue.DistributorViews: written, never read
// back by a distributor.

// DefaultViewInterval is how often a distributor records its view when
// Config sets none.
const DefaultViewInterval = 5 * time.Second

// viewCountTimeout bounds the count of one worker's queue; a slow one is
// shown with an unknown depth rather than holding up the view.
const viewCountTimeout = time.Second

// viewWriteTimeout bounds one write of the view.
const viewWriteTimeout = 5 * time.Second

// viewPrune is how many intervals an instance's record outlives its last
// update: a process that died without a word is dropped after it.
const viewPrune = 12

// maxViewWorkers bounds the worker sessions one view records.
const maxViewWorkers = 10_000

// viewLoop records the view every ViewInterval until ctx ends (Stop then
// records the workers once more and deletes this instance's record).
func (d *Distributor) viewLoop(ctx context.Context) {
	host, _ := os.Hostname()
	t := time.NewTicker(d.cfg.ViewInterval)
	defer t.Stop()
	failing := false
	for {
		err := d.recordView(context.WithoutCancel(ctx), host)
		switch {
		case err != nil && !failing:
			failing = true
			d.log.Warn("cannot record the distributor's view; ferry workers shows it stale", "err", err)
		case err == nil && failing:
			failing = false
			d.log.Info("distributor's view recorded again")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.activated:
		}
	}
}

// recordView writes this instance and, when active, the worker sessions.
func (d *Distributor) recordView(parent context.Context, host string) error {
	ctx, cancel := context.WithTimeout(parent, viewWriteTimeout)
	defer cancel()
	store := d.control.Inbox().Store()
	control := d.control.Inbox().URI()
	now := time.Now()
	active := d.Active()
	if active {
		ws := d.workerViews(ctx, now)
		if err := store.RecordWorkerView(ctx, control, now, ws); err != nil {
			return err
		}
	}
	return store.RecordDistributor(ctx, d.instance(host, active, now), now.Add(-viewPrune*d.cfg.ViewInterval))
}

// forgetView records the workers a last time (when active) and deletes
// this instance's record, at Stop.
func (d *Distributor) forgetView(ctx context.Context, wasActive bool) error {
	store := d.control.Inbox().Store()
	control := d.control.Inbox().URI()
	if wasActive {
		now := time.Now()
		if err := store.RecordWorkerView(ctx, control, now, d.workerViews(ctx, now)); err != nil {
			return err
		}
	}
	return store.ForgetDistributor(ctx, control, d.owner)
}

func (d *Distributor) instance(host string, active bool, now time.Time) queue.DistributorInstance {
	return queue.DistributorInstance{
		ControlQueue: d.control.Inbox().URI(), Owner: d.owner, Name: d.cfg.Name, Host: host, PID: os.Getpid(),
		Active: active, Interval: d.cfg.ViewInterval, ReclaimAfter: d.cfg.ReclaimAfter, Updated: now,
	}
}

// workerViews is the registry's sessions with their queues' depths.
func (d *Distributor) workerViews(ctx context.Context, now time.Time) []queue.WorkerView {
	ws := d.reg.views(now)
	if len(ws) > maxViewWorkers {
		ws = ws[:maxViewWorkers]
	}
	for i := range ws {
		ws[i].Depth = -1
		q, err := d.conns.Queue(ctx, ws[i].Queue)
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, viewCountTimeout)
		c, err := q.Count(cctx)
		cancel()
		if err == nil {
			ws[i].Depth = c.Total()
		}
	}
	return ws
}

// views lists the known worker sessions by id, with their idle threads.
func (r *registry) views(now time.Time) []queue.WorkerView {
	r.mu.Lock()
	defer r.mu.Unlock()
	idle := map[string]int{}
	for _, a := range r.index {
		if w, ok := r.workers[a.worker]; ok && a.session == w.session && (a.held || a.expires.After(now)) {
			idle[a.worker]++
		}
	}
	out := make([]queue.WorkerView, 0, len(r.workers))
	for id, w := range r.workers {
		out = append(out, queue.WorkerView{ID: id, Session: w.session, Queue: w.inbox, Threads: w.threads,
			Idle: idle[id], LastSeen: w.lastSeen, Stopping: w.stopping, Updated: now})
	}
	slices.SortFunc(out, func(a, b queue.WorkerView) int { return strings.Compare(a.ID, b.ID) })
	return out
}
