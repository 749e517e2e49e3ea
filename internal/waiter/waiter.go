// Package waiter is the wait between receives that ferry's consumers share:
// the inbox's receive loop, the distributor's distribute loop and
// queue.ReceiveWait. While there is nothing to receive, a consumer waits
// for a wake-up of its queue or a poll interval that doubles, from
// MinPoll up to MaxPoll, while the queue stays empty. While receives fail
// it backs off from MinBackoff to MaxBackoff, cut short by a wake-up (a
// send, a LISTEN reconnect, the store seeing its database answer again).
//
// A Waiter holds one consumer's state; it is not safe for concurrent use.
package waiter

import (
	"context"
	"time"
)

// Default error backoff: short, so that receiving resumes within about a
// second of the database answering again.
const (
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = time.Second
)

// DefaultReceiveTimeout bounds one receive statement of Receive.
const DefaultReceiveTimeout = 30 * time.Second

// Bounds are a Waiter's intervals.
type Bounds struct {
	// MinPoll is the first idle wait; it doubles up to MaxPoll while
	// receives find nothing. Both are required.
	MinPoll, MaxPoll time.Duration
	// MinBackoff is the first wait after a failed receive; it doubles up
	// to MaxBackoff while receives fail. Default DefaultMinBackoff and
	// DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
}

// Waiter follows one consumer's idle poll interval and its runs of failed
// receives.
type Waiter struct {
	b    Bounds
	poll time.Duration
	// A run of failed receives, so that it is logged once when it begins
	// and once when it ends, not at every retry.
	since    time.Time // first failure; zero while receives succeed
	failures int
	delay    time.Duration // the next backoff
}

// New returns a Waiter with bounds b.
func New(b Bounds) *Waiter {
	if b.MinBackoff <= 0 {
		b.MinBackoff = DefaultMinBackoff
	}
	if b.MaxBackoff <= 0 {
		b.MaxBackoff = DefaultMaxBackoff
	}
	b.MaxPoll = max(b.MaxPoll, b.MinPoll)
	b.MaxBackoff = max(b.MaxBackoff, b.MinBackoff)
	return &Waiter{b: b, poll: b.MinPoll}
}

// Found records a receive that returned something: the next idle wait
// starts from MinPoll again.
func (w *Waiter) Found() { w.poll = w.b.MinPoll }

// Reason tells why a wait ended.
type Reason int

// Why a wait ended.
const (
	// Done: ctx ended.
	Done Reason = iota
	// Woken: the wake channel fired.
	Woken
	// Polled: the poll interval passed.
	Polled
	// Other: a value came on the caller's other channel.
	Other
)

// Idle waits, after a receive that found nothing, for a wake-up or the poll
// interval, and reports false when ctx ended. A wake-up resets the
// interval to MinPoll; a poll doubles it.
func (w *Waiter) Idle(ctx context.Context, wake <-chan struct{}) bool {
	_, r := IdleOr[struct{}](ctx, w, wake, nil)
	return r != Done
}

// IdleOr is Idle that also ends when a value comes on other (nil: never),
// which it returns; the interval is then unchanged.
func IdleOr[T any](ctx context.Context, w *Waiter, wake <-chan struct{}, other <-chan T) (v T, r Reason) {
	t := time.NewTimer(w.poll)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return v, Done
	case <-wake:
		w.poll = w.b.MinPoll
		return v, Woken
	case <-t.C:
		w.poll = min(2*w.poll, w.b.MaxPoll)
		return v, Polled
	case v = <-other:
		return v, Other
	}
}

// Failed records a failed receive and returns how long to back off before
// the next one, and whether this failure began a run of failures.
func (w *Waiter) Failed(now time.Time) (wait time.Duration, first bool) {
	if w.since.IsZero() {
		w.since, w.failures, w.delay = now, 0, w.b.MinBackoff
		first = true
	}
	w.failures++
	wait = w.delay
	w.delay = min(2*w.delay, w.b.MaxBackoff)
	return wait, first
}

// Failures is how many receives the current run of failures counts.
func (w *Waiter) Failures() int { return w.failures }

// Recovered records a successful receive; ended tells whether it ended a
// run of failures, which lasted down over failures attempts.
func (w *Waiter) Recovered(now time.Time) (down time.Duration, failures int, ended bool) {
	if w.since.IsZero() {
		return 0, 0, false
	}
	down, failures = now.Sub(w.since), w.failures
	w.since, w.failures, w.delay = time.Time{}, 0, 0
	return down, failures, true
}

// Sleep waits d, or less if wake fires (nil: never); false when ctx ended.
func Sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-wake:
	case <-ctx.Done():
		return false
	}
	return true
}

// Receive calls recv until it returns something or an error, waiting
// between empty receives as Idle does; wake gives the queue's wake-up
// channel, taken before each receive so that a send during it is not
// missed. recv gets a context that ctx's end does not cancel (the database
// could lease rows whose result the driver then drops), bounded by
// DefaultReceiveTimeout. Receive returns ctx's error once ctx ends.
func Receive[T any](ctx context.Context, w *Waiter, wake func() <-chan struct{}, recv func(ctx context.Context) ([]T, error)) ([]T, error) {
	for {
		ch := wake()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultReceiveTimeout)
		got, err := recv(rctx)
		cancel()
		if err != nil {
			return got, err
		}
		if len(got) > 0 {
			w.Found()
			return got, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !w.Idle(ctx, ch) {
			return nil, ctx.Err()
		}
	}
}
