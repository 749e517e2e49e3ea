package queue

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Extend renews the lease of d to end lease from now.
func (q *sqlQueue) Extend(ctx context.Context, d Delivery, lease time.Duration) error {
	if err := q.checkLeased("extend", d); err != nil {
		return err
	}
	res, err := q.store.execConsume(ctx, q.store.q.extend, micros(time.Now().Add(lease)), d.ID, d.LeaseToken)
	if err != nil {
		return q.errorf("extend "+d.MessageID, err)
	}
	return q.oneRow(res, "extend", d)
}

// Ack removes handled messages: one statement where the dialect takes the
// pairs as two lists (PostgreSQL), else one per AckMaxPairs (SQLite).
func (q *sqlQueue) Ack(ctx context.Context, ds ...Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	for _, d := range ds {
		if err := q.checkLeased("ack", d); err != nil {
			return err
		}
	}
	var deleted int64
	if maxPairs := q.store.q.ackMaxPairs; maxPairs == 0 {
		ids := make([]int64, len(ds))
		toks := make([]int64, len(ds))
		for i, d := range ds {
			ids[i], toks[i] = d.ID, d.LeaseToken
		}
		defer q.store.lockWrites()()
		q.store.ops.Add(1)
		res, err := q.store.consume.ExecContext(ctx, q.store.q.ack, q.store.d.IDList(ids), q.store.d.IDList(toks))
		q.store.failed(ctx, err)
		if err != nil {
			return q.errorf("ack", err)
		}
		deleted, _ = res.RowsAffected()
		q.store.wrote(deleted)
	} else {
		defer q.store.lockWrites()()
		for start := 0; start < len(ds); start += maxPairs {
			chunk := ds[start:min(start+maxPairs, len(ds))]
			args := make([]any, 0, 2*len(chunk))
			for _, d := range chunk {
				args = append(args, d.ID, d.LeaseToken)
			}
			q.store.ops.Add(1)
			res, err := q.store.consume.ExecContext(ctx, q.store.d.Ack(len(chunk)), args...)
			q.store.failed(ctx, err)
			if err != nil {
				return q.errorf("ack", err)
			}
			n, _ := res.RowsAffected()
			q.store.wrote(n)
			deleted += n
		}
	}
	if deleted != int64(len(ds)) {
		if len(ds) == 1 {
			return q.errorf("ack "+ds[0].MessageID, ErrLeaseLost)
		}
		return q.errorf("ack", fmt.Errorf("%d of %d messages: %w", int64(len(ds))-deleted, len(ds), ErrLeaseLost))
	}
	return nil
}

// AckTx removes a handled message inside the caller's transaction on this
// queue's database: the ack takes effect only if the transaction commits.
func (q *sqlQueue) AckTx(ctx context.Context, tx Execer, d Delivery) error {
	if err := q.checkLeased("ack", d); err != nil {
		return err
	}
	q.store.ops.Add(1)
	res, err := tx.ExecContext(ctx, q.store.q.ackOne, d.ID, d.LeaseToken)
	q.store.failed(ctx, err)
	if err != nil {
		return q.errorf("ack "+d.MessageID, err)
	}
	q.store.wroteResult(res)
	return q.oneRow(res, "ack", d)
}

// AckMany removes handled messages in one statement and reports which of
// them it removed, by row id: a delivery missing from the result had lost
// its lease. It lets a caller ack for many threads at once and still tell
// each thread its own outcome.
func (q *sqlQueue) AckMany(ctx context.Context, ds []Delivery) (map[int64]bool, error) {
	acked := make(map[int64]bool, len(ds))
	// A delivery without a lease is never acked: it is reported as not
	// removed, like one whose lease was lost.
	if slices.ContainsFunc(ds, func(d Delivery) bool { return d.LeaseToken == 0 }) {
		ds = slices.DeleteFunc(slices.Clone(ds), func(d Delivery) bool { return d.LeaseToken == 0 })
	}
	if len(ds) == 0 {
		return acked, nil
	}
	ids := make([]int64, len(ds))
	toks := make([]int64, len(ds))
	for i, d := range ds {
		ids[i], toks[i] = d.ID, d.LeaseToken
	}
	args := q.store.d.AckManyArgs(ids, toks)
	defer q.store.lockWrites()()
	q.store.ops.Add(1)
	rows, err := q.store.consumeQuery(ctx, q.store.q.ackMany, args...)
	q.store.failed(ctx, err)
	if err != nil {
		return acked, q.errorf("ack", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return acked, q.errorf("ack", err)
		}
		acked[id] = true
	}
	if err := rows.Err(); err != nil {
		return acked, q.errorf("ack", err)
	}
	q.store.wrote(int64(len(acked)))
	return acked, nil
}

// Release gives a leased message back to the queue.
func (q *sqlQueue) Release(ctx context.Context, d Delivery, opts ReleaseOptions) error {
	if err := q.checkLeased("release", d); err != nil {
		return err
	}
	var headers any // NULL keeps the stored headers
	if opts.Headers != nil {
		h, err := encodeHeaders(opts.Headers)
		if err != nil {
			return q.errorf("release "+d.MessageID, err)
		}
		headers = h
	}
	uncount := 0
	if opts.Uncount {
		uncount = 1
	}
	res, err := q.store.execConsume(ctx, q.store.q.release, micros(time.Now().Add(opts.Delay)), uncount, headers, headers, d.ID, d.LeaseToken)
	if err != nil {
		return q.errorf("release "+d.MessageID, err)
	}
	if err := q.oneRow(res, "release", d); err != nil {
		return err
	}
	if opts.Delay <= 0 {
		q.store.notify(ctx, q.name)
	}
	return nil
}

// ReleaseToken ends the leases held with token on the queue's messages
// (handed over by a fenced move to a receiver known to be gone) and returns
// how many it made visible. Other leases are left alone.
func (q *sqlQueue) ReleaseToken(ctx context.Context, token int64) (int, error) {
	if token == 0 {
		return 0, ErrNotLeased
	}
	now := micros(time.Now())
	res, err := q.store.execConsume(ctx, q.store.q.releaseToken, now, q.name, token, now)
	if err != nil {
		return 0, q.errorf("release token", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, q.errorf("release token", err)
	}
	if n > 0 {
		q.store.notify(ctx, q.name)
	}
	return int(n), nil
}

// ReleaseLeased ends every lease held on the queue's messages and returns
// how many it ended. It is for a consumer that owns the queue alone, such
// as a worker's own work queue, when it starts a new session: what its
// predecessor held is handled now rather than when those leases run out.
// Delivery counts are kept, so each comes back as a redelivery.
func (q *sqlQueue) ReleaseLeased(ctx context.Context) (int, error) {
	now := micros(time.Now())
	res, err := q.store.execConsume(ctx, q.store.q.releaseLeased, now, q.name, now)
	if err != nil {
		return 0, q.errorf("release leased", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, q.errorf("release leased", err)
	}
	if n > 0 {
		q.store.notify(ctx, q.name)
	}
	return int(n), nil
}
