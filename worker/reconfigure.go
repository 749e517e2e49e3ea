package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor/control"
)

// Live settings of a running worker. A resize of its endpoint (SetThreads,
// Reconfigure) is announced to the distributor as a Started of the same
// session with the new thread count: the distributor then drops the
// availabilities of the threads that are gone, and the new threads announce
// themselves as idle threads do. A retired thread's availability is never
// repeated.

// AvailabilityInterval is the interval in force (SetAvailabilityInterval).
func (w *Worker) AvailabilityInterval() time.Duration { return time.Duration(w.interval.Load()) }

// SetAvailabilityInterval changes how often idle threads repeat their
// availability and a busy worker its heartbeat, from the next announcement
// on. d is positive.
func (w *Worker) SetAvailabilityInterval(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("worker %q: worker.availabilityInterval: %s: want more than 0", w.cfg.ID, d)
	}
	if old := time.Duration(w.interval.Swap(int64(d))); old != d {
		w.log.Info("availability interval changed", "from", old, "to", d)
		w.poke()
	}
	return nil
}

// SetThreads changes the worker's thread count live (bus.Endpoint.SetThreads)
// and announces it to the distributor.
func (w *Worker) SetThreads(n int) error { return w.ep.SetThreads(n) }

// Reconfigure applies new settings to a running worker: its inbox's live
// settings (bus.Endpoint.Reconfigure) and the availability interval (zero:
// the default). Everything is validated first; on an error nothing
// changes. A changed id or distributor control queue, and inbox settings
// that cannot change live, are reported in a *bus.RestartError naming the
// keys; the rest is applied.
func (w *Worker) Reconfigure(in bus.InboxConfig, cfg Config) error {
	interval := cfg.AvailabilityInterval
	if interval < 0 {
		return fmt.Errorf("worker %q: worker.availabilityInterval: %s is negative", w.cfg.ID, interval)
	}
	if interval == 0 {
		interval = DefaultAvailabilityInterval
	}
	if err := w.ep.CheckInbox(in); err != nil {
		return fmt.Errorf("worker %q: %w", w.cfg.ID, err)
	}
	var restart []string
	if cfg.ID != w.cfg.ID {
		restart = append(restart, "worker.id")
	}
	if cfg.DistributorControlQueue != w.cfg.DistributorControlQueue {
		restart = append(restart, "worker.distributorControlQueue")
	}
	var re *bus.RestartError
	if err := w.ep.Reconfigure(in); errors.As(err, &re) {
		restart = append(re.Keys, restart...)
	} else if err != nil {
		return fmt.Errorf("worker %q: %w", w.cfg.ID, err)
	}
	if err := w.SetAvailabilityInterval(interval); err != nil {
		return err
	}
	if len(restart) > 0 {
		return &bus.RestartError{Endpoint: w.cfg.ID, Keys: restart}
	}
	return nil
}

// poke wakes the announcement loop.
func (w *Worker) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// threadsResized is the endpoint's Resized hook: threads over the new
// count are idle no more, and the new count is announced.
func (w *Worker) threadsResized(n int) {
	w.mu.Lock()
	for t := range w.idle {
		if t >= n {
			delete(w.idle, t)
		}
	}
	w.size, w.resized = n, true
	w.mu.Unlock()
	w.poke()
}

// threadsRetired is the endpoint's Retired hook.
func (w *Worker) threadsRetired(threads []int) {
	w.mu.Lock()
	for _, t := range threads {
		delete(w.idle, t)
	}
	w.mu.Unlock()
}

// announceSize tells the distributor a new thread count, once per change
// (again after a failed send).
func (w *Worker) announceSize() {
	w.mu.Lock()
	if !w.resized {
		w.mu.Unlock()
		return
	}
	w.resized = false
	n, session := w.size, w.session
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := w.send(ctx, control.Started{WorkerID: w.cfg.ID, Session: session, Inbox: w.ep.Inbox().URI(), Threads: n, SentAt: time.Now()})
	if err != nil {
		w.log.Warn("new thread count not announced; will retry", "threads", n, "err", err)
		w.mu.Lock()
		w.resized = true
		w.mu.Unlock()
		return
	}
	w.log.Info("worker resized", "threads", n, "session", session)
}
