package distributor

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor/control"
	"github.com/ferrybus/ferry/queue"
)

// The control inbox: the workers' announcements (package control) update the
// registry, and each worker's session and last sighting are recorded in the
// database so that a distributor taking over knows them.

// controlMux routes the control messages to their handlers.
func (d *Distributor) controlMux() *bus.Mux {
	cmux := bus.NewMux()
	handleControl(cmux, control.TypeStarted, &d.announcements, d.onStarted)
	handleControl(cmux, control.TypeThreadAvailable, &d.announcements, d.onAvailable)
	handleControl(cmux, control.TypeHeartbeat, &d.announcements, d.onHeartbeat)
	handleControl(cmux, control.TypeStopping, &d.announcements, d.onStopping)
	return cmux
}

// handleControl routes control messages of type typ to on. A control
// message's handler never fails: whatever it cannot use is dropped.
func handleControl[T any](cmux *bus.Mux, typ string, n *atomic.Int64, on func(context.Context, T)) {
	bus.Handle(cmux, typ, func(ctx context.Context, _ *bus.Message, msg T) error {
		n.Add(1)
		on(ctx, msg)
		return nil
	})
}

func (d *Distributor) onStarted(ctx context.Context, s control.Started) {
	d.reg.started(s, time.Now())
	d.persist(ctx, s.WorkerID, true)
	d.log.Info("worker started", "worker", s.WorkerID, "session", s.Session, "inbox", s.Inbox, "threads", s.Threads)
}

func (d *Distributor) onAvailable(ctx context.Context, a control.ThreadAvailable) {
	d.reg.available(a, time.Now())
	d.persist(ctx, a.WorkerID, false)
}

func (d *Distributor) onHeartbeat(ctx context.Context, h control.Heartbeat) {
	d.reg.heartbeat(h, time.Now())
	d.persist(ctx, h.WorkerID, false)
}

// onStopping ends the session and returns its queue. A move to it already
// in flight is undone by the distribute loop once it lands (see landed).
func (d *Distributor) onStopping(ctx context.Context, s control.Stopping) {
	if w := d.reg.stopping(s, time.Now()); w != nil {
		d.log.Info("worker stopping; returning its queue", "worker", s.WorkerID, "session", s.Session)
		if d.reclaim(ctx, *w, true) {
			d.forget(ctx, w.id, w.session, time.Now())
		}
	}
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
