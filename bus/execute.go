package bus

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/ferrybus/ferry/queue"
)

// thread handles the messages given to thread number i on ch, until ch is
// closed (at Stop, or when SetThreads retires it idle).
func (e *Endpoint) thread(i int, ch chan queue.Delivery) {
	defer e.workers.Done()
	for d := range ch {
		if e.hooks.ThreadBusy != nil {
			e.hooks.ThreadBusy(i)
		}
		e.process(d)
		e.free <- i
	}
}

// job is one delivery on its way through the prechecks to its handler.
type job struct {
	d   queue.Delivery
	env *Envelope // set by checkDecode
	ent entry     // set by checkHandler
}

// A precheck looks at a delivery before its handler runs. It returns false
// when it has settled the delivery itself (failed it, acked it as a
// duplicate, or found it someone else's now) and no handler may run.
type precheck func(ctx context.Context, j *job) bool

// prechecks lists, in the order they run, the checks a delivery passes
// before its handler: it decodes, has not expired, is not over the size
// limit, is not poison, was not handled already, and has a handler.
func (e *Endpoint) prechecks() []precheck {
	// checkOversize always: maxBodyBytes may be set live (reconfigure.go).
	checks := []precheck{e.checkDecode, e.checkExpired, e.checkOversize}
	if !e.take { // a taken message is never delivered twice
		checks = append(checks, e.checkPoison)
	}
	if e.cfg.Inbox.Idempotent {
		checks = append(checks, e.checkHandled)
	}
	return append(checks, e.checkHandler)
}

// checkDecode decodes the delivery's envelope.
func (e *Endpoint) checkDecode(_ context.Context, j *job) bool {
	env, err := envelopeFrom(j.d, e.inbox.URI())
	j.env = env
	if err != nil {
		e.fail(j.d, env, KindDecode, err, "")
		return false
	}
	return true
}

// checkExpired fails a message received after its ExpiresAt.
func (e *Endpoint) checkExpired(_ context.Context, j *job) bool {
	if !j.env.Expired(time.Now()) {
		return true
	}
	err := fmt.Errorf("expired at %s, before it was handled", j.env.ExpiresAt.UTC().Format(time.RFC3339Nano))
	e.count(EventExpired, j.d, KindExpired, err.Error())
	e.fail(j.d, j.env, KindExpired, err, "")
	return false
}

// checkOversize fails a body over the inbox's MaxBodyBytes.
func (e *Endpoint) checkOversize(_ context.Context, j *job) bool {
	if max := e.rec.Load().maxBody; max > 0 && len(j.d.Body) > max {
		e.fail(j.d, j.env, KindOversize, fmt.Errorf("body of %d bytes is over the inbox's limit of %d (maxBodyBytes)", len(j.d.Body), max), "")
		return false
	}
	return true
}

// checkPoison parks a message whose handler started too often without an
// outcome.
func (e *Endpoint) checkPoison(ctx context.Context, j *job) bool {
	d, env := j.d, j.env
	if d.Attempts-1-len(env.Failures) <= 0 {
		return true
	}
	// Delivered before without a recorded outcome: a handler may have
	// crashed the process or outlived its lease, or the message only
	// waited in the prefetch buffer of a process that died. Only the
	// deliveries on which a handler started count toward poison, so mark
	// this one durably before the handler starts (the rare path: a first
	// delivery pays nothing).
	started, err := e.inbox.MarkStarted(ctx, d)
	if errors.Is(err, queue.ErrLeaseLost) {
		e.deliveryLog(d).Warn("lease lost before handling; the message is someone else's now", "err", err)
		return false
	}
	if err != nil {
		e.fail(d, env, KindError, err, "")
		return false
	}
	if maxAttempts := e.rec.Load().retry.maxAttempts(); started >= maxAttempts {
		// Its handler kills the process or outlives the lease: stop the loop here.
		e.fail(d, env, KindPoison, fmt.Errorf("handler started %d times without completing (it may crash the process or outlive its lease); delivered %d times",
			started, d.Attempts), "")
		return false
	}
	return true
}

// checkHandled acks, unhandled, a message an idempotent endpoint has
// handled already.
func (e *Endpoint) checkHandled(ctx context.Context, j *job) bool {
	done, err := e.inbox.Store().Handled(ctx, e.cfg.Name, j.env.ID)
	if err != nil {
		e.fail(j.d, j.env, KindError, err, "")
		return false
	}
	if done {
		e.ackDuplicate(j.d, "message already handled; acked without handling")
		return false
	}
	return true
}

// checkHandler finds the message type's handler.
func (e *Endpoint) checkHandler(_ context.Context, j *job) bool {
	ent, ok := e.mux.lookup(j.env.Type)
	if !ok {
		e.fail(j.d, j.env, KindNoHandler, fmt.Errorf("no handler for message type %q", j.env.Type), "")
		return false
	}
	j.ent = ent
	return true
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
	ctx, end := e.traceHandle(e.hctx, d, f)
	defer end()
	j := &job{d: d}
	for _, check := range e.checks {
		if !check(ctx, j) {
			return
		}
	}
	msg := &Message{Envelope: *j.env, ep: e}
	if j.ent.tx {
		e.handleTx(ctx, j, msg)
		return
	}
	began := time.Now()
	err, stack := call(ctx, j.ent.handler, msg)
	e.observeHandler(j, time.Since(began), err)
	if err != nil {
		e.failHandler(ctx, d, j.env, err, stack)
		return
	}
	if err := enqueue(ctx, nil, msg.out); err != nil {
		e.fail(d, j.env, KindError, fmt.Errorf("dispatch of sent messages: %w", err), "")
		return
	}
	e.settler.handled(d, j.env)
}

// handleTx runs a transactional handler: its work, what it sends to queues
// of the inbox's database, the idempotence record and the ack commit together.
func (e *Endpoint) handleTx(ctx context.Context, j *job, msg *Message) {
	d, h := j.d, j.ent.handler
	store := e.inbox.Store()
	tx, err := store.DB().BeginTx(ctx, nil)
	if err != nil {
		e.fail(d, &msg.Envelope, KindError, fmt.Errorf("begin transaction: %w", err), "")
		return
	}
	msg.tx = tx
	began := time.Now()
	err, stack := call(ctx, h, msg)
	e.observeHandler(j, time.Since(began), err)
	if err != nil {
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
		// The gate of an idempotent inbox: of concurrent copies, only the
		// one that inserts the record commits; the others roll their
		// effects back.
		claimed, err := e.settler.claim(ctx, msg)
		if err != nil {
			return err
		}
		if !claimed {
			return errDuplicate
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
	e.settleTx(d, msg)
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

// shortStack bounds a panic's stack to what a failure record keeps.
func shortStack(s []byte) string {
	const max = 4000
	if len(s) > max {
		s = s[:max]
	}
	return string(s)
}
