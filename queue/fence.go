package queue

import (
	"context"
	"time"
)

// Fenced moves: the distributor's moves and reclaims, which must stop the
// moment its lock changes hands, and which keep each message's delivery
// count (a message given back by a worker is a redelivery wherever it goes).

// The fence check, in the moving statement: on PostgreSQL FOR SHARE makes a
// concurrent change of hands wait for the move, or the move see it.
const (
	fencePG     = ` AND EXISTS (SELECT 1 FROM ferry_locks WHERE name = ? AND token = ? FOR SHARE)`
	fenceSQLite = ` AND EXISTS (SELECT 1 FROM ferry_locks WHERE name = ? AND token = ?)`
)

func fencedMoveStatements(st statements) (plain, notify string) {
	if st.dialect == Postgres {
		plain = st.rebind(`UPDATE ferry_messages m SET queue = ?, lease_token = 0, headers = (m.headers::jsonb || ?::jsonb)::text
FROM (SELECT id FROM ferry_messages WHERE queue = ? AND visible_at <= ?
      ORDER BY priority DESC, id LIMIT ? FOR UPDATE SKIP LOCKED) picked
WHERE m.id = picked.id` + fencePG)
		notify = st.rebind(`WITH moved AS (UPDATE ferry_messages m SET queue = ?, lease_token = 0, headers = (m.headers::jsonb || ?::jsonb)::text
FROM (SELECT id FROM ferry_messages WHERE queue = ? AND visible_at <= ?
      ORDER BY priority DESC, id LIMIT ? FOR UPDATE SKIP LOCKED) picked
WHERE m.id = picked.id` + fencePG + ` RETURNING 1),
counted AS (SELECT COUNT(*) AS n FROM moved)
SELECT counted.n FROM counted LEFT JOIN LATERAL (SELECT pg_notify(?, ?) WHERE counted.n > 0) woke ON true`)
		return plain, notify
	}
	plain = `UPDATE ferry_messages SET queue = ?, lease_token = 0, headers = json_patch(headers, ?)
WHERE id IN (SELECT id FROM ferry_messages WHERE queue = ? AND visible_at <= ?
      ORDER BY priority DESC, id LIMIT ?)` + fenceSQLite
	return plain, ""
}

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
	same, ok := dst.(*sqlQueue)
	if !ok || same.store != q.store || fence.store != q.store {
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
	plain, notify := fencedMoveStatements(q.store.q)
	now := micros(time.Now())
	var n int
	if q.store.dialect == Postgres {
		q.store.ops.Add(1)
		// Prepared, like the unfenced move: the server plans it once per connection.
		err := q.store.consumeQueryRow(ctx, notify, same.name, patch, q.name, now, limit,
			fence.name, fence.token, q.store.channel, same.name).Scan(&n)
		if malformedHeadersErr(err) {
			n, err = q.moveFencedRows(ctx, same, limit, setHeaders, fence)
		}
		if err != nil {
			return 0, q.errorf("move to "+dst.URI(), err)
		}
		if n > 0 {
			q.store.signals.fire(same.name)
		}
	} else {
		res, err := q.store.execConsume(ctx, plain, same.name, patch, q.name, now, limit, fence.name, fence.token)
		switch {
		case malformedHeadersErr(err):
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
