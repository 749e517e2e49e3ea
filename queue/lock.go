package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AcquireLock takes or renews the named lock for owner until ttl from now
// and returns its fencing token, or 0 when another owner holds it. The
// token stays the same while owner renews and grows each time the lock
// changes hands, so statements fenced with it (see Fence) stop acting for
// a holder that lost it.
//
// The lock is free when it is expired or released, and also when its
// holder has no LockSession (see OpenLockSession): a holder that died loses
// the lock at once, not after ttl. On PostgreSQL the acquire statement
// tells (the holder's session lock can be taken), so an owner opens its
// session before it acquires; on SQLite, whose file is on this machine, a
// holder whose session file lock can be taken has died.
func (s *sqlStore) AcquireLock(ctx context.Context, name, owner string, ttl time.Duration) (int64, error) {
	now := time.Now()
	query := s.q.lockAcquire
	args := []any{name, owner, micros(now.Add(ttl)), micros(now), micros(now)}
	dead, release, err := s.d.DeadHolder(ctx, s.db, name, owner)
	if err != nil {
		return 0, err
	}
	if dead != "" {
		defer release()
		query = s.q.lockTakeOver
		args = append(args, dead)
	}
	// A fresh row starts from the clock, so a token never repeats even if
	// the row was deleted (as older versions did on unlock).
	var tok int64
	s.ops.Add(1)
	unlock := s.lockWrites()
	err = s.db.QueryRowxContext(ctx, query, args...).Scan(&tok)
	unlock()
	s.failed(ctx, err)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("queue: lock %q: %w", name, err)
	}
	s.wrote(1)
	return tok, nil
}

// OpenLockSession opens owner's session for lock name: a lock owner is
// alive for as long as it lasts. On PostgreSQL it holds an advisory lock
// on a dedicated connection, which the server drops the moment the process
// dies or the connection closes; on SQLite an exclusive lock on a small
// file beside the database, which the kernel drops when the process dies.
// AcquireLock then treats that owner's lock as free.
func (s *sqlStore) OpenLockSession(ctx context.Context, name, owner string) (LockSession, error) {
	l, err := s.d.OpenSession(ctx, s.db, name, owner)
	if err != nil {
		return nil, fmt.Errorf("queue: lock %q: %w", name, err)
	}
	return l, nil
}

// Unlock frees the named lock if owner holds it. The row stays, with its
// token, so tokens keep growing across holders.
func (s *sqlStore) Unlock(ctx context.Context, name, owner string) error {
	if _, err := s.exec(ctx, s.q.unlock, name, owner); err != nil {
		return fmt.Errorf("queue: unlock %q: %w", name, err)
	}
	// What the session left (SQLite's file) is no longer needed to tell a
	// crash apart.
	s.d.ForgetSession(name, owner)
	return nil
}

// Fence is one holding of a lock: a statement fenced with it acts only
// while the lock's token is still Token, checked in the statement itself.
type Fence struct {
	store *sqlStore
	name  string
	token int64
}

// Fence returns the fence of lock name as held with token (from AcquireLock).
func (s *sqlStore) Fence(name string, token int64) Fence {
	return Fence{store: s, name: name, token: token}
}

// ErrFenced is returned by a fenced move, checked apart from the move (across
// databases), that found its lock had changed hands.
var ErrFenced = errors.New("lock lost: fencing token is stale")

// Held reports whether the fence's lock still has its token.
func (f Fence) Held(ctx context.Context) (bool, error) {
	var n int
	err := f.store.db.GetContext(ctx, &n, f.store.q.lockHeld, f.name, f.token)
	if err != nil {
		return false, fmt.Errorf("queue: check lock %q: %w", f.name, err)
	}
	return n == 1, nil
}
