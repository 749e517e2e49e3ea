package bus

import (
	"context"
	"slices"
	"time"

	"github.com/ferrybus/ferry/internal/waiter"
	"github.com/ferrybus/ferry/queue"
)

// receiveTimeout bounds one receive statement.
const receiveTimeout = waiter.DefaultReceiveTimeout

// minPoll is the first idle wait of the receive loop; it doubles up to the
// store's MaxPoll while the inbox stays empty (see internal/waiter).
const minPoll = 10 * time.Millisecond

// gatePoll is how often a closed Gate is asked again.
const gatePoll = 20 * time.Millisecond

// pausedPoll is how often a paused inbox (queue.Queue.Paused, itself read
// from the database once a second) is asked again.
const pausedPoll = 100 * time.Millisecond

// receiveLoop keeps the threads fed. It holds the ids of idle threads and a
// buffer of leased messages (up to the inbox's prefetch, renewed by the
// heartbeat like any message in flight), hands buffered messages to idle
// threads, and refills the buffer in batches once it is half empty, so that
// receives carry many rows under load. With nothing buffered and nothing
// to receive, it reports its threads idle and waits for a wake-up, a poll
// interval, or another thread coming free.
func (e *Endpoint) receiveLoop(ctx context.Context) {
	defer e.loops.Done()
	var (
		idle    = make([]int, 0, e.Threads())
		pending []queue.Delivery
		// short is the wake-up channel of the last receive when it returned
		// fewer messages than asked for (or none); nil when the queue may
		// hold more.
		short <-chan struct{}
		// w follows the idle poll interval and runs of failed receives
		// (database unreachable).
		w = waiter.New(waiter.Bounds{MinPoll: minPoll, MaxPoll: e.inbox.MaxPoll()})
	)
	defer func() {
		// Stopping: what is buffered was never handed to a handler.
		switch {
		case len(pending) == 0 || e.abandoned.Load():
		case e.take:
			e.handOverTaken(idle, pending) // taken: it cannot be given back
		default:
			e.releaseUnhandled(pending)
		}
	}()
	for {
		prefetch := e.prefetch() // SetPrefetch may change it
		// Collect every thread that has come free.
	collect:
		for {
			select {
			case id := <-e.free:
				idle = append(idle, id)
			default:
				break collect
			}
		}
		idle = e.retireIdle(idle) // SetThreads: retire idle threads over the count (reconfigure.go)
		// Hand buffered messages to idle threads.
		for len(idle) > 0 && len(pending) > 0 {
			e.threadCh(idle[0]) <- pending[0]
			idle, pending = idle[1:], pending[1:]
		}
		if ctx.Err() != nil {
			return
		}
		want := len(idle) + prefetch - len(pending)
		refill := len(idle) > 0 || len(pending) <= prefetch/2
		if refill && want > 0 && e.pausedWait(ctx) {
			// Paused: receive nothing; what is buffered or running goes on.
			if ctx.Err() != nil {
				return
			}
			continue
		}
		if refill && want > 0 && (e.hooks.Gate == nil || e.hooks.Gate()) {
			// After a receive that came back short the queue is drained: ask
			// again only once woken or polled, not each time a thread frees.
			wake, drained := short, false
			if short != nil {
				select {
				case <-short:
					short = nil
				default:
					drained = true
				}
			}
			if stall := e.acks.stalled(); stall != nil && !drained {
				// Acks of handled messages wait for the database: let them go
				// first, or this receive could take those messages again.
				if !waiter.Sleep(ctx, waiter.DefaultMaxBackoff, stall) {
					return
				}
				continue
			}
			if !drained {
				wake = e.inbox.Wake()
				// Stopping must not cancel a receive in flight: the database could
				// lease rows whose result the driver then drops.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), receiveTimeout)
				ds, err := e.fetch(rctx, want)
				cancel()
				switch {
				case err != nil:
					wait, first := w.Failed(time.Now())
					if first {
						e.log.Warn("receive failed; retrying until it succeeds", "queue", e.inbox.URI(), "err", err, "in", wait)
					} else {
						e.log.Debug("receive failed again; retrying", "queue", e.inbox.URI(), "err", err, "in", wait, "failures", w.Failures())
					}
					if !waiter.Sleep(ctx, wait, wake) {
						return
					}
					continue
				}
				if down, n, ended := w.Recovered(time.Now()); ended {
					e.log.Info("receiving again", "queue", e.inbox.URI(), "down", down.Round(100*time.Millisecond), "failures", n)
				}
				switch {
				case len(ds) > 0:
					w.Found()
					now := time.Now()
					for _, d := range ds {
						at := e.leasedAt(d, now)
						e.inflight.Store(d.ID, &inflight{d: d, received: at, renewed: at})
					}
					pending = append(pending, ds...)
					if len(ds) < want {
						short = wake
					}
					continue
				}
				short = wake // nothing there: drained too
			}
			if len(pending) > 0 {
				// The queue is empty but the buffer is not: wait for a thread.
				if !e.waitThread(ctx, &idle) {
					return
				}
				continue
			}
			if len(idle) > 0 && e.hooks.Idle != nil {
				e.hooks.Idle(slices.Clone(idle))
			}
			// Wait for a wake-up, the poll interval, or a thread coming free.
			switch id, why := waiter.IdleOr[int](ctx, w, wake, e.free); why {
			case waiter.Woken, waiter.Polled:
				short = nil
			case waiter.Other:
				idle = append(idle, id)
			}
			continue
		}
		if refill && want > 0 {
			// The gate is closed: ask again shortly.
			if !waiter.Sleep(ctx, gatePoll, nil) {
				return
			}
			continue
		}
		// The buffer is full enough: wait for a thread to come free.
		if !e.waitThread(ctx, &idle) {
			return
		}
	}
}

// receive leases up to want messages. With a handoff token (a worker's
// endpoint) it first reads the messages its distributor moved in already
// leased to it, other than those it holds; only when there are none does
// it lease, for the rows whose handed-over lease ended and those moved by
// a distributor that predates handoffs.
func (e *Endpoint) receive(ctx context.Context, want int) ([]queue.Delivery, error) {
	if e.handoff != 0 {
		ds, err := e.inbox.ReceiveGiven(ctx, e.handoff, want, e.held())
		if err != nil || len(ds) > 0 {
			return ds, err
		}
	}
	return e.inbox.Receive(ctx, want, e.lease)
}

// held lists the row ids the endpoint holds: buffered, being handled, or
// being acked. A message moves into acking before it leaves inflight, so
// reading inflight first misses none.
func (e *Endpoint) held() []int64 {
	ids := []int64{}
	collect := func(k, _ any) bool {
		ids = append(ids, k.(int64))
		return true
	}
	e.inflight.Range(collect)
	e.acking.Range(collect)
	return ids
}

// leasedAt is when d's lease began, as renewals count it: now for a
// message just leased; for one handed over, when the move leased it (its
// lease's end less the endpoint's lease), so that it is renewed, or given
// back from the buffer, before that lease ends.
func (e *Endpoint) leasedAt(d queue.Delivery, now time.Time) time.Time {
	if e.handoff == 0 || d.LeaseToken != e.handoff {
		return now
	}
	at := d.VisibleAt.Add(-e.lease)
	switch {
	case at.After(now):
		return now
	case at.Before(now.Add(-e.lease)):
		return now.Add(-e.lease)
	}
	return at
}

// releaseGiven gives back, once Stop has settled everything, the messages
// handed over to the endpoint that it never read: they would stay leased
// to a session that has ended until their lease ran out. A release that
// fails leaves that message to its lease.
func (e *Endpoint) releaseGiven() {
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	const page = 500
	skip := e.held()
	for {
		ds, err := e.inbox.ReceiveGiven(ctx, e.handoff, page, skip)
		if err != nil {
			e.log.Warn("cannot give back messages handed over but never read; they return when their leases end", "err", err)
			return
		}
		for _, d := range ds {
			if err := e.inbox.Release(ctx, d, queue.ReleaseOptions{Uncount: true}); err != nil {
				e.log.Warn("release of a handed-over message failed; its lease will expire", "message", d.MessageID, "err", err)
				skip = append(skip, d.ID)
			}
		}
		if len(ds) < page {
			return
		}
	}
}

// waitThread waits for a thread to come free and adds it to idle; false
// when ctx ended.
func (e *Endpoint) waitThread(ctx context.Context, idle *[]int) bool {
	select {
	case id := <-e.free:
		*idle = append(*idle, id)
		return true
	case <-ctx.Done():
		return false
	}
}

// prefetch is how many leased messages may wait in memory for a thread.
func (e *Endpoint) prefetch() int {
	switch p := e.live.cfg.Load().Prefetch; { // live: SetPrefetch
	case p < 0:
		return 0
	case p == 0:
		return e.Threads()
	default:
		return p
	}
}

// releaseUnhandled gives back buffered messages no handler has seen; the
// delivery does not count as an attempt. Each one given back counts in the
// stop summary (Released).
func (e *Endpoint) releaseUnhandled(ds []queue.Delivery) {
	for _, d := range ds {
		given := false
		if err := e.settle(d, func(ctx context.Context) error {
			err := e.inbox.Release(ctx, d, queue.ReleaseOptions{Uncount: true})
			given = err == nil
			return err
		}); err != nil {
			e.log.Warn("release of a buffered message failed; its lease will expire", "message", d.MessageID, "err", err)
		}
		if given {
			e.released.Add(1)
			e.emit(EventReleased, d, "", "")
		}
		e.inflight.Delete(d.ID)
	}
}

// pausedWait reports whether the inbox is paused, and if so waits a
// little (pausedPoll, or a thread coming free, or ctx ending). The loop
// then receives nothing; messages already received (buffered, running)
// are handled as usual, so nothing is released or lost. The first time
// of each pause, and its end, are logged.
func (e *Endpoint) pausedWait(ctx context.Context) bool {
	if !e.inbox.Paused() {
		if e.paused.Swap(false) {
			e.log.Info("inbox resumed; receiving again", "queue", e.inbox.URI())
		}
		return false
	}
	if !e.paused.Swap(true) {
		e.log.Info("inbox paused; receiving nothing until it is resumed", "queue", e.inbox.URI())
	}
	e.pausedPolls.Add(1)
	waiter.Sleep(ctx, pausedPoll, nil)
	return true
}
