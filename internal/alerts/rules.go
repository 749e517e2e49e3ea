package alerts

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ferrybus/ferry/queue"
)

// The evaluation of each kind of rule. Each runs with Engine.mu held.

// evalRate evaluates a FailureRate rule over its window. It fires at or
// above the threshold with at least MinMessages attempts in the window; it
// resolves below the threshold with at least MinMessages attempts, or when
// the window holds no failed attempt at all. With fewer attempts and some
// failures (traffic that stopped, retries backing off) it stays as it is:
// too few to tell.
func (e *Engine) evalRate(i int, r Rule, now time.Time) {
	rt := e.obs[r.Endpoint].rate(i)
	handled, failed := rt.sum(now)
	total := handled + failed
	var ratio float64
	if total > 0 {
		ratio = float64(failed) / float64(total)
	}
	enough := total >= int64(r.MinMessages)
	msg := fmt.Sprintf("endpoint %s: %d of %d attempts failed in the last %s (%.1f%%; threshold %.1f%% with at least %d attempts)",
		r.Endpoint, failed, total, r.Window, 100*ratio, 100*r.Threshold, r.MinMessages)
	e.set(i, r.Endpoint, enough && ratio >= r.Threshold, failed == 0 || (enough && ratio < r.Threshold), ratio, msg, now)
}

// sampled is one queue's sample.
type sampled struct {
	c   queue.Counts
	err error
}

// sample counts every watched queue whose rules run now, at once, each
// within SampleTimeout. A queue that cannot be counted is logged once per
// outage and left out: its alerts stay as they are.
func (e *Engine) sample(ctx context.Context) map[string]queue.Counts {
	out := map[string]queue.Counts{}
	if len(e.queues) == 0 {
		return out
	}
	res := make(map[string]sampled, len(e.queues))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for uri, w := range e.queues {
		if w.active != nil && !w.active() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, e.cfg.SampleTimeout)
			defer cancel()
			c, err := w.q.Count(sctx)
			mu.Lock()
			res[uri] = sampled{c, err}
			mu.Unlock()
		}()
	}
	wg.Wait()
	for uri, s := range res {
		w := e.queues[uri]
		switch {
		case s.err != nil && !w.down:
			w.down = true
			e.log.Warn("alerts: cannot sample queue; its alerts stay as they are until it can be counted", "queue", uri, "err", s.err)
		case s.err == nil && w.down:
			w.down = false
			e.log.Info("alerts: queue sampled again", "queue", uri)
		}
		if s.err == nil {
			out[uri] = s.c
		}
	}
	return out
}

// evalQueue evaluates a QueueDepth or QueueAge rule on a sample.
func (e *Engine) evalQueue(i int, r Rule, c queue.Counts, now time.Time) {
	if r.Kind == QueueDepth {
		n, what := c.Ready, "ready"
		if r.Total {
			n, what = c.Total(), "in all (ready, deferred, in flight)"
		}
		msg := fmt.Sprintf("queue %s holds %d messages %s (threshold %d)", r.Queue, n, what, int64(r.Threshold))
		over := float64(n) >= r.Threshold
		e.set(i, r.Queue, over, !over, float64(n), msg, now)
		return
	}
	var age time.Duration
	if !c.OldestReady.IsZero() {
		age = max(now.Sub(c.OldestReady), 0)
	}
	msg := fmt.Sprintf("queue %s: its oldest ready message has waited %s (threshold %s)", r.Queue, age.Round(time.Second), r.ThresholdDuration)
	over := age >= r.ThresholdDuration
	e.set(i, r.Queue, over, !over, age.Seconds(), msg, now)
}

// evalSilent evaluates a WorkerSilent rule on the distributor's registry.
// A worker the registry no longer holds (it stopped, or its queue was
// reclaimed and it was forgotten) resolves its alert: nothing waits for it
// any more. A standby distributor knows no workers; its rule waits.
func (e *Engine) evalSilent(i int, r Rule, now time.Time) {
	d := e.dists[r.Endpoint]
	if !d.Active() {
		return
	}
	snap := d.Registry()
	for id := range snap.Workers {
		seen, ok := snap.LastSeen[id]
		if !ok {
			continue
		}
		silent := max(now.Sub(seen), 0)
		msg := fmt.Sprintf("distributor %s: worker %s silent for %s (threshold %s)", r.Endpoint, id, silent.Round(time.Second), r.ThresholdDuration)
		over := silent > r.ThresholdDuration
		e.set(i, id, over, !over, silent.Seconds(), msg, now)
	}
	for _, a := range e.firing.ofRule(i) {
		if _, ok := snap.Workers[a.subject]; !ok {
			msg := fmt.Sprintf("distributor %s: worker %s is no longer known (it stopped, or its queue was reclaimed and it was forgotten)", r.Endpoint, a.subject)
			e.set(i, a.subject, false, true, a.value, msg, now)
		}
	}
}

// evalLock evaluates a LockLost rule: it fires when the distributor was
// active at the last evaluation and is not now, and resolves when it is
// active again.
func (e *Engine) evalLock(i int, r Rule, now time.Time) {
	active := e.dists[r.Endpoint].Active()
	was := e.wasActive[i]
	e.wasActive[i] = active
	switch {
	case active:
		e.set(i, r.Endpoint, false, true, 0, fmt.Sprintf("distributor %s holds its lock again", r.Endpoint), now)
	case was && !e.stopping.Load():
		e.set(i, r.Endpoint, true, false, 1, fmt.Sprintf("distributor %s lost its lock on the control inbox and stands by (another distributor took over, or it could not renew in time)", r.Endpoint), now)
	default:
		// Still standing by after a loss: repeat it while it lasts.
		if a := e.firing.get(i, r.Endpoint); a != nil {
			e.set(i, r.Endpoint, true, false, 1, a.message, now)
		}
	}
}
