package distributor

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor/control"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// regWorker is one worker session announcing threads to a registry.
type regWorker struct {
	id, session string
}

func (w regWorker) announce(r *registry, now time.Time, threads ...int) {
	for _, t := range threads {
		r.available(control.ThreadAvailable{WorkerID: w.id, Session: w.session, Inbox: "sql://default/" + w.id,
			Thread: t, SentAt: now, ValidFor: time.Hour}, now)
	}
}

// takeOf takes a turn and checks that it is worker id's, returning what it took.
func takeOf(t *testing.T, r *registry, now time.Time, per, quantum int, id string) ([]*availability, int) {
	t.Helper()
	tu, ok := r.take(now, per, quantum)
	if !ok {
		t.Fatalf("took nothing, want a turn of %s", id)
	}
	for _, a := range tu.as {
		if a.worker != id || tu.worker != id {
			t.Fatalf("took an availability of %s in a turn of %s, want %s", a.worker, tu.worker, id)
		}
	}
	if tu.limit > per*len(tu.as) {
		t.Fatalf("limit %d for %d availabilities of %d each: more than they asked for", tu.limit, len(tu.as), per)
	}
	return tu.as, tu.limit
}

// noTurn checks that no worker can be served now.
func noTurn(t *testing.T, r *registry, now time.Time, per, quantum int, why string) {
	t.Helper()
	if tu, ok := r.take(now, per, quantum); ok {
		t.Fatalf("%s, yet %s was served", why, tu.worker)
	}
}

// Workers are served in the order their availabilities arrived, a worker
// with a move in flight is passed over, and no worker is served twice while
// another waits.
func TestRegistryServesWorkersInTurns(t *testing.T) {
	r := newRegistry()
	now := time.Now()
	a, b, c := regWorker{"a", bus.NewID()}, regWorker{"b", bus.NewID()}, regWorker{"c", bus.NewID()}
	const per, quantum = 1000, 256 // one availability per turn
	a.announce(r, now, 0, 1, 2)
	b.announce(r, now, 0)
	c.announce(r, now, 0, 1)

	as, _ := takeOf(t, r, now, per, quantum, "a")
	bs, _ := takeOf(t, r, now, per, quantum, "b")
	// a has more waiting, but its move is in flight: c's turn.
	cs, _ := takeOf(t, r, now, per, quantum, "c")
	noTurn(t, r, now, per, quantum, "every worker with availabilities waiting has a move in flight")
	r.settle(as, per, per, true)
	r.release("a")
	r.settle(cs, per, per, true)
	r.release("c")
	// Served in the order a, b, c, each going to the back: a is next, then
	// c (b has nothing waiting).
	takeOf(t, r, now, per, quantum, "a")
	takeOf(t, r, now, per, quantum, "c")
	r.settle(bs, per, per, true)
	r.release("b")
	noTurn(t, r, now, per, quantum, "b has nothing waiting and a and c have moves in flight")
}

// With small send counts one turn takes every waiting availability of the
// worker: one move serves them all.
func TestRegistryTurnTakesWaitingAvailabilities(t *testing.T) {
	r := newRegistry()
	now := time.Now()
	a, b := regWorker{"a", bus.NewID()}, regWorker{"b", bus.NewID()}
	a.announce(r, now, 0, 1)
	b.announce(r, now, 0)
	a.announce(r, now, 2, 3)
	as, limit := takeOf(t, r, now, 5, 256, "a")
	if len(as) != 4 || limit != 20 {
		t.Fatalf("took %d availabilities with limit %d, want 4 and 20", len(as), limit)
	}
	// Seven moved: the first is spent, the partly used second with it (the
	// inbox ran dry: it served its batch), the other two go back in order.
	r.settle(as, 5, 7, false)
	r.release("a")
	if s := r.snapshot(now); !slices.Equal(s.Threads["a"], []int{2, 3}) {
		t.Fatalf("a's threads waiting %v, want [2 3]", s.Threads["a"])
	}
}

// An availability of a send count larger than the quantum is served over
// several turns, alternating with the other workers, and takes no more in
// all than the send count.
func TestRegistryLargeSendCountTakesTurns(t *testing.T) {
	r := newRegistry()
	now := time.Now()
	a, b := regWorker{"a", bus.NewID()}, regWorker{"b", bus.NewID()}
	const per, quantum = 1000, 256
	a.announce(r, now, 0)
	b.announce(r, now, 0)
	took := map[string]int{}
	var order []string
	for range 20 {
		tu, ok := r.take(now, per, quantum)
		if !ok {
			break
		}
		order = append(order, tu.worker)
		took[tu.worker] += tu.limit
		r.settle(tu.as, per, tu.limit, true)
		r.release(tu.worker)
	}
	if took["a"] != per || took["b"] != per {
		t.Fatalf("took %v, want %d each", took, per)
	}
	for i := 1; i < len(order); i++ {
		if order[i] == order[i-1] {
			t.Fatalf("turns %v: a worker served twice in a row while the other waited", order)
		}
	}
}

// Moves to two workers race for a few messages: the one that got them goes
// to the back of the line, the one that found nothing keeps its place.
func TestRegistryEmptyMoveKeepsItsTurn(t *testing.T) {
	r := newRegistry()
	now := time.Now()
	a, b := regWorker{"a", bus.NewID()}, regWorker{"b", bus.NewID()}
	a.announce(r, now, 0)
	b.announce(r, now, 0)
	as, _ := takeOf(t, r, now, 5, 256, "a")
	bs, _ := takeOf(t, r, now, 5, 256, "b")
	r.settle(bs, 5, 3, false)
	r.release("b")
	b.announce(r, now, 0)
	r.settle(as, 5, 0, false)
	r.release("a")
	takeOf(t, r, now, 5, 256, "a")
	takeOf(t, r, now, 5, 256, "b")
}

// A thread that announces itself while a move holds its availability asks
// anew (it went busy and idle again): the move takes no more than the held
// ones ask for, and afterwards the thread has one availability, whether
// the held one was spent or not.
func TestRegistryAnnouncementDuringMove(t *testing.T) {
	now := time.Now()
	w := regWorker{"a", bus.NewID()}
	for _, used := range []bool{true, false} {
		r := newRegistry()
		w.announce(r, now, 0, 1)
		as, limit := takeOf(t, r, now, 5, 256, "a")
		if len(as) != 2 || limit != 10 {
			t.Fatalf("took %d availabilities with limit %d, want 2 and 10", len(as), limit)
		}
		w.announce(r, now.Add(time.Second), 0, 1)
		n := 0
		if used {
			n = limit
		}
		r.settle(as, 5, n, n == limit)
		r.release("a")
		if got := r.count(now); got != 2 {
			t.Fatalf("used %v: %d availabilities after the move, want 2 (one per thread)", used, got)
		}
		if s := r.snapshot(now); !slices.Equal(s.Threads["a"], []int{0, 1}) {
			t.Fatalf("used %v: threads waiting %v, want [0 1]", used, s.Threads["a"])
		}
	}
}

// A move to one worker that does not come back holds up only that worker:
// the others are served meanwhile.
func TestSlowMoveToOneWorkerDoesNotStallOthers(t *testing.T) {
	eachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		const slowQ, fastQ = "sql://default/it-slow-work", "sql://default/it-fast-work"
		d := newIT(t, conns, Config{ReclaimAfter: time.Hour, DistributeSendCount: 1})
		release := make(chan struct{})
		var once sync.Once
		d.hooks.beforeMove = func(w, s string) {
			if w == "slow" {
				<-release
			}
		}
		startIT(t, d)
		// Before the distributor's Stop (cleanups run last first).
		t.Cleanup(func() { once.Do(func() { close(release) }) })
		testkit.Eventually(t, 10*time.Second, "distributor active", d.Active)
		enqueue(t, conns, itInbox, 10)
		slow, fast := bus.NewID(), bus.NewID()
		d.onAvailable(ctx, control.ThreadAvailable{WorkerID: "slow", Session: slow, Inbox: slowQ, SentAt: time.Now(), ValidFor: time.Hour})
		for i := range 3 {
			d.onAvailable(ctx, control.ThreadAvailable{WorkerID: "fast", Session: fast, Inbox: fastQ, Thread: i, SentAt: time.Now(), ValidFor: time.Hour})
		}
		testkit.Eventually(t, 10*time.Second, "the fast worker served while the slow move hangs", func() bool {
			return testkit.Count(t, conns, fastQ).Total() == 3
		})
		once.Do(func() { close(release) })
		testkit.Eventually(t, 10*time.Second, "the slow worker served once its move goes on", func() bool {
			return testkit.Count(t, conns, slowQ).Total() == 1
		})
	})
}

// Moves run at once, yet a worker whose moves end sooner is at most one
// turn ahead of another waiting worker, unless that one's move is slow.
func TestRegistryAtMostOneTurnAhead(t *testing.T) {
	r := newRegistry()
	now := time.Now()
	a, b := regWorker{"a", bus.NewID()}, regWorker{"b", bus.NewID()}
	const per, quantum = 1000, 256
	a.announce(r, now, 0, 1)
	b.announce(r, now, 0, 1)
	as, _ := takeOf(t, r, now, per, quantum, "a")
	takeOf(t, r, now, per, quantum, "b")
	r.settle(as, per, quantum, true)
	r.release("a")
	// b's turn began after a's: a may have its next one meanwhile.
	as, _ = takeOf(t, r, now, per, quantum, "a")
	r.settle(as, per, quantum, true)
	r.release("a")
	// a had a turn since b's began: it waits for b, for up to slowTurn.
	tu, ok := r.take(now, per, quantum)
	if ok {
		t.Fatalf("%s served again during b's one turn", tu.worker)
	}
	if tu.retry <= 0 || tu.retry > slowTurn {
		t.Fatalf("retry in %s, want within %s", tu.retry, slowTurn)
	}
	takeOf(t, r, now.Add(slowTurn), per, quantum, "a")
}

// Forgetting a stopped session after its queue was returned leaves alone a
// newer session of the same worker that began meanwhile (a restart while
// the reclaim ran): it is alive, and forgetting it made its next move look
// like one to a gone worker, whose handed-over work was then released while
// it handled it (chaos sigterm-all: unexplained duplicates).
func TestForgetKeepsANewerSession(t *testing.T) {
	r := newRegistry()
	now := time.Now()
	old := regWorker{"w1", bus.NewID()}
	old.announce(r, now, 0)
	w := r.stopping(control.Stopping{WorkerID: old.id, Session: old.session, Inbox: "sql://default/w1", SentAt: now}, now)
	if w == nil || !w.stopping {
		t.Fatalf("stopping = %+v, want the old session, stopping", w)
	}
	next := regWorker{"w1", bus.NewID()}
	r.started(control.Started{WorkerID: next.id, Session: next.session, Inbox: "sql://default/w1", Threads: 1, SentAt: now}, now)
	next.announce(r, now, 0)
	if _, ok := r.forget(old.id, old.session, now.Add(time.Second)); ok {
		t.Fatal("forget of the stopped session removed the newer one")
	}
	if s := r.snapshot(now); s.Workers["w1"] != next.session || s.Available["w1"] != 1 {
		t.Fatalf("registry after the forget: %+v, want the newer session with its thread", s)
	}
	if session, ok := r.forget(next.id, next.session, now.Add(time.Second)); !ok || session != next.session {
		t.Fatalf("forget of the silent newer session = %q, %v; want it forgotten", session, ok)
	}
}
