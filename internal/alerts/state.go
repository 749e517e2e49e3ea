package alerts

import (
	"container/list"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// firingAlert is one firing alert of a rule about a subject.
type firingAlert struct {
	rule     int
	subject  string
	startsAt time.Time
	lastSent time.Time
	value    float64
	message  string
	elem     *list.Element
}

type alertKey struct {
	rule    int
	subject string
}

// tracker holds the firing alerts, at most max: the oldest is forgotten to
// make room. It is used under Engine.mu.
type tracker struct {
	max     int
	m       map[alertKey]*firingAlert
	order   *list.List // of *firingAlert, oldest first
	evicted atomic.Int64
	pending int64 // evicted since the last takeEvicted
}

func newTracker(max int) *tracker {
	return &tracker{max: max, m: map[alertKey]*firingAlert{}, order: list.New()}
}

func (t *tracker) len() int { return len(t.m) }

func (t *tracker) get(rule int, subject string) *firingAlert {
	return t.m[alertKey{rule, subject}]
}

func (t *tracker) add(rule int, subject string, now time.Time) *firingAlert {
	for len(t.m) >= t.max {
		old := t.order.Front().Value.(*firingAlert)
		t.remove(old)
		t.evicted.Add(1)
		t.pending++
	}
	a := &firingAlert{rule: rule, subject: subject, startsAt: now}
	a.elem = t.order.PushBack(a)
	t.m[alertKey{rule, subject}] = a
	return a
}

func (t *tracker) remove(a *firingAlert) {
	t.order.Remove(a.elem)
	delete(t.m, alertKey{a.rule, a.subject})
}

// ofRule lists the firing alerts of one rule.
func (t *tracker) ofRule(rule int) []*firingAlert {
	var out []*firingAlert
	for el := t.order.Front(); el != nil; el = el.Next() {
		if a := el.Value.(*firingAlert); a.rule == rule {
			out = append(out, a)
		}
	}
	return out
}

func (t *tracker) all() []*firingAlert {
	out := make([]*firingAlert, 0, len(t.m))
	for el := t.order.Front(); el != nil; el = el.Next() {
		out = append(out, el.Value.(*firingAlert))
	}
	return out
}

func (t *tracker) takeEvicted() int64 {
	n := t.pending
	t.pending = 0
	return n
}

// msgAlert is a FailureCount alert about one message: set by an observer,
// notified by the engine.
type msgAlert struct {
	rule     int
	id       string
	attempt  int
	startsAt time.Time
	notified bool   // its firing notice is queued
	outcome  string // what the endpoint did with it in the end; "" while pending
	endsAt   time.Time
	elem     *list.Element
}

// msgTracker holds the message alerts, at most max (the oldest is
// forgotten to make room). Observers add and settle them on handler
// goroutines under its own short lock; the engine drains them.
type msgTracker struct {
	max     int
	mu      sync.Mutex
	n       atomic.Int64 // len(m), read without the lock on the hot path
	m       map[alertKey]*msgAlert
	order   *list.List
	evicted atomic.Int64
	pending int64
}

func newMsgTracker(max int) *msgTracker {
	return &msgTracker{max: max, m: map[alertKey]*msgAlert{}, order: list.New()}
}

// fire records that message id reached rule's threshold at attempt; a
// message already alerted about is left as it is (once per message id).
func (t *msgTracker) fire(rule int, id string, attempt int, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := alertKey{rule, id}
	if a, ok := t.m[k]; ok {
		if a.outcome == "" {
			a.attempt = max(a.attempt, attempt)
		}
		return
	}
	for len(t.m) >= t.max {
		old := t.order.Front().Value.(*msgAlert)
		t.removeLocked(old)
		t.evicted.Add(1)
		t.pending++
	}
	a := &msgAlert{rule: rule, id: id, attempt: attempt, startsAt: now}
	a.elem = t.order.PushBack(a)
	t.m[k] = a
	t.n.Store(int64(len(t.m)))
}

// settle records the outcome of message id (at its attempt) for the rules
// given, if any of them alerts about it.
func (t *msgTracker) settle(rules []int, id, outcome string, attempt int, now time.Time) {
	if t.n.Load() == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range rules {
		if a, ok := t.m[alertKey{r, id}]; ok && a.outcome == "" {
			a.outcome, a.endsAt, a.attempt = outcome, now, max(a.attempt, attempt)
		}
	}
}

func (t *msgTracker) removeLocked(a *msgAlert) {
	t.order.Remove(a.elem)
	delete(t.m, alertKey{a.rule, a.id})
	t.n.Store(int64(len(t.m)))
}

// firing counts the message alerts notified and not yet resolved.
func (t *msgTracker) firing() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// msgNotice is a notification drained from the tracker.
type msgNotice struct {
	rule             int
	id, status       string
	value            float64
	startsAt, endsAt time.Time
	message          string
}

// drain returns the notifications due: a firing notice for each new
// alert, a resolved notice for each settled one (which is then forgotten).
func (t *msgTracker) drain() []msgNotice {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []msgNotice
	for el := t.order.Front(); el != nil; {
		a := el.Value.(*msgAlert)
		el = el.Next()
		if !a.notified {
			a.notified = true
			out = append(out, msgNotice{rule: a.rule, id: a.id, status: "firing", value: float64(a.attempt), startsAt: a.startsAt,
				message: fmt.Sprintf("message %s failed its attempt %d", a.id, a.attempt)})
		}
		if a.outcome != "" {
			out = append(out, msgNotice{rule: a.rule, id: a.id, status: "resolved", value: float64(a.attempt), startsAt: a.startsAt, endsAt: a.endsAt,
				message: fmt.Sprintf("message %s was %s after %d attempts", a.id, a.outcome, a.attempt)})
			t.removeLocked(a)
		}
	}
	return out
}

func (t *msgTracker) takeEvicted() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.pending
	t.pending = 0
	return n
}
