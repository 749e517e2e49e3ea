package queue

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Paused queues (Pauses): their consumers stop taking messages until they
// are resumed. The state is in the database (ferry_paused), so a pause
// reaches every process; each store polls it once a second for all its
// queues, and Queue.Paused is an atomic load.

// pausePoll is how often a store reads its paused queues, once something
// asked Queue.Paused.
const pausePoll = time.Second

// pauseReadTimeout bounds one read of the paused queues.
const pauseReadTimeout = 2 * time.Second

// maxPaused bounds the paused queues a store keeps in memory; a store
// with more (by hand) sees only the first, by name.
const maxPaused = 10_000

// PausedQueue is one paused queue of a store.
type PausedQueue struct {
	// Name is the queue's name within its store.
	Name string `json:"name"`
	// Since is when it was paused.
	Since time.Time `json:"since"`
}

// PauseQueue pauses the queue called name.
func (s *sqlStore) PauseQueue(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("queue: pause: %w", err)
	}
	if _, err := s.exec(ctx, s.q.pause, name, micros(time.Now())); err != nil {
		return fmt.Errorf("queue: pause %s: %w", s.uri(name), err)
	}
	return nil
}

// ResumeQueue ends the pause of the queue called name.
func (s *sqlStore) ResumeQueue(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("queue: resume: %w", err)
	}
	if _, err := s.exec(ctx, s.q.resume, name); err != nil {
		return fmt.Errorf("queue: resume %s: %w", s.uri(name), err)
	}
	return nil
}

// Paused lists the paused queues, by name.
func (s *sqlStore) Paused(ctx context.Context) ([]PausedQueue, error) {
	rows, err := s.db.QueryContext(ctx, s.q.pausedList)
	if err != nil {
		return nil, fmt.Errorf("queue: list paused queues: %w", err)
	}
	defer rows.Close()
	out := []PausedQueue{}
	for rows.Next() && len(out) < maxPaused {
		var p PausedQueue
		var at int64
		if err := rows.Scan(&p.Name, &at); err != nil {
			return nil, fmt.Errorf("queue: list paused queues: %w", err)
		}
		p.Since = fromMicros(at)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("queue: list paused queues: %w", err)
	}
	return out, nil
}

func (s *sqlStore) uri(name string) string { return URI{Connection: s.opts.Name, Queue: name}.String() }

// Paused reports whether the queue is paused, as its store last read.
func (q *sqlQueue) Paused() bool { return q.store.pauses.paused(q.store, q.name) }

// pauseWatcher follows a store's paused queues: started by the first
// question, it reads them every pausePoll until the store closes.
type pauseWatcher struct {
	mu      sync.Mutex
	started bool
	closed  bool
	stop    chan struct{}
	done    chan struct{}
	set     atomic.Pointer[map[string]bool]
}

// paused answers from the last read; the first question reads at once.
func (w *pauseWatcher) paused(s *sqlStore, name string) bool {
	set := w.set.Load()
	if set == nil {
		w.start(s)
		if set = w.set.Load(); set == nil {
			return false // closed
		}
	}
	return (*set)[name]
}

// start reads the paused queues once, so that a queue paused before its
// consumer started is never received from, then polls.
func (w *pauseWatcher) start(s *sqlStore) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started || w.closed {
		return
	}
	w.started = true
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	var missingLogged bool
	w.read(s, &missingLogged)
	if w.set.Load() == nil {
		w.set.Store(&map[string]bool{}) // unreadable: none paused until a read succeeds
	}
	go w.loop(s, missingLogged)
}

func (w *pauseWatcher) loop(s *sqlStore, missingLogged bool) {
	defer close(w.done)
	t := time.NewTicker(pausePoll)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.read(s, &missingLogged)
		}
	}
}

// read reads the paused queues and logs each change. A failed read keeps
// what was known: an outage is logged by the store's health checks.
func (w *pauseWatcher) read(s *sqlStore, missingLogged *bool) {
	ctx, cancel := context.WithTimeout(context.Background(), pauseReadTimeout)
	defer cancel()
	ps, err := s.Paused(ctx)
	if err != nil {
		if IsMissingTable(err) && !*missingLogged {
			*missingLogged = true
			s.log.Warn("paused queues cannot be read: the database lacks migration 0009 (run ferry migrate); no queue counts as paused",
				"connection", s.opts.Name, "err", err)
		}
		return
	}
	next := make(map[string]bool, len(ps))
	for _, p := range ps {
		next[p.Name] = true
	}
	prev := w.set.Load()
	var old map[string]bool
	if prev != nil {
		old = *prev
	}
	for _, name := range slices.Sorted(maps.Keys(next)) {
		if !old[name] {
			s.log.Info("queue paused", "queue", s.uri(name))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(old)) {
		if !next[name] {
			s.log.Info("queue resumed", "queue", s.uri(name))
		}
	}
	w.set.Store(&next)
}

// close stops the polling.
func (w *pauseWatcher) close() {
	w.mu.Lock()
	started := w.started && !w.closed
	w.closed = true
	w.mu.Unlock()
	if started {
		close(w.stop)
		<-w.done
	}
}
