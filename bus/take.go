package bus

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ferrybus/ferry/queue"
)

// The take mode (role.Hooks.Take) is for an inbox of soft state, which its
// senders renew: each receive takes a batch off the queue in one statement
// (queue.Consumer.Take) instead of leasing it, so a message costs its
// sender's insert and a share of one delete, and nothing else. A taken
// message is gone from the queue: nothing renews, acks or gives it back,
// and whatever would retry it or move it to the error queue discards it
// instead, logged and counted.

// fetch is the receive loop's statement: a lease of up to want messages,
// or in take mode their removal.
func (e *Endpoint) fetch(ctx context.Context, want int) ([]queue.Delivery, error) {
	if e.take {
		return e.inbox.Take(ctx, want)
	}
	return e.receive(ctx, want)
}

// takenHandOver bounds how long a stopping receive loop waits for threads
// to come free for the taken messages it still buffers.
const takenHandOver = 2 * time.Second

// handOverTaken gives the taken messages still buffered when the receive
// loop stops to threads, which handle them before Stop returns: they cannot
// be given back. idle are the threads the loop knew idle. What finds no
// thread within takenHandOver is discarded.
func (e *Endpoint) handOverTaken(idle []int, ds []queue.Delivery) {
	deadline := time.NewTimer(takenHandOver)
	defer deadline.Stop()
	for i, d := range ds {
		for len(idle) == 0 { // SetThreads' wake-up (reconfigure.go) is no thread: wait on
			select {
			case id := <-e.free:
				if id >= 0 {
					idle = append(idle, id)
				}
			case <-deadline.C:
				for _, d := range ds[i:] {
					e.discardTaken(d, e.deliveryLog(d), "", "", "still buffered when the endpoint stopped")
					e.inflight.Delete(d.ID)
				}
				return
			}
		}
		e.threadCh(idle[0]) <- d
		idle = idle[1:]
	}
}

// settleTaken marks a taken delivery settled and reports whether it was
// still open: Abandon may have closed it already.
func (e *Endpoint) settleTaken(d queue.Delivery) bool {
	v, ok := e.inflight.Load(d.ID)
	if !ok {
		return false
	}
	f := v.(*inflight)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released {
		return false
	}
	f.released = true
	return true
}

// discardTaken counts and logs a taken message that cannot be handled:
// with nothing to retry, it is discarded whatever the inbox's rules say.
// The log line is the endpoint's usual one for a discarded message.
func (e *Endpoint) discardTaken(d queue.Delivery, log *slog.Logger, kind, text, why string) {
	if !e.settleTaken(d) {
		return
	}
	log.Warn("message discarded unhandled", "why", why)
	e.count(EventDiscarded, d, kind, text)
}

// takenAck is the settler of a take-mode inbox: a taken message is gone
// already, so a handled one only counts.
type takenAck struct{ e *Endpoint }

func (takenAck) claim(context.Context, *Message) (bool, error) { return true, nil }

func (s takenAck) handled(d queue.Delivery, _ *Envelope) {
	if s.e.settleTaken(d) {
		s.e.count(EventHandled, d, "", "")
	}
}

// commitTaken commits a transactional handler's transaction in take mode,
// where there is no ack to commit with it.
func (e *Endpoint) commitTaken(d queue.Delivery, msg *Message) {
	if err := msg.tx.Commit(); err != nil {
		e.fail(d, &msg.Envelope, KindError, fmt.Errorf("transactional handler: commit: %w", err), "")
		return
	}
	if e.settleTaken(d) {
		e.count(EventHandled, d, "", "")
	}
}
