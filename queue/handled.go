package queue

import (
	"context"
	"fmt"
	"time"
)

// ClaimHandledTx records messageID as handled by endpoint inside tx and
// reports whether this call recorded it: false when a record was already
// there. It is the gate of idempotent receive: of several transactions
// claiming one id at once, exactly one gets true once it commits (on
// PostgreSQL the others wait for it at the INSERT, on SQLite the write lock
// orders them), so only that one should commit its effects.
func (s *sqlStore) ClaimHandledTx(ctx context.Context, tx Execer, endpoint, messageID string) (bool, error) {
	res, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO ferry_handled (endpoint, message_id, handled_at) VALUES (?, ?, ?)
ON CONFLICT (endpoint, message_id) DO NOTHING`), endpoint, messageID, micros(time.Now()))
	if err != nil {
		return false, fmt.Errorf("queue: mark %s handled by %s: %w", messageID, endpoint, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("queue: mark %s handled by %s: rows affected: %w", messageID, endpoint, err)
	}
	return n == 1, nil
}
