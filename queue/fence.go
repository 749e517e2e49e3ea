package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"time"
)

// Fenced moves: the distributor's moves and reclaims, which must stop the
// moment its lock changes hands, and which keep each message's delivery
// count (a message given back by a worker is a redelivery wherever it goes).

// MoveReadyFenced is MoveReady for the holder of a lock: the move happens
// only while fence still holds, checked in the moving statement itself: once
// the lock has changed hands it moves nothing.
// Unlike MoveReady it keeps each message's attempt count.
//
// When the lock, this queue and dst are not all in one database the check
// is a separate statement just before the move (and the count is reset,
// as by MoveReady), which narrows but does not close the window.
func (q *sqlQueue) MoveReadyFenced(ctx context.Context, dst Queue, limit int, setHeaders map[string]string, fence Fence) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	same := q.local(dst)
	if same == nil || fence.store != q.store {
		held, err := fence.Held(ctx)
		if err != nil {
			return 0, q.errorf("move to "+dst.URI(), err)
		}
		if !held {
			return 0, q.errorf("move to "+dst.URI(), ErrFenced)
		}
		// Across databases the move re-enqueues, so the count starts afresh.
		return q.MoveReady(ctx, dst, limit, setHeaders)
	}
	patch, err := encodeHeaders(setHeaders)
	if err != nil {
		return 0, q.errorf("move to "+dst.URI(), err)
	}
	now := micros(time.Now())
	var n int
	if q.store.q.fencedNotifies {
		q.store.ops.Add(1)
		// Prepared, like the unfenced move: the server plans it once per connection.
		err := q.store.consumeQueryRow(ctx, q.store.q.moveFenced, same.name, patch, q.name, now, limit,
			fence.name, fence.token, q.store.channel, same.name).Scan(&n)
		if q.store.d.IsMalformedJSON(err) {
			n, err = q.moveFencedRows(ctx, same, limit, setHeaders, fence)
		}
		if err != nil {
			return 0, q.errorf("move to "+dst.URI(), err)
		}
		if n > 0 {
			q.store.signals.fire(same.name)
		}
	} else {
		res, err := q.store.execConsume(ctx, q.store.q.moveFenced, same.name, patch, q.name, now, limit, fence.name, fence.token)
		switch {
		case q.store.d.IsMalformedJSON(err):
			if n, err = q.moveFencedRows(ctx, same, limit, setHeaders, fence); err != nil {
				return 0, q.errorf("move to "+dst.URI(), err)
			}
		case err != nil:
			return 0, q.errorf("move to "+dst.URI(), err)
		default:
			m, _ := res.RowsAffected()
			n = int(m)
			if n > 0 {
				q.store.notify(ctx, same.name)
			}
		}
	}
	// Nothing moved may mean a lost lock: the holder learns it at its next
	// renewal, and meanwhile moves nothing, which is all the fence is for.
	return n, nil
}

// moveFencedRows is the fenced move row by row, for when the bulk statement
// failed on a row with malformed headers (written by a producer other than
// ferry): the headers are merged in Go, and a row whose headers cannot be
// decoded moves with them untouched, byte for byte, for its receiver to park
// as a decode failure. One transaction: the fence is checked in it, with the
// rows locked.
func (q *sqlQueue) moveFencedRows(ctx context.Context, dst *sqlQueue, limit int, setHeaders map[string]string, fence Fence) (int, error) {
	s := q.store
	defer s.lockWrites()()
	tx, err := s.consume.BeginTxx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	s.ops.Add(1)
	var held int
	switch err := tx.GetContext(ctx, &held, s.q.fenceCheck, fence.name, fence.token); {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil // the lock changed hands: move nothing
	case err != nil:
		return 0, fmt.Errorf("fence: %w", err)
	}
	var rows []struct {
		ID      int64  `db:"id"`
		Headers string `db:"headers"`
	}
	s.ops.Add(1)
	if err := tx.SelectContext(ctx, &rows, s.q.fencePick, q.name, micros(time.Now()), limit); err != nil {
		return 0, fmt.Errorf("pick rows: %w", err)
	}
	for _, r := range rows {
		headers := r.Headers
		if h, err := decodeHeaders(r.Headers); err == nil {
			merged := make(map[string]string, len(h)+len(setHeaders))
			maps.Copy(merged, h)
			maps.Copy(merged, setHeaders)
			if headers, err = encodeHeaders(merged); err != nil {
				return 0, err
			}
		}
		s.ops.Add(1)
		if _, err := tx.ExecContext(ctx, s.q.fenceMoveRow, dst.name, headers, r.ID); err != nil {
			return 0, fmt.Errorf("move row %d: %w", r.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	if len(rows) > 0 {
		s.notify(ctx, dst.name)
	}
	return len(rows), nil
}
