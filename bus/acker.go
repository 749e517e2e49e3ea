package bus

import (
	"context"
	"fmt"

	"github.com/ferrybus/ferry/queue"
)

// maxAckBatch bounds the acks one statement carries.
const maxAckBatch = 500

// ackReq is one thread's ack, waiting for its outcome.
type ackReq struct {
	d    queue.Delivery
	done chan error
}

// acker acks for every thread of an endpoint: whatever acks have queued up
// while the previous statement ran go out together in the next one (group
// commit), so busy threads share round trips and an idle endpoint pays one
// statement per ack, as before.
type acker struct {
	q    *queue.SQLQueue
	reqs chan ackReq
	stop chan struct{}
	done chan struct{}
}

func newAcker(q *queue.SQLQueue) *acker {
	a := &acker{q: q, reqs: make(chan ackReq, maxAckBatch), stop: make(chan struct{}), done: make(chan struct{})}
	go a.run()
	return a
}

func (a *acker) run() {
	defer close(a.done)
	batch := make([]ackReq, 0, maxAckBatch)
	ds := make([]queue.Delivery, 0, maxAckBatch)
	for {
		select {
		case r := <-a.reqs:
			batch = append(batch[:0], r)
		case <-a.stop:
			return
		}
	more:
		for len(batch) < maxAckBatch {
			select {
			case r := <-a.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		ds = ds[:0]
		for _, r := range batch {
			ds = append(ds, r.d)
		}
		ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
		acked, err := a.q.AckMany(ctx, ds)
		cancel()
		for _, r := range batch {
			switch {
			case err != nil:
				r.done <- err
			case acked[r.d.ID]:
				r.done <- nil
			default:
				r.done <- fmt.Errorf("queue %s: ack %s: %w", a.q.URI(), r.d.MessageID, queue.ErrLeaseLost)
			}
		}
	}
}

// ack queues d and waits for its outcome. After close it acks directly.
func (a *acker) ack(ctx context.Context, d queue.Delivery) error {
	r := ackReq{d: d, done: make(chan error, 1)}
	select {
	case a.reqs <- r:
	case <-a.stop:
		return a.q.Ack(ctx, d)
	}
	select {
	case err := <-r.done:
		return err
	case <-a.done:
		// Stopped before our turn: ack it ourselves.
		select {
		case err := <-r.done:
			return err
		default:
			return a.q.Ack(ctx, d)
		}
	}
}

// close stops the acker once it has answered what it took.
func (a *acker) close() {
	close(a.stop)
	<-a.done
}

// ack acks d through the endpoint's acker.
func (e *Endpoint) ack(ctx context.Context, d queue.Delivery) error {
	if e.acks == nil {
		return e.inbox.Ack(ctx, d)
	}
	return e.acks.ack(ctx, d)
}
