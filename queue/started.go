package queue

import (
	"context"
	"database/sql"
	"errors"
)

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
	err := q.store.consume.QueryRowxContext(ctx, q.store.db.Rebind(
		`UPDATE ferry_messages SET started = started + 1 WHERE id = ? AND lease_token = ? RETURNING started`),
		d.ID, d.LeaseToken).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, q.errorf("mark started "+d.MessageID, ErrLeaseLost)
	}
	if err != nil {
		return 0, q.errorf("mark started "+d.MessageID, err)
	}
	return n - 1, nil
}
