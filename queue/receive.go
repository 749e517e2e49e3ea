package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/ferrybus/ferry/internal/waiter"
	"sort"
	"time"
)

// Receive leases up to max visible messages, highest priority then oldest first.
func (q *sqlQueue) Receive(ctx context.Context, max int, lease time.Duration) ([]Delivery, error) {
	if max <= 0 {
		return nil, nil
	}
	if lease <= 0 {
		return nil, q.errorf("receive", fmt.Errorf("lease must be positive, got %s", lease))
	}
	now := time.Now()
	token := newLeaseToken()
	unlock := q.store.lockWrites()
	q.store.ops.Add(1)
	rows, err := q.store.consumeQuery(ctx, q.store.q.receive, micros(now.Add(lease)), token, q.name, micros(now), max)
	q.store.failed(ctx, err)
	if err != nil {
		unlock()
		return nil, q.errorf("receive", err)
	}
	ds, err := q.scan(rows)
	unlock()
	if err != nil {
		return nil, q.errorf("receive", err)
	}
	q.store.wrote(int64(len(ds)))
	sortDeliveries(ds)
	return ds, nil
}

// Take removes up to max visible messages, highest priority then oldest
// first, and returns them unleased: one DELETE … RETURNING (on PostgreSQL
// prepared, like the receive).
func (q *sqlQueue) Take(ctx context.Context, max int) ([]Delivery, error) {
	if max <= 0 {
		return nil, nil
	}
	unlock := q.store.lockWrites()
	q.store.ops.Add(1)
	rows, err := q.store.consumeQuery(ctx, q.store.q.take, q.name, micros(time.Now()), max)
	q.store.failed(ctx, err)
	if err != nil {
		unlock()
		return nil, q.errorf("take", err)
	}
	ds, err := q.scan(rows)
	unlock()
	if err != nil {
		return nil, q.errorf("take", err)
	}
	q.store.wrote(int64(len(ds)))
	sortDeliveries(ds)
	return ds, nil
}

// sortDeliveries puts a batch in receive order: RETURNING keeps no order.
func sortDeliveries(ds []Delivery) {
	sort.Slice(ds, func(i, j int) bool {
		if ds[i].Priority != ds[j].Priority {
			return ds[i].Priority > ds[j].Priority
		}
		return ds[i].ID < ds[j].ID
	})
}

// ReceiveGiven returns up to max messages handed over leased to token by a
// fenced move (see Handoff), whose lease has not ended, highest priority
// then oldest first, skipping the row ids in skip. It is one SELECT: the
// move was the delivery, so nothing is written.
func (q *sqlQueue) ReceiveGiven(ctx context.Context, token int64, max int, skip []int64) ([]Delivery, error) {
	if max <= 0 {
		return nil, nil
	}
	if token == 0 {
		return nil, q.errorf("receive given", ErrNotLeased)
	}
	if skip == nil {
		skip = []int64{} // an empty list, not NULL: NULL would match no row
	}
	q.store.ops.Add(1)
	rows, err := q.store.consumeQuery(ctx, q.store.q.receiveGiven, q.name, token, micros(time.Now()), q.store.d.IDList(skip), max)
	q.store.failed(ctx, err)
	if err != nil {
		return nil, q.errorf("receive given", err)
	}
	ds, err := q.scan(rows)
	if err != nil {
		return nil, q.errorf("receive given", err)
	}
	return ds, nil
}

// Wake returns a channel closed at the next enqueue signal for this queue.
// Take it before Receive, so that a message enqueued in between is not missed.
func (q *sqlQueue) Wake() <-chan struct{} {
	return q.store.wake(q.name)
}

// MaxPoll is the longest an idle receiver of this queue should wait between
// polls when no wake-up arrives (the store's Options.MaxPoll).
func (q *sqlQueue) MaxPoll() time.Duration { return q.store.opts.MaxPoll }

// minPoll is the first idle wait of ReceiveWait; it doubles up to MaxPoll.
const minPoll = 10 * time.Millisecond

// ReceiveWait leases up to max visible messages, waiting while there are none
// until a wake-up arrives or an idle poll interval passes (doubling from 10ms
// to the store's MaxPoll). It returns at least one message, or ctx's error.
func (q *sqlQueue) ReceiveWait(ctx context.Context, max int, lease time.Duration) ([]Delivery, error) {
	w := waiter.New(waiter.Bounds{MinPoll: minPoll, MaxPoll: q.store.opts.MaxPoll})
	return waiter.Receive(ctx, w, q.Wake, func(rctx context.Context) ([]Delivery, error) {
		return q.Receive(rctx, max, lease)
	})
}

// MarkStarted records that a handler is about to start on the leased
// delivery d and returns how many handlers had started on the message since
// its last recorded outcome, this one not included. The count is kept in
// the row: a Release that records headers (a failure) or a Move starts it
// again from zero. Callers mark only the rare deliveries that follow one
// without an outcome, so that the hot path pays no extra statement.
func (q *sqlQueue) MarkStarted(ctx context.Context, d Delivery) (int, error) {
	if err := q.checkLeased("mark started", d); err != nil {
		return 0, err
	}
	unlock := q.store.lockWrites()
	defer unlock()
	q.store.ops.Add(1)
	var n int
	err := q.store.consume.QueryRowxContext(ctx, q.store.q.markStarted, d.ID, d.LeaseToken).Scan(&n)
	q.store.failed(ctx, err)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, q.errorf("mark started "+d.MessageID, ErrLeaseLost)
	}
	if err != nil {
		return 0, q.errorf("mark started "+d.MessageID, err)
	}
	q.store.wrote(1)
	return n - 1, nil
}
