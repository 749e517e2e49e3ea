package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// TryLock takes or renews the named lock for owner until ttl from now. It
// succeeds when the lock is free, expired, or already owner's; a process that
// dies loses the lock when its lease ends.
func (s *Store) TryLock(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	now := time.Now()
	res, err := s.exec(ctx, s.db.Rebind(`INSERT INTO ferry_locks (name, owner, expires_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE ferry_locks.owner = excluded.owner OR ferry_locks.expires_at < ?`), name, owner, micros(now.Add(ttl)), micros(now))
	if err != nil {
		return false, fmt.Errorf("queue: lock %q: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("queue: lock %q: %w", name, err)
	}
	return n == 1, nil
}

// Unlock frees the named lock if owner holds it.
func (s *Store) Unlock(ctx context.Context, name, owner string) error {
	if _, err := s.exec(ctx, s.db.Rebind(`DELETE FROM ferry_locks WHERE name = ? AND owner = ?`), name, owner); err != nil {
		return fmt.Errorf("queue: unlock %q: %w", name, err)
	}
	return nil
}

// LockOwner returns who holds the named lock and until when; "" when free.
func (s *Store) LockOwner(ctx context.Context, name string) (string, time.Time, error) {
	var row struct {
		Owner     string `db:"owner"`
		ExpiresAt int64  `db:"expires_at"`
	}
	err := s.db.GetContext(ctx, &row, s.db.Rebind(`SELECT owner, expires_at FROM ferry_locks WHERE name = ?`), name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, nil
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("queue: read lock %q: %w", name, err)
	}
	if row.ExpiresAt < micros(time.Now()) {
		return "", time.Time{}, nil
	}
	return row.Owner, fromMicros(row.ExpiresAt), nil
}
