package queue

import (
	"context"
	"fmt"
	"time"
)

// Subscribe records that queueURI receives published messages of each type.
// Subscribing twice is a no-op.
func (s *sqlStore) Subscribe(ctx context.Context, queueURI string, types ...string) error {
	if _, err := ParseURI(queueURI); err != nil {
		return err
	}
	stmt := s.db.Rebind(`INSERT INTO ferry_subscriptions (message_type, queue_uri, created_at) VALUES (?, ?, ?)
ON CONFLICT (message_type, queue_uri) DO NOTHING`)
	for _, t := range types {
		if t == "" {
			return fmt.Errorf("queue: subscribe %s: empty message type", queueURI)
		}
		if _, err := s.exec(ctx, stmt, t, queueURI, micros(time.Now())); err != nil {
			return fmt.Errorf("queue: subscribe %s to %q: %w", queueURI, t, err)
		}
	}
	return nil
}

// Unsubscribe removes queueURI's subscriptions to each type.
func (s *sqlStore) Unsubscribe(ctx context.Context, queueURI string, types ...string) error {
	stmt := s.db.Rebind(`DELETE FROM ferry_subscriptions WHERE message_type = ? AND queue_uri = ?`)
	for _, t := range types {
		if _, err := s.exec(ctx, stmt, t, queueURI); err != nil {
			return fmt.Errorf("queue: unsubscribe %s from %q: %w", queueURI, t, err)
		}
	}
	return nil
}

// Subscriptions returns every subscription: message type to queue URIs.
func (s *sqlStore) Subscriptions(ctx context.Context) (map[string][]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT message_type, queue_uri FROM ferry_subscriptions ORDER BY message_type, queue_uri`)
	if err != nil {
		return nil, fmt.Errorf("queue: read subscriptions: %w", err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var t, uri string
		if err := rows.Scan(&t, &uri); err != nil {
			return nil, fmt.Errorf("queue: read subscriptions: %w", err)
		}
		out[t] = append(out[t], uri)
	}
	return out, rows.Err()
}

// Handled reports whether endpoint has recorded messageID as handled.
func (s *sqlStore) Handled(ctx context.Context, endpoint, messageID string) (bool, error) {
	var n int
	err := s.db.GetContext(ctx, &n, s.db.Rebind(`SELECT COUNT(*) FROM ferry_handled WHERE endpoint = ? AND message_id = ?`), endpoint, messageID)
	if err != nil {
		return false, fmt.Errorf("queue: read handled %s/%s: %w", endpoint, messageID, err)
	}
	return n > 0, nil
}

// MarkHandledTx records messageID as handled by endpoint inside tx.
func (s *sqlStore) MarkHandledTx(ctx context.Context, tx Execer, endpoint, messageID string) error {
	_, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO ferry_handled (endpoint, message_id, handled_at) VALUES (?, ?, ?)
ON CONFLICT (endpoint, message_id) DO NOTHING`), endpoint, messageID, micros(time.Now()))
	if err != nil {
		return fmt.Errorf("queue: mark %s handled by %s: %w", messageID, endpoint, err)
	}
	return nil
}

// ForgetHandled deletes handled records older than before and returns how
// many it deleted.
func (s *sqlStore) ForgetHandled(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.exec(ctx, s.db.Rebind(`DELETE FROM ferry_handled WHERE handled_at < ?`), micros(before))
	if err != nil {
		return 0, fmt.Errorf("queue: forget handled records: %w", err)
	}
	return res.RowsAffected()
}
