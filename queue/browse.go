package queue

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// purgeChunk bounds rows per DELETE in Purge, to keep transactions short.
const purgeChunk = 5000

// Count returns the number of messages by state.
func (q *sqlQueue) Count(ctx context.Context) (Counts, error) {
	now := micros(time.Now())
	var c Counts
	var oldest int64
	q.store.ops.Add(1)
	err := q.store.db.QueryRowxContext(ctx, q.store.q.count, now, now, now, now, q.name).Scan(&c.Ready, &c.Deferred, &c.InFlight, &oldest)
	q.store.failed(ctx, err)
	if err != nil {
		return Counts{}, q.errorf("count", err)
	}
	if oldest > 0 {
		c.OldestReady = fromMicros(oldest)
	}
	return c, nil
}

// Peek lists up to limit messages with row id above afterID, in id order,
// in any state, without leasing them.
func (q *sqlQueue) Peek(ctx context.Context, afterID int64, limit int) ([]Delivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	q.store.ops.Add(1)
	rows, err := q.store.db.QueryxContext(ctx, q.store.q.peek, q.name, afterID, limit)
	q.store.failed(ctx, err)
	if err != nil {
		return nil, q.errorf("peek", err)
	}
	ds, err := q.scan(rows)
	if err != nil {
		return nil, q.errorf("peek", err)
	}
	return ds, nil
}

// LastRowID is the highest row id in the queue, or zero when it is empty.
// Scans that must end under steady inflow stop there.
func (q *sqlQueue) LastRowID(ctx context.Context) (int64, error) {
	var id int64
	if err := q.store.db.GetContext(ctx, &id, q.store.q.maxID, q.name); err != nil {
		return 0, q.errorf("last row id", err)
	}
	return id, nil
}

// FindMessages returns the rows of this queue whose MessageID is one of
// messageIDs, in row order, in any state, without leasing them. It runs one
// SELECT per DefaultBatchSize ids.
func (q *sqlQueue) FindMessages(ctx context.Context, messageIDs []string) ([]Delivery, error) {
	var out []Delivery
	for start := 0; start < len(messageIDs); start += DefaultBatchSize {
		chunk := messageIDs[start:min(start+DefaultBatchSize, len(messageIDs))]
		rows, err := q.store.db.QueryxContext(ctx, q.store.q.find, q.name, q.store.d.TextList(chunk))
		if err != nil {
			return nil, q.errorf("find messages", err)
		}
		ds, err := q.scan(rows)
		if err != nil {
			return nil, q.errorf("find messages", err)
		}
		out = append(out, ds...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Purge deletes every message that was in the queue when it started, in
// batches, and returns how many it deleted. Messages enqueued while it runs
// are kept, so it ends even under steady inflow.
func (q *sqlQueue) Purge(ctx context.Context) (int64, error) {
	var maxID int64
	if err := q.store.db.GetContext(ctx, &maxID, q.store.q.maxID, q.name); err != nil {
		return 0, q.errorf("purge", err)
	}
	var total int64
	for {
		res, err := q.store.exec(ctx, q.store.q.purge, q.name, maxID, purgeChunk)
		if err != nil {
			return total, q.errorf("purge", err)
		}
		n, _ := res.RowsAffected()
		total += n
		if n < purgeChunk {
			return total, nil
		}
	}
}

// MaxExpungeBatch bounds the rows one Expunge statement deletes.
const MaxExpungeBatch = 10_000

// Expunge deletes the messages visible since before a time, at most batch
// per statement, until none is left (see Browser.Expunge). before is taken
// as now when later, so that no lease running now is cut short.
func (q *sqlQueue) Expunge(ctx context.Context, before time.Time, batch int) (int64, error) {
	if batch < 1 || batch > MaxExpungeBatch {
		return 0, q.errorf("expunge", fmt.Errorf("batch %d: want 1 to %d", batch, MaxExpungeBatch))
	}
	if now := time.Now(); before.After(now) {
		before = now
	}
	cut := micros(before)
	var total int64
	for {
		res, err := q.store.exec(ctx, q.store.q.expunge, q.name, cut, q.name, cut, batch)
		if err != nil {
			return total, q.errorf("expunge", err)
		}
		n, _ := res.RowsAffected()
		total += n
		if n < int64(batch) {
			return total, nil
		}
	}
}
