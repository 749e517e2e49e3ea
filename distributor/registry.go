package distributor

import (
	"slices"
	"sync"
	"time"

	"github.com/ferrybus/ferry/distributor/control"
	"github.com/ferrybus/ferry/queue"
)

// availability is one idle thread of one worker session.
type availability struct {
	worker  string
	session string
	inbox   string
	thread  int
	expires time.Time
	// since is when it began waiting (renewals keep it).
	since time.Time
	// used counts the messages moves took for it so far: only a move
	// capped by the quantum leaves it waiting with a part used.
	used int
	// held is set while a move holds it: it is out of the list but stays
	// in the index until an announcement of its thread replaces it.
	held bool
	// handoff and lease are the session's handoff (control.ThreadAvailable):
	// the lease its moved work gets; zero moves it unleased.
	handoff int64
	lease   time.Duration
}

// workerState is what the distributor knows of a worker.
type workerState struct {
	id       string
	session  string
	inbox    string
	threads  int
	lastSeen time.Time
	stopping bool
	// persisted is when the session was last written to ferry_workers.
	persisted time.Time
	// handoff is the session's lease token for the work moved to it
	// (control.ThreadAvailable.Handoff), 0 when it takes its work unleased:
	// once the session is gone, what is still leased with it is nobody's.
	handoff int64
}

// registry holds worker sessions and their idle threads. At rest it holds
// exactly one entry per idle thread of each live worker session: a renewed
// availability refreshes its waiting entry, a newer session replaces an
// older one's entries, and entries expire when not renewed. A thread's
// announcement while a move holds its entry is a new entry: the thread
// went busy and idle again (it took work from another availability's move;
// the worker's threads share its queue), so it asks anew. The held entry
// then does not come back unused: at most two per thread, and only while
// a move runs.
//
// Workers are served in turns: line orders the workers with waiting
// availabilities by when they began waiting, a worker served goes to the
// back, and a worker with a move in flight (busy) is passed over until it
// ends. So no worker is served twice while another waits, and one worker's
// slow move holds up nobody else.
type registry struct {
	mu      sync.Mutex
	workers map[string]*workerState
	avail   []*availability // waiting, in the order they arrived
	index   map[availKey]*availability
	line    []string        // worker ids with waiting availabilities, in turn
	busy    map[string]bool // worker ids with a move in flight
	marks   map[string]mark // per worker id, its last turn
	seq     uint64          // turns begun
	changed chan struct{}
	// held counts availabilities taken by the distribute loop and not yet
	// settled: they are live, only out of the list while a move runs.
	held int
	// ended remembers, per worker id, the last session that said Stopping
	// and was forgotten, so that its late messages cannot bring it back.
	ended map[string]string
}

type availKey struct {
	worker string
	thread int
}

func newRegistry() *registry {
	return &registry{workers: map[string]*workerState{}, index: map[availKey]*availability{},
		busy: map[string]bool{}, marks: map[string]mark{}, ended: map[string]string{}, changed: make(chan struct{})}
}

// signal wakes whoever waits on changes. Call with mu held.
func (r *registry) signal() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// wait returns a channel closed at the next change.
func (r *registry) wait() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// session admits a message of session for worker id: it reports false for a
// message of an older session, and replaces an older session with a newer
// one (dropping its availabilities). A session that stopped and was
// forgotten stays ended. Call with mu held.
func (r *registry) session(id, session, inbox string, now time.Time) (*workerState, bool) {
	if e, ok := r.ended[id]; ok && session <= e {
		return nil, false
	}
	w, ok := r.workers[id]
	if !ok {
		w = &workerState{id: id, session: session, inbox: inbox}
		r.workers[id] = w
	}
	switch {
	case session < w.session: // UUIDv7: an earlier session sorts first
		return w, false
	case session > w.session:
		r.dropWorker(id)
		w.session, w.stopping, w.handoff = session, false, 0
	}
	w.inbox = inbox
	w.lastSeen = now
	return w, true
}

// dropWorker removes every availability of a worker, held ones included
// (their move settles them as gone). Call with mu held.
func (r *registry) dropWorker(id string) {
	kept := r.avail[:0]
	for _, a := range r.avail {
		if a.worker != id {
			kept = append(kept, a)
		}
	}
	clear(r.avail[len(kept):])
	r.avail = kept
	for k := range r.index {
		if k.worker == id {
			delete(r.index, k)
		}
	}
	r.line = slices.DeleteFunc(r.line, func(w string) bool { return w == id })
}

// enqueueLocked puts a worker that has waiting availabilities at the back
// of the line, unless it is in line already. Call with mu held.
func (r *registry) enqueueLocked(id string) {
	if !slices.Contains(r.line, id) {
		r.line = append(r.line, id)
	}
}

func (r *registry) started(m control.Started, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w, ok := r.session(m.WorkerID, m.Session, m.Inbox, now); ok {
		if m.Threads > 0 && m.Threads < w.threads {
			// The running session was resized (worker.SetThreads): the
			// threads it retired want no more work.
			r.dropThreadsLocked(m.WorkerID, m.Threads)
		}
		w.threads = m.Threads
	}
}

// dropThreadsLocked removes a worker's availabilities of threads numbered
// from up, held ones included (their move settles them as gone), as
// dropWorker does for all; take clears the line. Call with mu held.
func (r *registry) dropThreadsLocked(id string, from int) {
	gone := func(a *availability) bool { return a.worker == id && a.thread >= from }
	r.avail = slices.DeleteFunc(r.avail, gone)
	for k, a := range r.index {
		if gone(a) {
			delete(r.index, k)
		}
	}
}

func (r *registry) heartbeat(m control.Heartbeat, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.session(m.WorkerID, m.Session, m.Inbox, now)
}

// available records (or renews) one idle thread.
func (r *registry) available(m control.ThreadAvailable, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.session(m.WorkerID, m.Session, m.Inbox, now)
	if !ok || w.stopping {
		return
	}
	w.handoff = m.Handoff
	expires := m.Expires()
	if !expires.After(now) {
		return // stale: it waited in the control queue too long
	}
	key := availKey{m.WorkerID, m.Thread}
	if a, ok := r.index[key]; ok && !a.held {
		// A renewal of a waiting availability. One held by a move is
		// replaced below: its thread asks anew (see registry).
		a.expires, a.session, a.inbox, a.handoff, a.lease = expires, m.Session, m.Inbox, m.Handoff, m.Lease
		return
	}
	a := &availability{worker: m.WorkerID, session: m.Session, inbox: m.Inbox, thread: m.Thread, expires: expires, since: now, handoff: m.Handoff, lease: m.Lease}
	r.index[key] = a
	r.avail = append(r.avail, a)
	r.enqueueLocked(m.WorkerID)
	r.signal()
}

// stopping ends a session: no more work goes to it.
func (r *registry) stopping(m control.Stopping, now time.Time) *workerState {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.session(m.WorkerID, m.Session, m.Inbox, now)
	if !ok {
		return nil
	}
	w.stopping = true
	r.dropWorker(m.WorkerID)
	cp := *w
	return &cp
}

// slowTurn is how long a worker's turn may hold up another worker that
// already had a turn since it began: past it, that worker's move counts as
// slow (its database, or the network to it) and the others go on.
const slowTurn = 100 * time.Millisecond

// mark is when a worker's last turn began.
type mark struct {
	seq   uint64
	began time.Time
}

// turn is one move's share of the registry: the availabilities it holds,
// the worker session they belong to and its handoff (copied: a renewal may
// change the availabilities meanwhile) and how many messages they may take.
type turn struct {
	worker, session, inbox string
	as                     []*availability
	limit                  int
	per                    int // the send count take was given: settle uses the same
	handoff                queue.Handoff
	// retry, when take found nothing to start, is when to try again
	// without waiting for a change (zero: wait for one).
	retry time.Duration
}

// take starts a move: it picks the worker whose turn it is (the first in
// line without a move in flight), removes that worker's oldest live
// availabilities from the list, as many as take quantum messages between
// them (at least one; each may take per, less what it used), and marks the
// worker busy until release. The limit is what they may take, at most
// quantum. Expired availabilities are dropped on the way. A busy worker
// keeps its place in line until its move settles.
//
// Moves run at once, so a worker whose moves end sooner could otherwise
// be served over and over during another's one turn: a worker that had a
// turn since another waiting worker's turn began waits for that turn to
// end, for up to slowTurn. Each is at most one turn ahead of the others,
// unless their moves are slow.
func (r *registry) take(now time.Time, per, quantum int) (turn, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kept := r.avail[:0]
	waiting := map[string]bool{}
	for _, a := range r.avail {
		if !a.expires.After(now) {
			r.unindexLocked(a)
			continue
		}
		waiting[a.worker] = true
		kept = append(kept, a)
	}
	clear(r.avail[len(kept):])
	r.avail = kept
	r.line = slices.DeleteFunc(r.line, func(id string) bool { return !waiting[id] && !r.busy[id] })
	var retry time.Duration
	ahead := func(id string) bool {
		for x := range r.busy {
			if m := r.marks[x]; waiting[x] && m.seq < r.marks[id].seq {
				if held := now.Sub(m.began); held < slowTurn {
					retry = max(retry, slowTurn-held)
					return true
				}
			}
		}
		return false
	}
	i := slices.IndexFunc(r.line, func(id string) bool { return waiting[id] && !r.busy[id] && !ahead(id) })
	if i < 0 {
		return turn{retry: retry}, false
	}
	id := r.line[i]
	var out []*availability
	credit := 0
	kept = r.avail[:0]
	for _, a := range r.avail {
		if a.worker == id && (len(out) == 0 || (credit < quantum && a.session == out[0].session)) {
			a.held = true
			out = append(out, a)
			credit += per - a.used
			continue
		}
		kept = append(kept, a)
	}
	clear(r.avail[len(kept):])
	r.avail = kept
	r.busy[id] = true
	r.seq++
	r.marks[id] = mark{seq: r.seq, began: now}
	r.held += len(out)
	return turn{worker: id, session: out[0].session, inbox: out[0].inbox, as: out, limit: min(credit, quantum), per: per, handoff: handoff(out)}, true
}

// release ends the turn of a worker whose move (taken by take) is over.
func (r *registry) release(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.busy, id)
	r.signal()
}

// settle ends the hold on as, taken by take with per for a move that moved
// n messages. In their order each gives what it may take until n is spent;
// one left with a part of its messages stays (with the rest) only when the
// move took all it asked for (capped is true: it stopped at its limit, not
// at the end of the inbox), else it is spent too, as one availability
// serves one batch. The others go back to the front in their order,
// unless their thread announced itself anew meanwhile.
//
// A worker that was given messages goes to the back of the line; one whose
// move found none keeps its place, so that when moves to several workers
// race for a few messages the winner's turn passes and the losers' do not.
func (r *registry) settle(as []*availability, per, n int, capped bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n > 0 && len(as) > 0 {
		id := as[0].worker
		if i := slices.Index(r.line, id); i >= 0 {
			r.line = append(slices.Delete(r.line, i, i+1), id)
		}
	}
	r.held -= len(as)
	var back []*availability
	for _, a := range as {
		a.held = false
		use := min(per-a.used, n)
		n -= use
		a.used += use
		if a.used >= per || (use > 0 && !capped) {
			r.unindexLocked(a)
			continue
		}
		back = append(back, a)
	}
	for i := len(back) - 1; i >= 0; i-- {
		r.putBackLocked(back[i])
	}
}

// discard ends the hold on as, taken by take, spending them all.
func (r *registry) discard(as []*availability) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.held -= len(as)
	for _, a := range as {
		a.held = false
		r.unindexLocked(a)
	}
}

// unindexLocked removes a from the index, unless another entry replaced it
// there. Call with mu held.
func (r *registry) unindexLocked(a *availability) {
	key := availKey{a.worker, a.thread}
	if r.index[key] == a {
		delete(r.index, key)
	}
}

// landed reports, after a move into the queue of the session that as (from
// take) belong to, whether that session ended meanwhile (it said
// Stopping, or was forgotten): then the move must be undone by returning the
// worker's queue, since nobody will reclaim it otherwise. The check runs
// under the same lock as Stopping, so either Stopping saw the moved messages
// or this sees Stopping.
func (r *registry) landed(as []*availability) (workerState, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := as[0]
	gone := workerState{id: a.worker, session: a.session, inbox: a.inbox, stopping: true, handoff: a.handoff}
	if e, ok := r.ended[a.worker]; ok && a.session <= e {
		return gone, true
	}
	w, ok := r.workers[a.worker]
	switch {
	case !ok:
		return gone, true
	case w.session == a.session && w.stopping:
		return *w, true
	case w.session > a.session:
		// A newer session of the worker began while the move ran: what was
		// handed to the old one is nobody's, but the worker lives on (not
		// stopping: its queue stays with it).
		superseded := gone
		superseded.stopping = false
		return superseded, true
	}
	return workerState{}, false
}

// putBackLocked returns an availability back from a move to the front,
// unless it was dropped meanwhile (a newer session, Stopping, forgotten).
// Call with mu held.
func (r *registry) putBackLocked(a *availability) {
	key := availKey{a.worker, a.thread}
	if r.index[key] != a {
		return
	}
	if w, ok := r.workers[a.worker]; !ok || w.session != a.session || w.stopping {
		delete(r.index, key)
		return
	}
	r.avail = append([]*availability{a}, r.avail...)
	r.enqueueLocked(a.worker)
}

// count returns the number of live availabilities, those held by a move
// in progress included.
func (r *registry) count(now time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.held
	for _, a := range r.avail {
		if a.expires.After(now) {
			n++
		}
	}
	return n
}

// silent returns the workers to reclaim from: stopping, or not heard from
// since before cutoff. Their availabilities are dropped.
func (r *registry) silent(cutoff time.Time) []workerState {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []workerState
	for id, w := range r.workers {
		if w.stopping || w.lastSeen.Before(cutoff) {
			r.dropWorker(id)
			out = append(out, *w)
		}
	}
	return out
}

// excuse moves every worker's last sighting forward by gap (not past now):
// time during which the distributor could not hear from anyone.
func (r *registry) excuse(gap time.Duration, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.workers {
		if seen := w.lastSeen.Add(gap); seen.Before(now) {
			w.lastSeen = seen
		} else {
			w.lastSeen = now
		}
	}
}

// forget removes a worker that is gone and whose queue is empty, unless it
// came back since, and returns the session it forgot.
func (r *registry) forget(id, session string, cutoff time.Time) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Only the session whose queue was returned: a newer one may have
	// begun while the reclaim ran, and it is alive.
	if w, ok := r.workers[id]; ok && w.session == session && (w.stopping || w.lastSeen.Before(cutoff)) {
		delete(r.workers, id)
		delete(r.marks, id)
		if w.stopping {
			r.ended[id] = w.session
		}
		return w.session, true
	}
	return "", false
}

// restore adds the workers a previous distributor recorded, unless a newer
// session of theirs is known already. They have no availabilities: they
// get work again when they announce, and their queues are returned if they
// stay silent. Their silence is counted from now: whatever time passed
// since the record (a takeover, a restart, an outage) this distributor
// could not have heard them, and their queues are kept for ReclaimAfter.
func (r *registry) restore(recs []queue.WorkerRecord, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range recs {
		if w, ok := r.workers[rec.ID]; ok && w.session >= rec.Session {
			continue
		}
		if e, ok := r.ended[rec.ID]; ok && rec.Session <= e {
			continue
		}
		r.workers[rec.ID] = &workerState{id: rec.ID, session: rec.Session, inbox: rec.Inbox, lastSeen: now, persisted: rec.LastSeen}
	}
}

// persistDue returns the worker's state when its record is older than every.
func (r *registry) persistDue(id string, now time.Time, every time.Duration) (workerState, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.workers[id]
	if !ok || now.Sub(w.persisted) < every {
		return workerState{}, false
	}
	w.persisted = now
	return *w, true
}

// Snapshot is the registry as seen at one moment, for tests and tooling.
type Snapshot struct {
	// Workers maps worker id to its current session.
	Workers map[string]string
	// Available counts live availabilities per worker id.
	Available map[string]int
	// Threads lists the available thread numbers per worker id.
	Threads map[string][]int
	// Waiting is, per worker id with live availabilities, when the oldest
	// of them began waiting.
	Waiting map[string]time.Time
	// LastSeen is, per worker id, when its last control message arrived.
	LastSeen map[string]time.Time
	// Sizes is how many threads each worker's session runs, as it last
	// announced (control.Started, again when it is resized).
	Sizes map[string]int
}

func (r *registry) snapshot(now time.Time) Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Snapshot{Workers: map[string]string{}, Available: map[string]int{}, Threads: map[string][]int{},
		Waiting: map[string]time.Time{}, LastSeen: map[string]time.Time{}, Sizes: map[string]int{}}
	for id, w := range r.workers {
		if !w.stopping {
			s.Workers[id] = w.session
			s.LastSeen[id] = w.lastSeen
			s.Sizes[id] = w.threads
		}
	}
	for _, a := range r.avail {
		if a.expires.After(now) {
			s.Available[a.worker]++
			s.Threads[a.worker] = append(s.Threads[a.worker], a.thread)
			if w, ok := s.Waiting[a.worker]; !ok || a.since.Before(w) {
				s.Waiting[a.worker] = a.since
			}
		}
	}
	return s
}
