package queue

import (
	"context"
	"fmt"
	"time"
)

// insertChunk bounds rows per INSERT (8 parameters each) to stay under the
// parameter limits of both databases.
const insertChunk = 1000

// Enqueue stores messages in the queue: all of them or, on error, none.
func (q *sqlQueue) Enqueue(ctx context.Context, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	defer q.store.lockWrites()()
	if len(msgs) <= insertChunk {
		woke, err := q.enqueue(ctx, q.store.db, msgs)
		if err != nil {
			return err
		}
		if woke {
			q.store.signals.fire(q.name)
		}
		return nil
	}
	// Several INSERTs: one transaction keeps the call all or nothing.
	tx, err := q.store.db.BeginTx(ctx, nil)
	if err != nil {
		return q.errorf("enqueue", fmt.Errorf("begin: %w", err))
	}
	woke, err := q.enqueue(ctx, tx, msgs)
	if err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return q.errorf("enqueue", fmt.Errorf("commit: %w", err))
	}
	if woke {
		q.store.signals.fire(q.name)
	}
	return nil
}

// EnqueueTx stores messages inside the caller's transaction (a *sql.Tx or
// *sqlx.Tx on this queue's database): they exist only if it commits. Where
// the dialect has a wake-up channel (PostgreSQL) receivers, in this process
// too, are woken at commit by the notification the INSERT carries;
// otherwise (SQLite) this process's receivers are signalled at once and
// find the messages once the caller has committed, at their next poll at
// the latest.
func (q *sqlQueue) EnqueueTx(ctx context.Context, tx Execer, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	woke, err := q.enqueue(ctx, tx, msgs)
	if err != nil {
		return err
	}
	if woke && q.store.channel == "" {
		q.store.signals.fire(q.name)
	}
	return nil
}

// enqueue inserts msgs with ex and reports whether any of them is visible
// now, so that receivers in this process should be woken. Every message is
// checked before the first INSERT, so a bad one stores nothing.
func (q *sqlQueue) enqueue(ctx context.Context, ex Execer, msgs []Message) (bool, error) {
	now := time.Now()
	headers := make([]string, len(msgs))
	for i, m := range msgs {
		if m.MessageID == "" {
			return false, q.errorf("enqueue", fmt.Errorf("message %d of %d has no MessageID", i+1, len(msgs)))
		}
		if err := CheckPriority(m.Priority); err != nil {
			return false, q.errorf("enqueue "+m.MessageID, err)
		}
		h, err := encodeHeaders(m.Headers)
		if err != nil {
			return false, q.errorf("enqueue "+m.MessageID, err)
		}
		headers[i] = h
	}
	woke := false
	for start := 0; start < len(msgs); start += insertChunk {
		chunk := msgs[start:min(start+insertChunk, len(msgs))]
		args := make([]any, 0, len(chunk)*8+2)
		notify := false
		for i, m := range chunk {
			vis := m.VisibleAt
			if vis.IsZero() || !vis.After(now) {
				vis = now
				notify = true
			}
			body := m.Body
			if body == nil {
				body = []byte{}
			}
			args = append(args, q.name, m.MessageID, m.Type, m.Priority, micros(vis), micros(now), headers[start+i], body)
		}
		if notify && q.store.channel != "" {
			args = append(args, q.store.channel, q.name)
		}
		q.store.ops.Add(1)
		if _, err := ex.ExecContext(ctx, q.store.d.Insert(len(chunk), notify), args...); err != nil {
			q.store.failed(ctx, err)
			return false, q.errorf("enqueue", err)
		}
		q.store.wrote(int64(len(chunk)))
		woke = woke || notify
	}
	return woke, nil
}
