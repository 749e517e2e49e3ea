package bus

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ferrybus/ferry/queue"
)

// maxAckBatch bounds the acks one statement carries.
const maxAckBatch = 500

// maxAckQueue bounds the acks waiting for a statement: a thread that would
// queue more waits for room, so acks cannot fall behind without bound.
const maxAckQueue = 2 * maxAckBatch

// ackReq is one message to ack and what to do with the outcome.
type ackReq struct {
	d    queue.Delivery
	done func(error) // called on the acker's goroutine
}

// acker acks for every thread of an endpoint: whatever acks have queued up
// while the previous statement ran go out together in the next one (group
// commit), so busy threads share round trips and an idle endpoint pays one
// statement per ack. A thread may wait for its ack's outcome (ack) or hand
// it over and go on to its next message (ackAsync); the second lets the
// batches grow with the threads' pace instead of one per waiting thread.
//
// A statement that fails (the database restarting, a connection reset) is
// tried again with a short backoff for up to retryFor, and at once when the
// store sees its database answer again: an ack given up would have the
// handled messages delivered and handled again. Each try checks the lease
// tokens, so a late one can only ack what this endpoint still holds.
type acker struct {
	q        queue.Queue
	log      *slog.Logger
	retryFor time.Duration
	quit     chan struct{} // closed when a stop's deadline passes: retry no more
	quitOnce sync.Once
	retrying func(error) // tests: told of each failed try that will be tried again
	mu       sync.Mutex
	stall    chan struct{} // non-nil while a failed statement waits to be tried again; closed when it is settled
	room     *sync.Cond    // signalled when the queue shrinks or closes
	queue    []ackReq
	closed   bool
	wake     chan struct{} // capacity 1: the queue has work or closed
	done     chan struct{}
}

// ackRetryMin and ackRetryMax bound the wait between tries of a failed ack
// statement.
const (
	ackRetryMin = 50 * time.Millisecond
	ackRetryMax = time.Second
)

// ackRetryFloor is the shortest time an endpoint's failed ack statement is
// tried again for, whatever its lease.
const ackRetryFloor = 30 * time.Second

// newAcker starts an acker for q whose failed statements are tried again
// for up to retryFor (0: never).
func newAcker(q queue.Queue, retryFor time.Duration, log *slog.Logger) *acker {
	a := &acker{q: q, log: log, retryFor: retryFor, quit: make(chan struct{}), wake: make(chan struct{}, 1), done: make(chan struct{})}
	a.room = sync.NewCond(&a.mu)
	go a.run()
	return a
}

func (a *acker) run() {
	defer close(a.done)
	batch := make([]ackReq, 0, maxAckBatch)
	ds := make([]queue.Delivery, 0, maxAckBatch)
	for {
		a.mu.Lock()
		for len(a.queue) == 0 && !a.closed {
			a.mu.Unlock()
			<-a.wake
			a.mu.Lock()
		}
		if len(a.queue) == 0 { // closed, and every ack answered
			a.mu.Unlock()
			return
		}
		n := min(len(a.queue), maxAckBatch)
		batch = append(batch[:0], a.queue[:n]...)
		rest := copy(a.queue, a.queue[n:])
		clear(a.queue[rest:])
		a.queue = a.queue[:rest]
		a.room.Broadcast()
		a.mu.Unlock()

		ds = ds[:0]
		for _, r := range batch {
			ds = append(ds, r.d)
		}
		acked, err := a.ackMany(ds)
		for _, r := range batch {
			switch {
			case err != nil:
				r.done(err)
			case acked[r.d.ID]:
				r.done(nil)
			default:
				r.done(fmt.Errorf("queue %s: ack %s: %w", a.q.URI(), r.d.MessageID, queue.ErrLeaseLost))
			}
		}
	}
}

// ackMany acks ds in one statement, trying again while it fails, for up to
// retryFor or until quit.
func (a *acker) ackMany(ds []queue.Delivery) (map[int64]bool, error) {
	began := time.Now()
	giveUp := began.Add(a.retryFor)
	wait := ackRetryMin
	defer a.setStalled(false)
	for tries := 1; ; tries++ {
		ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
		acked, err := a.q.AckMany(ctx, ds)
		cancel()
		if err == nil && tries > 1 {
			a.log.Info("acks go through again", "queue", a.q.URI(), "messages", len(ds), "tries", tries,
				"after", time.Since(began).Round(100*time.Millisecond))
		}
		if err == nil || time.Now().Add(wait).After(giveUp) {
			return acked, err
		}
		if tries == 1 {
			a.log.Warn("ack failed; trying again until the database answers", "queue", a.q.URI(), "messages", len(ds),
				"for", a.retryFor, "err", err)
		}
		a.setStalled(true)
		if a.retrying != nil {
			a.retrying(err)
		}
		// The store's wake-up fires too when its database answers again.
		wake := a.q.Wake()
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-wake:
			t.Stop()
		case <-a.quit:
			t.Stop()
			return acked, err
		}
		wait = min(2*wait, ackRetryMax)
	}
}

// setStalled marks whether a failed statement waits to be tried again.
func (a *acker) setStalled(on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case on && a.stall == nil:
		a.stall = make(chan struct{})
	case !on && a.stall != nil:
		close(a.stall)
		a.stall = nil
	}
}

// stalled returns a channel closed once the failed ack statement waiting to
// be tried again is settled; nil when none waits. The receive loop holds
// back meanwhile: on the database's return the acks of messages already
// handled go first, before a receive could take those messages again.
func (a *acker) stalled() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stall
}

// submit queues r, waiting for room; false once the acker is closed.
func (a *acker) submit(r ackReq) bool {
	a.mu.Lock()
	for len(a.queue) >= maxAckQueue && !a.closed {
		a.room.Wait()
	}
	if a.closed {
		a.mu.Unlock()
		return false
	}
	a.queue = append(a.queue, r)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return true
}

// ack queues d and waits for its outcome. After close it acks directly.
func (a *acker) ack(ctx context.Context, d queue.Delivery) error {
	ch := make(chan error, 1)
	if !a.submit(ackReq{d: d, done: func(err error) { ch <- err }}) {
		return a.q.Ack(ctx, d)
	}
	return <-ch
}

// ackAsync queues d and returns; done gets the outcome on the acker's
// goroutine. After close it acks directly.
func (a *acker) ackAsync(d queue.Delivery, done func(error)) {
	if a.submit(ackReq{d: d, done: done}) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	done(a.q.Ack(ctx, d))
}

// close stops the acker once every queued ack is answered; once ctx ends,
// failed statements are no longer tried again.
func (a *acker) close(ctx context.Context) {
	if ctx.Err() != nil {
		a.giveUp()
	} else {
		stop := context.AfterFunc(ctx, a.giveUp)
		defer stop()
	}
	a.mu.Lock()
	a.closed = true
	a.room.Broadcast()
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
	<-a.done
}

// giveUp ends the retries of failed statements.
func (a *acker) giveUp() { a.quitOnce.Do(func() { close(a.quit) }) }

// ack acks d through the endpoint's acker.
func (e *Endpoint) ack(ctx context.Context, d queue.Delivery) error {
	if e.acks == nil {
		return e.inbox.Ack(ctx, d)
	}
	return e.acks.ack(ctx, d)
}
