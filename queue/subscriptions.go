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
	stmt := s.q.subscribe
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
	stmt := s.q.unsubscribe
	for _, t := range types {
		if _, err := s.exec(ctx, stmt, t, queueURI); err != nil {
			return fmt.Errorf("queue: unsubscribe %s from %q: %w", queueURI, t, err)
		}
	}
	return nil
}

// Subscriptions returns every subscription: message type to queue URIs.
func (s *sqlStore) Subscriptions(ctx context.Context) (map[string][]string, error) {
	rows, err := s.db.QueryContext(ctx, s.q.subscriptions)
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
