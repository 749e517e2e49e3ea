package distributor

import (
	"context"
	"sync"
	"time"

	"github.com/ferrybus/ferry/queue"
)

// One distributor per control inbox: the lock in the database, the standby
// that waits for it, and the active role that runs while it is held.

// lockName is the database lock that makes one distributor per control inbox.
func (d *Distributor) lockName() string { return "distributor:" + d.control.Inbox().URI() }

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
	var sess queue.LockSession
	defer func() {
		r.stop(d)
		d.token.Store(0)
		if sess != nil {
			sess.Close()
		}
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
	select {
	case d.activated <- struct{}{}: // the view shows it active at once
	default:
	}
	ctx, cancel := context.WithCancel(parent)
	r := &role{cancel: cancel, done: make(chan struct{})}
	var loops sync.WaitGroup
	loops.Add(3)
	go func() { defer loops.Done(); d.distributeLoop(ctx) }()
	go func() { defer loops.Done(); d.reclaimLoop(ctx) }()
	go func() { defer loops.Done(); d.summariseExpired(ctx) }()
	go func() { loops.Wait(); close(r.done) }()
	d.log.Info("distributor active", "inbox", d.inbox.URI(), "control", d.control.Inbox().URI(),
		"distribute", d.cfg.Distribute, "distributeSendCount", d.SendCount())
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
