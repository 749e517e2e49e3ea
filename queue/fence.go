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
// With a handoff (Token not zero) the same statement also leases the moved
// rows to handoff.Token for handoff.For, counting the move as a delivery
// (attempts + 1): the receiver reads them with ReceiveGiven instead of
// leasing them again, and when it never does they come back at the end of
// the lease like any other. A zero Handoff moves them unleased, as ever.
//
// When the lock, this queue and dst are not all in one database the check
// is a separate statement just before the move (and the count is reset,
// as by MoveReady), which narrows but does not close the window; the rows
// then arrive unleased whatever the handoff, as they do from the row by
// row move that a row with malformed headers falls back to.
func (q *sqlQueue) MoveReadyFenced(ctx context.Context, dst Queue, limit int, setHeaders map[string]string, fence Fence, handoff Handoff) (int, error) {
	n, _, err := q.moveReadyFenced(ctx, dst, limit, setHeaders, fence, handoff, false)
	return n, err
}

// MoveReadyFencedRows is MoveReadyFenced returning the moved messages: the
// moving statement reads them back itself (RETURNING), so it costs no
// round trip more.
func (q *sqlQueue) MoveReadyFencedRows(ctx context.Context, dst Queue, limit int, setHeaders map[string]string, fence Fence, handoff Handoff) ([]Moved, error) {
	_, moved, err := q.moveReadyFenced(ctx, dst, limit, setHeaders, fence, handoff, true)
	return moved, err
}

// moveReadyFenced is the fenced move; with rows it returns the moved rows.
func (q *sqlQueue) moveReadyFenced(ctx context.Context, dst Queue, limit int, setHeaders map[string]string, fence Fence, handoff Handoff, rows bool) (int, []Moved, error) {
	if limit <= 0 {
		return 0, nil, nil
	}
	if handoff.Token != 0 && handoff.For <= 0 {
		return 0, nil, q.errorf("move to "+dst.URI(), fmt.Errorf("handoff lease must be positive, got %s", handoff.For))
	}
	same := q.local(dst)
	if same == nil || fence.store != q.store {
		held, err := fence.Held(ctx)
		if err != nil {
			return 0, nil, q.errorf("move to "+dst.URI(), err)
		}
		if !held {
			return 0, nil, q.errorf("move to "+dst.URI(), ErrFenced)
		}
		// Across databases the move re-enqueues, so the count starts afresh.
		return q.moveReady(ctx, dst, limit, setHeaders, rows)
	}
	patch, err := encodeHeaders(setHeaders)
	if err != nil {
		return 0, nil, q.errorf("move to "+dst.URI(), err)
	}
	now := time.Now()
	// The plain fenced move and the handoff differ only in their statement
	// and the lease arguments before the patch.
	query, notifies := q.store.q.moveFenced, q.store.q.fencedNotifies
	args := []any{same.name, patch, q.name, micros(now), limit, fence.name, fence.token}
	if handoff.Token != 0 {
		query, notifies = q.store.q.moveHandoff, q.store.q.handoffNotifies
		args = []any{same.name, handoff.Token, micros(now.Add(handoff.For)), patch, q.name, micros(now), limit, fence.name, fence.token}
	}
	if rows {
		query = q.store.q.moveFencedRet
		if handoff.Token != 0 {
			query = q.store.q.moveHandoffRet
		}
		if notifies {
			args = append(args, q.store.channel, same.name)
		}
		moved, err := q.store.queryMoved(ctx, query, args...)
		if q.store.d.IsMalformedJSON(err) {
			_, moved, err = q.moveFencedRows(ctx, same, limit, setHeaders, fence)
		} else if err == nil && len(moved) > 0 {
			q.store.woke(ctx, same.name, notifies)
		}
		if err != nil {
			return 0, nil, q.errorf("move to "+dst.URI(), err)
		}
		return len(moved), moved, nil
	}
	var n int
	if notifies {
		q.store.ops.Add(1)
		// Prepared, like the unfenced move: the server plans it once per connection.
		err := q.store.consumeQueryRow(ctx, query, append(args, q.store.channel, same.name)...).Scan(&n)
		q.store.failed(ctx, err)
		if q.store.d.IsMalformedJSON(err) {
			n, _, err = q.moveFencedRows(ctx, same, limit, setHeaders, fence)
		} else if err == nil {
			q.store.wrote(int64(n))
		}
		if err != nil {
			return 0, nil, q.errorf("move to "+dst.URI(), err)
		}
		if n > 0 {
			q.store.signals.fire(same.name)
		}
	} else {
		res, err := q.store.execConsume(ctx, query, args...)
		switch {
		case q.store.d.IsMalformedJSON(err):
			if n, _, err = q.moveFencedRows(ctx, same, limit, setHeaders, fence); err != nil {
				return 0, nil, q.errorf("move to "+dst.URI(), err)
			}
		case err != nil:
			return 0, nil, q.errorf("move to "+dst.URI(), err)
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
	return n, nil, nil
}

// moveFencedRows is the fenced move row by row, for when the bulk statement
// failed on a row with malformed headers (written by a producer other than
// ferry): the headers are merged in Go, and a row whose headers cannot be
// decoded moves with them untouched, byte for byte, for its receiver to park
// as a decode failure. One transaction: the fence is checked in it, with the
// rows locked.
func (q *sqlQueue) moveFencedRows(ctx context.Context, dst *sqlQueue, limit int, setHeaders map[string]string, fence Fence) (int, []Moved, error) {
	s := q.store
	defer s.lockWrites()()
	tx, err := s.consume.BeginTxx(ctx, nil)
	if err != nil {
		return 0, nil, err
	}
	defer tx.Rollback()
	s.ops.Add(1)
	var held int
	err = tx.GetContext(ctx, &held, s.q.fenceCheck, fence.name, fence.token)
	s.failed(ctx, err)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil, nil // the lock changed hands: move nothing
	case err != nil:
		return 0, nil, fmt.Errorf("fence: %w", err)
	}
	var rows []struct {
		ID        int64  `db:"id"`
		MessageID string `db:"message_id"`
		Headers   string `db:"headers"`
	}
	s.ops.Add(1)
	if err := tx.SelectContext(ctx, &rows, s.q.fencePick, q.name, micros(time.Now()), limit); err != nil {
		s.failed(ctx, err)
		return 0, nil, fmt.Errorf("pick rows: %w", err)
	}
	moved := make([]Moved, len(rows))
	for i, r := range rows {
		headers := r.Headers
		moved[i].MessageID = r.MessageID
		if h, err := decodeHeaders(r.Headers); err == nil {
			merged := make(map[string]string, len(h)+len(setHeaders))
			maps.Copy(merged, h)
			maps.Copy(merged, setHeaders)
			if headers, err = encodeHeaders(merged); err != nil {
				return 0, nil, err
			}
			moved[i].Headers = merged
		}
		s.ops.Add(1)
		if _, err := tx.ExecContext(ctx, s.q.fenceMoveRow, dst.name, headers, r.ID); err != nil {
			s.failed(ctx, err)
			return 0, nil, fmt.Errorf("move row %d: %w", r.ID, err)
		}
		s.wrote(1)
	}
	if err := tx.Commit(); err != nil {
		return 0, nil, err
	}
	if len(rows) > 0 {
		s.notify(ctx, dst.name)
	}
	return len(rows), moved, nil
}
