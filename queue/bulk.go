package queue

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// DefaultBatchSize is how many rows one bulk statement touches at most when
// BulkOptions.BatchSize is zero.
const DefaultBatchSize = 1000

// maxBatchSize bounds BulkOptions.BatchSize: every batch is one statement.
const maxBatchSize = 10000

// crossLease is how long a cross-database bulk move holds the rows it copies.
const crossLease = time.Minute

// BulkOptions tune MoveRows and DeleteRows.
type BulkOptions struct {
	// BatchSize is the number of rows per statement. Default DefaultBatchSize,
	// at most 10000.
	BatchSize int
	// DropHeaders names headers removed from every moved message (MoveRows only).
	DropHeaders []string
	// OnBatch, when set, is called after each batch with the number of rows
	// it affected: a progress report, one call per batch.
	OnBatch func(affected int)
}

func (o BulkOptions) batch() int {
	switch {
	case o.BatchSize <= 0:
		return DefaultBatchSize
	case o.BatchSize > maxBatchSize:
		return maxBatchSize
	}
	return o.BatchSize
}

func (o BulkOptions) done(n int) {
	if o.OnBatch != nil {
		o.OnBatch(n)
	}
}

// MoveRows moves the rows of this queue with the given row ids
// (Delivery.ID) to dst and returns how many it moved. Rows that are leased
// (a receiver holds them), gone or in another queue are skipped. Moved
// messages start afresh in dst: visible now, not leased, attempt count zero,
// without the headers named in opts.DropHeaders.
//
// Within one database each batch of opts.BatchSize rows is a single UPDATE.
// Across databases each batch is leased (one UPDATE), enqueued in dst (one
// INSERT) and deleted (one DELETE): at least once, so a failure between the
// last two can leave a copy in both queues, never in neither.
func (q *sqlQueue) MoveRows(ctx context.Context, rowIDs []int64, dst Queue, opts BulkOptions) (int, error) {
	if dst == nil {
		return 0, q.errorf("move rows", fmt.Errorf("no destination queue"))
	}
	same := q.local(dst)
	if same != nil && same.name == q.name {
		return 0, q.errorf("move rows to "+dst.URI(), fmt.Errorf("source and destination are the same queue"))
	}
	total := 0
	for start := 0; start < len(rowIDs); start += opts.batch() {
		chunk := rowIDs[start:min(start+opts.batch(), len(rowIDs))]
		var (
			n   int
			err error
		)
		if same != nil {
			n, err = q.moveRowsLocal(ctx, chunk, same, opts.DropHeaders)
		} else {
			n, err = q.moveRowsAcross(ctx, chunk, dst, opts.DropHeaders)
		}
		total += n
		if err != nil {
			return total, err
		}
		opts.done(n)
	}
	return total, nil
}

// moveRowsLocal moves one batch with a single UPDATE.
func (q *sqlQueue) moveRowsLocal(ctx context.Context, ids []int64, dst *sqlQueue, drop []string) (int, error) {
	now := micros(time.Now())
	d := q.store.d
	res, err := q.store.exec(ctx, q.store.q.moveRows, dst.name, now, d.TextList(drop), q.name, d.IDList(ids), now)
	if err != nil {
		return 0, q.errorf(fmt.Sprintf("move %d rows to %s", len(ids), dst.URI()), err)
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		q.store.notify(ctx, dst.name)
	}
	return int(n), nil
}

// moveRowsAcross moves one batch to a queue of another database: lease,
// enqueue in dst, delete.
func (q *sqlQueue) moveRowsAcross(ctx context.Context, ids []int64, dst Queue, drop []string) (int, error) {
	op := fmt.Sprintf("move %d rows to %s", len(ids), dst.URI())
	ds, token, err := q.leaseRows(ctx, ids)
	if err != nil {
		return 0, q.errorf(op, err)
	}
	if len(ds) == 0 {
		return 0, nil
	}
	msgs := make([]Message, len(ds))
	for i, d := range ds {
		m := d.Message
		m.VisibleAt = time.Time{}
		if len(drop) > 0 && len(m.Headers) > 0 {
			h := make(map[string]string, len(m.Headers))
			for k, v := range m.Headers {
				h[k] = v
			}
			for _, k := range drop {
				delete(h, k)
			}
			m.Headers = h
		}
		msgs[i] = m
	}
	if err := dst.Enqueue(ctx, msgs...); err != nil {
		// Give them back at once rather than when the lease ends.
		if _, rerr := q.unleaseRows(ctx, ids, token); rerr != nil {
			q.store.log.Warn("queue: giving back rows after a failed move failed; they return when the lease ends", "queue", q.URI(), "err", rerr)
		}
		return 0, q.errorf(op, err)
	}
	n, err := q.deleteLeasedRows(ctx, ids, token)
	if err != nil {
		return 0, q.errorf(op+": copied, but not deleted here (they will be moved again)", err)
	}
	return n, nil
}

// leaseRows leases the free rows among ids under one new token, in row order.
func (q *sqlQueue) leaseRows(ctx context.Context, ids []int64) ([]Delivery, int64, error) {
	now := time.Now()
	token := newLeaseToken()
	unlock := q.store.lockWrites()
	rows, err := q.store.db.QueryxContext(ctx, q.store.q.leaseRows, token, micros(now.Add(crossLease)), q.name, q.store.d.IDList(ids), micros(now))
	if err != nil {
		unlock()
		return nil, 0, fmt.Errorf("lease: %w", err)
	}
	ds, err := q.scan(rows)
	unlock()
	if err != nil {
		return nil, 0, fmt.Errorf("lease: %w", err)
	}
	q.store.wrote(int64(len(ds)))
	sort.Slice(ds, func(i, j int) bool { return ds[i].ID < ds[j].ID })
	return ds, token, nil
}

// deleteLeasedRows deletes the rows among ids still leased under token.
func (q *sqlQueue) deleteLeasedRows(ctx context.Context, ids []int64, token int64) (int, error) {
	res, err := q.store.exec(ctx, q.store.q.deleteLeasedRows, token, q.store.d.IDList(ids))
	if err != nil {
		return 0, fmt.Errorf("delete: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// unleaseRows makes the rows among ids leased under token visible again.
func (q *sqlQueue) unleaseRows(ctx context.Context, ids []int64, token int64) (int, error) {
	res, err := q.store.exec(ctx, q.store.q.unleaseRows, micros(time.Now()), token, q.store.d.IDList(ids))
	if err != nil {
		return 0, fmt.Errorf("give back: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// DeleteRows deletes the rows of this queue with the given row ids
// (Delivery.ID), one DELETE per batch of opts.BatchSize, and returns how
// many it deleted. Rows that are leased, gone or in another queue are skipped.
func (q *sqlQueue) DeleteRows(ctx context.Context, rowIDs []int64, opts BulkOptions) (int, error) {
	total := 0
	for start := 0; start < len(rowIDs); start += opts.batch() {
		chunk := rowIDs[start:min(start+opts.batch(), len(rowIDs))]
		now := micros(time.Now())
		res, err := q.store.exec(ctx, q.store.q.deleteRows, q.name, q.store.d.IDList(chunk), now)
		if err != nil {
			return total, q.errorf(fmt.Sprintf("delete %d rows", len(chunk)), err)
		}
		n, _ := res.RowsAffected()
		total += int(n)
		opts.done(int(n))
	}
	return total, nil
}
