package bus

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ferrybus/ferry/queue"
)

// Live settings: a running endpoint's threads, prefetch, retry policy and
// failure rules change without a restart and without dropping a message.
//
// Threads grow by starting threads, each of which goes into free like one
// that has finished a message. They shrink by retiring idle threads: the
// receive loop, which alone hands out work, closes the channel of each
// thread over the count that it finds idle (retireIdle), so a busy one
// finishes its message first and retires when it comes free. A thread whose
// number is under the count again before it retired simply stays. Thread
// numbers stay 0..n-1, so a worker's availabilities keep naming threads
// that exist. The retry policy and rules are compiled first and swapped in
// one pointer: a failure is decided wholly by the old settings or the new.

// MaxLiveThreads is the most threads SetThreads can grow a running inbox to
// (an inbox started with more can return to its starting count).
const MaxLiveThreads = 1024

// wakeThreads is what SetThreads puts on free to wake the receive loop to
// retire idle threads; it is no thread.
const wakeThreads = -1

// liveInbox holds the inbox settings in force while the endpoint runs.
type liveInbox struct {
	// cfg is the inbox's settings in force, a copy never changed in place.
	cfg atomic.Pointer[InboxConfig]
	// mu guards the fields below, the endpoint's threads slice and
	// changes of cfg and the recovery settings.
	mu      sync.Mutex
	want    int  // threads wanted: numbers from want up retire once idle
	running bool // threads run (between Start and Stop)
	// woken is set while a wakeThreads is on free: there is at most one,
	// so free never fills up (see Start).
	woken atomic.Bool
}

// init records the settings New was given.
func (l *liveInbox) init(in *InboxConfig) {
	c := *in
	c.Rules = slices.Clone(in.Rules)
	l.cfg.Store(&c)
}

// RestartError reports the settings that Reconfigure found changed but
// cannot change on a running endpoint; it applied all the others.
type RestartError struct {
	// Endpoint is the endpoint's name.
	Endpoint string
	// Keys are the settings that need a restart, as "inbox.workQueue".
	Keys []string
}

// Error names the endpoint and the keys.
func (e *RestartError) Error() string {
	return fmt.Sprintf("bus: endpoint %q: %s: changed, but only a restart applies it (the other settings were applied)",
		e.Endpoint, strings.Join(e.Keys, ", "))
}

// InboxSettings returns the inbox settings in force: those New was given,
// as changed since by Reconfigure and the Set methods. The zero value
// without an inbox.
func (e *Endpoint) InboxSettings() InboxConfig {
	if e.inbox == nil {
		return InboxConfig{}
	}
	c := *e.live.cfg.Load()
	c.Rules = slices.Clone(c.Rules)
	return c
}

// SetThreads changes how many messages the inbox handles at once, at once
// if it runs: new threads start taking work, and threads over the count
// stop as soon as they are idle (a busy one finishes its message first).
// No message is dropped or handled twice. n is at least 1 and, on a
// running endpoint, at most MaxLiveThreads (or the count it started with).
func (e *Endpoint) SetThreads(n int) error {
	if e.inbox == nil {
		return fmt.Errorf("bus: endpoint %q: inbox.threads: the endpoint has no inbox", e.cfg.Name)
	}
	if n < 1 {
		return fmt.Errorf("bus: endpoint %q: inbox.threads: %d: want at least 1", e.cfg.Name, n)
	}
	e.live.mu.Lock()
	if err := e.checkThreadsLocked(n); err != nil {
		e.live.mu.Unlock()
		return err
	}
	old, running := e.setThreadsLocked(n)
	e.live.mu.Unlock()
	e.threadsChanged(old, n, running)
	return nil
}

// checkThreadsLocked validates a thread count against what the running
// endpoint can grow to. Call with live.mu held.
func (e *Endpoint) checkThreadsLocked(n int) error {
	if e.live.running && n > cap(e.free)-1 {
		return fmt.Errorf("bus: endpoint %q: inbox.threads: %d is more than the %d a running endpoint can grow to; restart it", e.cfg.Name, n, cap(e.free)-1)
	}
	return nil
}

// setThreadsLocked records n threads and, while the endpoint runs, starts
// the missing ones and wakes the receive loop to retire the idle ones over
// n. It returns the count before and whether the endpoint runs. Call with
// live.mu held, n checked.
func (e *Endpoint) setThreadsLocked(n int) (old int, running bool) {
	old = e.Threads()
	e.storeCfgLocked(func(c *InboxConfig) { c.Threads = n })
	if !e.live.running {
		return old, false
	}
	e.live.want = n
	if n != old && e.hooks.Resized != nil {
		// Before the new threads can be reported idle: a role that drops
		// threads over its count must know the new count first.
		e.hooks.Resized(n)
	}
	for i := range n {
		if i >= len(e.threads) || e.threads[i] == nil {
			e.addThreadLocked(i)
		}
	}
	if len(e.threads) > n && e.live.woken.CompareAndSwap(false, true) {
		e.free <- wakeThreads // never blocks: see Start
	}
	return old, true
}

// threadsChanged logs a new thread count.
func (e *Endpoint) threadsChanged(old, n int, running bool) {
	if old == n {
		return
	}
	e.log.Info("inbox threads changed", "from", old, "to", n, "running", running)
}

// SetPrefetch changes how many received messages may wait in memory for a
// free thread: -1 none, 0 as many as there are threads. The receive loop
// uses it from its next receive on; a fuller buffer than the new size
// drains into the threads as usual.
func (e *Endpoint) SetPrefetch(n int) error {
	if e.inbox == nil {
		return fmt.Errorf("bus: endpoint %q: inbox.prefetch: the endpoint has no inbox", e.cfg.Name)
	}
	if n < -1 {
		return fmt.Errorf("bus: endpoint %q: inbox.prefetch: %d: want -1 (off), 0 (as many as threads) or more", e.cfg.Name, n)
	}
	e.live.mu.Lock()
	defer e.live.mu.Unlock()
	e.storeCfgLocked(func(c *InboxConfig) { c.Prefetch = n })
	return nil
}

// SetRetry replaces the inbox's retry policy (nil: DefaultRetryPolicy). It
// decides the next failure on; a message waiting for its retry keeps the
// delay it was given.
func (e *Endpoint) SetRetry(p *RetryPolicy) error {
	return e.setRecovery(func(c *InboxConfig) {
		if p != nil {
			cp := *p
			p = &cp
		}
		c.Retry = p
	})
}

// SetRules replaces the inbox's failure rules; they decide the next
// failure on.
func (e *Endpoint) SetRules(rules []Rule) error {
	return e.setRecovery(func(c *InboxConfig) { c.Rules = slices.Clone(rules) })
}

// setRecovery applies change to a copy of the settings in force, compiles
// its recovery settings and, when they are valid, swaps both in.
func (e *Endpoint) setRecovery(change func(*InboxConfig)) error {
	if e.inbox == nil {
		return fmt.Errorf("bus: endpoint %q: inbox: the endpoint has no inbox", e.cfg.Name)
	}
	e.live.mu.Lock()
	defer e.live.mu.Unlock()
	c := *e.live.cfg.Load()
	change(&c)
	rec, err := newRecovery(&c)
	if err != nil {
		return fmt.Errorf("bus: endpoint %q: %w", e.cfg.Name, err)
	}
	e.rec.Store(rec)
	e.live.cfg.Store(&c)
	return nil
}

// Reconfigure applies new inbox settings: threads, prefetch, retry, rules,
// the on… defaults and maxBodyBytes change at once on a running endpoint
// (see SetThreads). Everything is validated first: on an error nothing
// changes, and the error names the key. A changed workQueue, errorQueue,
// lease or idempotent cannot change live: the rest is applied and a
// *RestartError names them.
func (e *Endpoint) Reconfigure(in InboxConfig) error {
	rec, threads, err := e.checkInbox(in)
	if err != nil {
		return err
	}
	e.live.mu.Lock()
	if err := e.checkThreadsLocked(threads); err != nil {
		e.live.mu.Unlock()
		return err
	}
	cur := e.live.cfg.Load()
	var restart []string
	for _, k := range []struct {
		key     string
		changed bool
	}{
		{"inbox.workQueue", in.WorkQueue != cur.WorkQueue},
		{"inbox.errorQueue", in.ErrorQueue != cur.ErrorQueue},
		{"inbox.lease", in.Lease != cur.Lease},
		{"inbox.idempotent", in.Idempotent != cur.Idempotent},
	} {
		if k.changed {
			restart = append(restart, k.key)
		}
	}
	// What cannot change live stays as it runs.
	in.WorkQueue, in.ErrorQueue, in.Lease, in.Idempotent = cur.WorkQueue, cur.ErrorQueue, cur.Lease, cur.Idempotent
	in.Rules = slices.Clone(in.Rules)
	e.rec.Store(rec)
	e.storeCfgLocked(func(c *InboxConfig) { *c = in; c.Threads = cur.Threads })
	old, running := e.setThreadsLocked(threads)
	e.live.mu.Unlock()
	e.threadsChanged(old, threads, running)
	if len(restart) > 0 {
		return &RestartError{Endpoint: e.cfg.Name, Keys: restart}
	}
	return nil
}

// CheckInbox validates new inbox settings as Reconfigure does, changing
// nothing: so that a role can check several endpoints' settings before it
// changes any. Settings that need a restart are no error here.
func (e *Endpoint) CheckInbox(in InboxConfig) error {
	_, threads, err := e.checkInbox(in)
	if err != nil {
		return err
	}
	e.live.mu.Lock()
	defer e.live.mu.Unlock()
	return e.checkThreadsLocked(threads)
}

// checkInbox validates new inbox settings and compiles their recovery
// settings; it returns them and the thread count they mean.
func (e *Endpoint) checkInbox(in InboxConfig) (*recovery, int, error) {
	if e.inbox == nil {
		return nil, 0, fmt.Errorf("bus: endpoint %q: inbox: the endpoint has no inbox", e.cfg.Name)
	}
	threads := in.Threads
	if threads == 0 {
		threads = 4 // as New: the default
	}
	if in.Threads < 0 {
		return nil, 0, fmt.Errorf("bus: endpoint %q: inbox.threads: %d is negative", e.cfg.Name, in.Threads)
	}
	if in.Prefetch < -1 {
		return nil, 0, fmt.Errorf("bus: endpoint %q: inbox.prefetch: %d: want -1 (off), 0 (as many as threads) or more", e.cfg.Name, in.Prefetch)
	}
	rec, err := newRecovery(&in)
	if err != nil {
		return nil, 0, fmt.Errorf("bus: endpoint %q: %w", e.cfg.Name, err)
	}
	return rec, threads, nil
}

// IsRestartError reports whether err is, or wraps, a *RestartError.
func IsRestartError(err error) bool {
	var re *RestartError
	return errors.As(err, &re)
}

// storeCfgLocked swaps in a changed copy of the settings in force. Call
// with live.mu held.
func (e *Endpoint) storeCfgLocked(change func(*InboxConfig)) {
	c := *e.live.cfg.Load()
	change(&c)
	e.live.cfg.Store(&c)
}

// startThreads starts n threads at Start, each idle.
func (e *Endpoint) startThreads(n int) {
	e.live.mu.Lock()
	defer e.live.mu.Unlock()
	e.threads = make([]chan queue.Delivery, 0, n)
	e.live.want, e.live.running = n, true
	e.live.woken.Store(false)
	for i := range n {
		e.addThreadLocked(i)
	}
}

// addThreadLocked starts thread number i, idle. Call with live.mu held.
func (e *Endpoint) addThreadLocked(i int) {
	ch := make(chan queue.Delivery, 1)
	if i < len(e.threads) {
		e.threads[i] = ch
	} else {
		e.threads = append(e.threads, ch)
	}
	e.workers.Add(1)
	go e.thread(i, ch)
	// Never blocks: free holds each thread number at most once and one
	// wakeThreads, and is sized for the most threads (see Start).
	e.free <- i
}

// threadCh is the work channel of thread i, which runs.
func (e *Endpoint) threadCh(i int) chan queue.Delivery {
	e.live.mu.Lock()
	defer e.live.mu.Unlock()
	return e.threads[i]
}

// closeThreads closes every thread's channel at Stop: each one finishes what
// it was given and returns. SetThreads then only records its count.
func (e *Endpoint) closeThreads() {
	e.live.mu.Lock()
	defer e.live.mu.Unlock()
	e.live.running = false
	for _, ch := range e.threads {
		if ch != nil {
			close(ch)
		}
	}
	e.threads = nil
}

// retireIdle is the receive loop's: it stops the idle threads numbered at
// or over the count SetThreads set, and drops its wake-ups. It returns the
// idle threads left. An idle thread's channel is empty (the loop gives a
// thread work only once it is idle, and it is not now), so closing it
// drops nothing.
func (e *Endpoint) retireIdle(idle []int) []int {
	if len(idle) == 0 {
		return idle
	}
	var retired []int
	kept := idle[:0]
	e.live.mu.Lock()
	for _, id := range idle {
		switch {
		case id == wakeThreads:
			e.live.woken.Store(false)
		case id >= e.live.want && e.live.running:
			close(e.threads[id])
			e.threads[id] = nil
			retired = append(retired, id)
		default:
			kept = append(kept, id)
		}
	}
	for len(e.threads) > 0 && e.threads[len(e.threads)-1] == nil {
		e.threads = e.threads[:len(e.threads)-1]
	}
	running := len(e.threads)
	e.live.mu.Unlock()
	if len(retired) > 0 {
		e.log.Debug("inbox threads retired", "threads", retired, "running", running)
		if e.hooks.Retired != nil {
			e.hooks.Retired(retired)
		}
	}
	return kept
}

// RunningThreads is how many inbox threads run now: more than Threads
// while retired threads finish their messages, 0 when stopped.
func (e *Endpoint) RunningThreads() int {
	e.live.mu.Lock()
	defer e.live.mu.Unlock()
	n := 0
	for _, ch := range e.threads {
		if ch != nil {
			n++
		}
	}
	return n
}
