package bus

import (
	"context"
	"time"
)

// Receive error backoff: short, so that handling resumes within about a
// second of the database answering again, and cut short by a wake-up of
// the queue (a send, a LISTEN reconnect, the store seeing its database
// answer again).
const (
	minErrorBackoff = 100 * time.Millisecond
	maxErrorBackoff = time.Second
)

// outage follows one run of failed receives, so that it is logged once
// when it begins and once when it ends, not at every retry.
type outage struct {
	since    time.Time // first failure; zero while receives succeed
	failures int
	delay    time.Duration // the next wait
}

// fail records a failed receive and returns how long to wait before the
// next one, and whether this failure began the outage.
func (o *outage) fail(now time.Time) (wait time.Duration, first bool) {
	if o.since.IsZero() {
		o.since, o.failures, o.delay = now, 0, minErrorBackoff
		first = true
	}
	o.failures++
	wait = o.delay
	o.delay = min(2*o.delay, maxErrorBackoff)
	return wait, first
}

// ok records a successful receive; ended tells whether it ended an outage,
// which lasted down over failures attempts.
func (o *outage) ok(now time.Time) (down time.Duration, failures int, ended bool) {
	if o.since.IsZero() {
		return 0, 0, false
	}
	down, failures = now.Sub(o.since), o.failures
	*o = outage{}
	return down, failures, true
}

// waitRetry waits d, or less if wake fires; false when ctx ended.
func waitRetry(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
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
