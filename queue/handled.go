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
	res, err := tx.ExecContext(ctx, s.q.claimHandled, endpoint, messageID, micros(time.Now()))
	if err != nil {
		return false, fmt.Errorf("queue: mark %s handled by %s: %w", messageID, endpoint, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("queue: mark %s handled by %s: rows affected: %w", messageID, endpoint, err)
	}
	s.wrote(n)
	return n == 1, nil
}

// Handled reports whether endpoint has recorded messageID as handled.
func (s *sqlStore) Handled(ctx context.Context, endpoint, messageID string) (bool, error) {
	var n int
	err := s.db.GetContext(ctx, &n, s.q.handled, endpoint, messageID)
	if err != nil {
		return false, fmt.Errorf("queue: read handled %s/%s: %w", endpoint, messageID, err)
	}
	return n > 0, nil
}

// MarkHandledTx records messageID as handled by endpoint inside tx.
func (s *sqlStore) MarkHandledTx(ctx context.Context, tx Execer, endpoint, messageID string) error {
	res, err := tx.ExecContext(ctx, s.q.claimHandled, endpoint, messageID, micros(time.Now()))
	if err != nil {
		return fmt.Errorf("queue: mark %s handled by %s: %w", messageID, endpoint, err)
	}
	s.wroteResult(res)
	return nil
}

// ForgetHandled deletes handled records older than before, in statements
// of at most DefaultBatchSize records (short transactions however many
// there are), and returns how many it deleted.
func (s *sqlStore) ForgetHandled(ctx context.Context, before time.Time) (int64, error) {
	cut := micros(before)
	var total int64
	for {
		res, err := s.exec(ctx, s.q.forgetHandled, cut, cut, DefaultBatchSize)
		if err != nil {
			return total, fmt.Errorf("queue: forget handled records: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("queue: forget handled records: rows affected: %w", err)
		}
		total += n
		if n < DefaultBatchSize {
			return total, nil
		}
	}
}
