package bus

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/ferrybus/ferry/queue"
)

// settleTimeout bounds an ack, release or move after handling.
const settleTimeout = 30 * time.Second

// handledRetention is how long idempotent endpoints remember handled ids.
const handledRetention = 7 * 24 * time.Hour

// receiveTimeout bounds one receive statement.
const receiveTimeout = 30 * time.Second

// minPoll is the first idle wait of the receive loop; it doubles up to the
// store's MaxPoll while the inbox stays empty.
const minPoll = 10 * time.Millisecond

// gatePoll is how often a closed Gate is asked again.
const gatePoll = 20 * time.Millisecond

// maxErrorText bounds the error text kept per failure.
const maxErrorText = 2000

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
		idle    = make([]int, 0, len(e.threads))
		pending []queue.Delivery
		// short is the wake-up channel of the last receive when it returned
		// fewer messages than asked for (or none); nil when the queue may
		// hold more.
		short <-chan struct{}
		// failed follows a run of failed receives (database unreachable).
		failed outage
		poll   = minPoll
		timer  = time.NewTimer(time.Hour)
	)
	defer timer.Stop()
	defer func() {
		// Stopping: what is buffered was never handed to a handler.
		if len(pending) > 0 && !e.abandoned.Load() {
			e.releaseUnhandled(pending)
		}
	}()
	prefetch := e.prefetch()
	for {
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
		// Hand buffered messages to idle threads.
		for len(idle) > 0 && len(pending) > 0 {
			e.threads[idle[0]] <- pending[0]
			idle, pending = idle[1:], pending[1:]
		}
		if ctx.Err() != nil {
			return
		}
		want := len(idle) + prefetch - len(pending)
		refill := len(idle) > 0 || len(pending) <= prefetch/2
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
				if !waitRetry(ctx, maxErrorBackoff, stall) {
					return
				}
				continue
			}
			if !drained {
				wake = e.inbox.Wake()
				// Stopping must not cancel a receive in flight: the database could
				// lease rows whose result the driver then drops.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), receiveTimeout)
				ds, err := e.inbox.Receive(rctx, want, e.lease)
				cancel()
				switch {
				case err != nil:
					wait, first := failed.fail(time.Now())
					if first {
						e.log.Warn("receive failed; retrying until it succeeds", "queue", e.inbox.URI(), "err", err, "in", wait)
					} else {
						e.log.Debug("receive failed again; retrying", "queue", e.inbox.URI(), "err", err, "in", wait, "failures", failed.failures)
					}
					if !waitRetry(ctx, wait, wake) {
						return
					}
					continue
				}
				if down, n, ended := failed.ok(time.Now()); ended {
					e.log.Info("receiving again", "queue", e.inbox.URI(), "down", down.Round(100*time.Millisecond), "failures", n)
				}
				switch {
				case len(ds) > 0:
					poll = minPoll
					now := time.Now()
					for _, d := range ds {
						e.inflight.Store(d.ID, &inflight{d: d, received: now, renewed: now})
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
			timer.Reset(poll)
			select {
			case <-ctx.Done():
			case <-wake:
				poll, short = minPoll, nil
			case <-timer.C:
				poll, short = min(2*poll, e.inbox.MaxPoll()), nil
			case id := <-e.free:
				idle = append(idle, id)
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			continue
		}
		if refill && want > 0 {
			// The gate is closed: ask again shortly.
			if !sleepCtx(ctx, gatePoll) {
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
	switch p := e.cfg.Inbox.Prefetch; {
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
		}
		e.inflight.Delete(d.ID)
	}
}

// sleepCtx waits d or until ctx ends, reporting whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

// thread handles the messages given to thread number i.
func (e *Endpoint) thread(i int) {
	defer e.workers.Done()
	for d := range e.threads[i] {
		if e.hooks.ThreadBusy != nil {
			e.hooks.ThreadBusy(i)
		}
		e.process(d)
		e.free <- i
	}
}

// heartbeat renews the leases of messages whose handlers are still running,
// and forgets old idempotence records.
func (e *Endpoint) heartbeat(ctx context.Context) {
	defer e.beats.Done()
	every := e.lease / 3
	t := time.NewTicker(every)
	defer t.Stop()
	lastForget := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			e.inflight.Range(func(_, v any) bool {
				f := v.(*inflight)
				f.mu.Lock()
				switch {
				case f.released:
				case !f.started && now.Sub(f.received) >= e.lease/2:
					// Waited too long in the prefetch buffer (every thread is
					// busy, perhaps stuck): give it back for others to take.
					f.released = true
					if err := e.inbox.Release(ctx, f.d, queue.ReleaseOptions{Uncount: true}); err != nil {
						e.log.Warn("release of a long-buffered message failed; its lease will expire", "message", f.d.MessageID, "err", err)
					} else if e.stopping.Load() {
						e.released.Add(1) // given back during Stop: part of its summary
					}
				case now.Sub(f.renewed) >= every:
					if err := e.inbox.Extend(ctx, f.d, e.lease); err != nil {
						e.log.Warn("lease renewal failed", "message", f.d.MessageID, "err", err)
					} else {
						f.renewed = now
					}
				}
				f.mu.Unlock()
				return true
			})
			if e.cfg.Inbox.Idempotent && now.Sub(lastForget) > time.Hour {
				lastForget = now
				if _, err := e.inbox.Store().ForgetHandled(ctx, now.Add(-handledRetention)); err != nil {
					e.log.Warn("forgetting old handled records failed", "err", err)
				}
			}
		}
	}
}

// settle runs the final operation on a message (ack, release, move) unless
// Stop has already given it back.
func (e *Endpoint) settle(d queue.Delivery, op func(ctx context.Context) error) error {
	v, ok := e.inflight.Load(d.ID)
	if !ok {
		return nil
	}
	f := v.(*inflight)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released {
		return nil
	}
	f.released = true
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	return op(ctx)
}

// settleAsync acks d through the acker without waiting, unless Stop has
// already given it back; done gets the outcome.
func (e *Endpoint) settleAsync(d queue.Delivery, done func(error)) {
	v, ok := e.inflight.Load(d.ID)
	if !ok {
		return
	}
	f := v.(*inflight)
	f.mu.Lock()
	released := f.released
	f.released = true
	f.mu.Unlock()
	if !released {
		e.acks.ackAsync(d, done)
	}
}

// process handles one delivery from start to finish. It never panics and
// never returns an error: every outcome ends in an ack, a release or a move.
func (e *Endpoint) process(d queue.Delivery) {
	// Forget this delivery's entry only: once settled, the same row can be
	// received again (an immediate retry) and tracked under the same id by
	// another thread before this one returns.
	v, ok := e.inflight.Load(d.ID)
	if !ok {
		return
	}
	defer e.inflight.CompareAndDelete(d.ID, v)
	// A buffered message given back while it waited is not handled here.
	f := v.(*inflight)
	f.mu.Lock()
	given := f.released
	f.started = true
	f.mu.Unlock()
	if given {
		return
	}
	e.stats.received.Add(1)
	ctx := e.hctx
	// Built only when something is logged: most messages log nothing.
	log := func() *slog.Logger { return e.log.With("message", d.MessageID, "type", d.Type, "attempt", d.Attempts) }

	env, err := envelopeFrom(d, e.inbox.URI())
	if err != nil {
		e.fail(d, env, KindDecode, err, "")
		return
	}
	if env.Expired(time.Now()) {
		e.stats.expired.Add(1)
		e.fail(d, env, KindExpired, fmt.Errorf("expired at %s, before it was handled", env.ExpiresAt.UTC().Format(time.RFC3339Nano)), "")
		return
	}
	if max := e.rec.maxBody; max > 0 && len(d.Body) > max {
		e.fail(d, env, KindOversize, fmt.Errorf("body of %d bytes is over the inbox's limit of %d (maxBodyBytes)", len(d.Body), max), "")
		return
	}
	if d.Attempts-1-len(env.Failures) > 0 {
		// Delivered before without a recorded outcome: a handler may have
		// crashed the process or outlived its lease, or the message only
		// waited in the prefetch buffer of a process that died. Only the
		// deliveries on which a handler started count toward poison, so mark
		// this one durably before the handler starts (the rare path: a
		// first delivery pays nothing).
		started, err := e.inbox.MarkStarted(ctx, d)
		if errors.Is(err, queue.ErrLeaseLost) {
			log().Warn("lease lost before handling; the message is someone else's now", "err", err)
			return
		}
		if err != nil {
			e.fail(d, env, KindError, err, "")
			return
		}
		if maxAttempts := e.retry.maxAttempts(); started >= maxAttempts {
			// Its handler kills the process or outlives the lease: stop the loop here.
			e.fail(d, env, KindPoison, fmt.Errorf("handler started %d times without completing (it may crash the process or outlive its lease); delivered %d times",
				started, d.Attempts), "")
			return
		}
	}
	if e.cfg.Inbox.Idempotent {
		done, err := e.inbox.Store().Handled(ctx, e.cfg.Name, env.ID)
		if err != nil {
			e.fail(d, env, KindError, err, "")
			return
		}
		if done {
			e.ackDuplicate(d, "message already handled; acked without handling")
			return
		}
	}
	ent, ok := e.mux.lookup(env.Type)
	if !ok {
		e.fail(d, env, KindNoHandler, fmt.Errorf("no handler for message type %q", env.Type), "")
		return
	}
	msg := &Message{Envelope: *env, ep: e}
	if ent.tx {
		e.handleTx(ctx, d, msg, ent.handler)
		return
	}
	if err, stack := call(ctx, ent.handler, msg); err != nil {
		e.failHandler(ctx, d, env, err, stack)
		return
	}
	if err := enqueue(ctx, nil, msg.out); err != nil {
		e.fail(d, env, KindError, fmt.Errorf("dispatch of sent messages: %w", err), "")
		return
	}
	if !e.cfg.Inbox.Idempotent {
		// The thread goes on to its next message while the ack waits for
		// the acker's next statement, shared with the other threads' acks.
		e.settleAsync(d, func(err error) {
			if err != nil {
				log().Warn("ack failed; the message will be delivered again", "err", err)
				return
			}
			e.stats.handled.Add(1)
		})
		return
	}
	// Idempotent: the handled record and the ack commit together. A copy
	// handled at the same time may have recorded it first: this one is then
	// a duplicate whose (non-transactional) handler ran all the same.
	claimed := false
	err = e.settle(d, func(sctx context.Context) error {
		tx, err := e.inbox.Store().DB().BeginTx(sctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if claimed, err = e.inbox.Store().ClaimHandledTx(sctx, tx, e.cfg.Name, env.ID); err != nil {
			return err
		}
		if err := e.inbox.AckTx(sctx, tx, d); err != nil {
			return err
		}
		return tx.Commit()
	})
	if err != nil {
		log().Warn("ack failed; the message will be delivered again", "err", err)
		return
	}
	if !claimed {
		e.stats.duplicates.Add(1)
		log().Warn("another copy of the message was handled at the same time; a non-transactional handler ran for both")
		return
	}
	e.stats.handled.Add(1)
}

// ackDuplicate acks a copy of a message this endpoint has already handled.
func (e *Endpoint) ackDuplicate(d queue.Delivery, why string) {
	log := e.log.With("message", d.MessageID, "type", d.Type, "attempt", d.Attempts)
	if err := e.settle(d, func(ctx context.Context) error { return e.ack(ctx, d) }); err != nil {
		log.Warn("ack of duplicate failed", "err", err)
		return
	}
	e.stats.duplicates.Add(1)
	log.Info(why)
}

// errDuplicate ends a transactional handler's commit when another copy of
// the message has recorded it handled first.
var errDuplicate = errors.New("already handled by another copy")

// handleTx runs a transactional handler: its work, what it sends to queues
// of the inbox's database, the idempotence record and the ack commit together.
func (e *Endpoint) handleTx(ctx context.Context, d queue.Delivery, msg *Message, h Handler) {
	store := e.inbox.Store()
	tx, err := store.DB().BeginTx(ctx, nil)
	if err != nil {
		e.fail(d, &msg.Envelope, KindError, fmt.Errorf("begin transaction: %w", err), "")
		return
	}
	msg.tx = tx
	if err, stack := call(ctx, h, msg); err != nil {
		tx.Rollback()
		e.failHandler(ctx, d, &msg.Envelope, err, stack)
		return
	}
	var local, remote []outgoing
	for _, o := range msg.out {
		if o.dest.Store() == store {
			local = append(local, o)
		} else {
			remote = append(remote, o)
		}
	}
	commit := func() error {
		if e.cfg.Inbox.Idempotent {
			// The gate: of concurrent copies, only the one that inserts the
			// record commits; the others roll their effects back.
			claimed, err := store.ClaimHandledTx(ctx, tx, e.cfg.Name, msg.ID)
			if err != nil {
				return err
			}
			if !claimed {
				return errDuplicate
			}
		}
		if err := enqueue(ctx, tx, local); err != nil {
			return fmt.Errorf("dispatch of sent messages: %w", err)
		}
		// Messages for other databases go first: at least once, never lost.
		if err := enqueue(ctx, nil, remote); err != nil {
			return fmt.Errorf("dispatch of sent messages: %w", err)
		}
		return nil
	}
	if err := commit(); err != nil {
		tx.Rollback()
		if errors.Is(err, errDuplicate) {
			e.ackDuplicate(d, "another copy of the message was handled at the same time; its effects rolled back, acked without handling")
			return
		}
		e.fail(d, &msg.Envelope, KindError, err, "")
		return
	}
	err = e.settle(d, func(sctx context.Context) error {
		if err := e.inbox.AckTx(sctx, tx, d); err != nil {
			tx.Rollback()
			return err
		}
		return tx.Commit()
	})
	if err != nil {
		e.log.Warn("transactional handler: commit failed; the message will be delivered again", "message", d.MessageID, "err", err)
		return
	}
	e.stats.handled.Add(1)
}

// call runs a handler, turning a panic into an error with a short stack.
func call(ctx context.Context, h Handler, m *Message) (err error, stack string) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
			stack = shortStack(debug.Stack())
		}
	}()
	return h.HandleMessage(ctx, m), ""
}

func shortStack(s []byte) string {
	const max = 4000
	if len(s) > max {
		s = s[:max]
	}
	return string(s)
}

// failHandler classifies a handler's error. An error caused by shutdown is
// no failure: the message goes back untouched.
func (e *Endpoint) failHandler(ctx context.Context, d queue.Delivery, env *Envelope, err error, stack string) {
	if ctx.Err() != nil && stack == "" {
		released := false
		_ = e.settle(d, func(sctx context.Context) error {
			released = true
			return e.inbox.Release(sctx, d, queue.ReleaseOptions{Uncount: true})
		})
		if released && e.stopping.Load() {
			e.cancelReleased.Add(1)
		}
		return
	}
	kind := KindError
	var de *DecodeError
	switch {
	case stack != "":
		kind = KindPanic
	case IsPermanent(err):
		kind = KindPermanent
	case errors.As(err, &de):
		kind = KindDecode
	}
	e.fail(d, env, kind, err, stack)
}

// fail records a failed attempt in the message and acts on it by the
// inbox's rules and defaults: discard (ack), retry (release after the
// policy's delay, while attempts are left) or park (move to the error queue).
func (e *Endpoint) fail(d queue.Delivery, env *Envelope, kind string, cause error, stack string) {
	if kind != KindExpired {
		e.stats.failed.Add(1)
	}
	text := cause.Error()
	if len(text) > maxErrorText {
		text = text[:maxErrorText]
	}
	dec := e.rec.decide(d.Type, kind, text)
	if d.HeadersErr != nil && dec.action == ActionRetry {
		// Stored headers that cannot be decoded stay so: a retry would only
		// rewrite them from nothing, and the message would then be handled
		// without them. Park it with the raw text instead.
		dec.action = ActionPark
	}
	var failures []Failure
	if env != nil {
		failures = env.Failures
	}
	failures = append(failures, Failure{At: time.Now(), Endpoint: e.cfg.Name, Error: text, Kind: kind, Stack: stack})
	log := e.log.With("message", d.MessageID, "type", d.Type, "attempt", d.Attempts, "kind", kind, "err", text)
	if dec.rule >= 0 {
		log = log.With("rule", dec.rule)
	}

	if dec.action == ActionDiscard {
		err := e.settle(d, func(ctx context.Context) error { return e.ack(ctx, d) })
		if err != nil {
			log.Warn("ack of a discarded message failed; it will be delivered again", "ackErr", err)
			return
		}
		e.stats.discarded.Add(1)
		log.Warn("message discarded unhandled", "failures", len(failures))
		return
	}

	// Keep the stored headers as they were, malformed ones included, and
	// record the failure beside them.
	headers := make(map[string]string, len(d.Headers)+3)
	for k, v := range d.Headers {
		headers[k] = v
	}
	fb, _ := json.Marshal(failures)
	headers[HeaderFailures] = string(fb)
	if d.HeadersErr != nil {
		// Headers is empty: keep what was stored, byte for byte.
		if utf8.ValidString(d.RawHeaders) {
			headers[HeaderRawHeaders] = d.RawHeaders
		} else {
			headers[HeaderRawHeadersBase64] = base64.StdEncoding.EncodeToString([]byte(d.RawHeaders))
		}
	}

	if dec.action == ActionRetry {
		if delay, again := dec.policy.Delay(len(failures)); again {
			err := e.settle(d, func(ctx context.Context) error {
				return e.inbox.Release(ctx, d, queue.ReleaseOptions{Delay: delay, Headers: headers})
			})
			if err != nil {
				log.Warn("release for retry failed; the lease will expire", "releaseErr", err)
				return
			}
			e.stats.retried.Add(1)
			log.Warn("handling failed; will retry", "in", delay, "failures", len(failures))
			return
		}
	}
	// A distributed message returns to its distributor, not to this
	// worker's queue, which may be gone by the time it is retried.
	source := e.inbox.URI()
	if from := d.Headers[HeaderDistributedFrom]; from != "" {
		source = from
	}
	headers[HeaderSourceQueue] = source
	headers[HeaderError] = text
	err := e.settle(d, func(ctx context.Context) error {
		return e.inbox.Move(ctx, d, e.errorQueue, headers)
	})
	if err != nil {
		log.Error("move to error queue failed; the lease will expire", "moveErr", err)
		return
	}
	e.stats.errored.Add(1)
	reason := "attempts exhausted"
	if dec.action == ActionPark {
		reason = "parked"
	}
	log.Error("handling failed; moved to the error queue", "errorQueue", e.errorQueue.URI(), "failures", len(failures), "reason", reason)
}
