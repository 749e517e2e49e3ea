package queue

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"time"
)

// AcquireLock takes or renews the named lock for owner until ttl from now
// and returns its fencing token, or 0 when another owner holds it. The
// token stays the same while owner renews and grows each time the lock
// changes hands, so statements fenced with it (see Fence) stop acting for
// a holder that lost it.
//
// The lock is free when it is expired or released, and on PostgreSQL also
// when its holder has no LockSession (see OpenLockSession): a holder that
// died (its connection closed) loses the lock at once, not after ttl. So on
// PostgreSQL an owner opens its session before it acquires.
func (s *sqlStore) AcquireLock(ctx context.Context, name, owner string, ttl time.Duration) (int64, error) {
	now := time.Now()
	q := `INSERT INTO ferry_locks (name, owner, expires_at, token) VALUES (?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at,
 token = CASE WHEN ferry_locks.owner = excluded.owner THEN ferry_locks.token ELSE ferry_locks.token + 1 END
WHERE ferry_locks.owner = excluded.owner OR ferry_locks.expires_at < ?`
	if s.dialect == Postgres {
		// A holder whose session lock can be taken has no session any more.
		q += ` OR (CASE WHEN pg_try_advisory_lock(` + sessionKey("ferry_locks.name", "ferry_locks.owner") + `)
 THEN pg_advisory_unlock(` + sessionKey("ferry_locks.name", "ferry_locks.owner") + `) ELSE false END)`
	}
	var deadOwner string
	if s.dialect == SQLite {
		// The SQLite file is on this machine: a holder whose session file
		// lock can be taken has died (see OpenLockSession).
		dead, release, err := s.deadSQLiteHolder(ctx, name, owner)
		if err != nil {
			return 0, err
		}
		if dead != "" {
			defer release()
			deadOwner = dead
			q += ` OR ferry_locks.owner = ?`
		}
	}
	q += ` RETURNING token`
	// A fresh row starts from the clock, so a token never repeats even if
	// the row was deleted (as older versions did on unlock).
	var tok int64
	s.ops.Add(1)
	unlock := s.lockWrites()
	args := []any{name, owner, micros(now.Add(ttl)), micros(now), micros(now)}
	if deadOwner != "" {
		args = append(args, deadOwner)
	}
	err := s.db.QueryRowxContext(ctx, s.db.Rebind(q), args...).Scan(&tok)
	unlock()
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("queue: lock %q: %w", name, err)
	}
	return tok, nil
}

// sessionKey is the SQL of the advisory lock key that marks owner's session
// alive for lock name, scoped to the schema.
func sessionKey(name, owner string) string {
	return `hashtextextended(current_schema() || ':ferry_lock:' || ` + name + ` || ':' || ` + owner + `, 0)`
}

// lockSession marks a lock owner alive for as long as one database session
// lasts (PostgreSQL): it holds an advisory lock on a dedicated connection,
// which the server drops the moment the process dies or the connection
// closes. AcquireLock then treats that owner's lock as free.
//
// On SQLite, whose file is on this machine, the session is an exclusive
// lock on a small file beside the database, which the kernel drops when
// the process dies.
type lockSession struct {
	conn *sql.Conn
	file *sessionFile
}

// OpenLockSession opens owner's session for lock name.
func (s *sqlStore) OpenLockSession(ctx context.Context, name, owner string) (LockSession, error) {
	if s.dialect == SQLite {
		f, err := openSessionFile(s.sessionPath(name, owner))
		if err != nil {
			return nil, fmt.Errorf("queue: lock %q: session of owner %q: %w", name, owner, err)
		}
		if f == nil {
			return noSession{}, nil // no file locks here: a plain lease
		}
		return &lockSession{file: f}, nil
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue: lock %q: session connection: %w", name, err)
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(`+sessionKey("$1::text", "$2::text")+`)`, name, owner).Scan(&ok); err != nil {
		conn.Close()
		return nil, fmt.Errorf("queue: lock %q: session lock: %w", name, err)
	}
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("queue: lock %q: session lock of owner %q is held by another session", name, owner)
	}
	return &lockSession{conn: conn}, nil
}

// Alive reports an error when the session's connection no longer answers:
// its lock is then gone, and a new session must be opened.
func (l *lockSession) Alive(ctx context.Context) error {
	if l == nil || l.file != nil {
		return nil // a file lock lasts as long as the process
	}
	if _, err := l.conn.ExecContext(ctx, `SELECT 1`); err != nil {
		return fmt.Errorf("queue: lock session: %w", err)
	}
	return nil
}

// noSession is the session where the platform has no file locks: the lock
// is a plain lease, freed when it expires.
type noSession struct{}

func (noSession) Alive(context.Context) error { return nil }
func (noSession) Close() error                { return nil }

// Close ends the session, which frees its lock. A nil session is a no-op.
func (l *lockSession) Close() error {
	if l == nil {
		return nil
	}
	if l.file != nil {
		return l.file.close()
	}
	// Closing the connection ends the server session and with it the lock;
	// a raw close rather than a return to the pool.
	_ = l.conn.Raw(func(any) error { return driver.ErrBadConn })
	if err := l.conn.Close(); err != nil && !errors.Is(err, sql.ErrConnDone) {
		return fmt.Errorf("queue: close lock session: %w", err)
	}
	return nil
}

// Unlock frees the named lock if owner holds it. The row stays, with its
// token, so tokens keep growing across holders.
func (s *sqlStore) Unlock(ctx context.Context, name, owner string) error {
	if _, err := s.exec(ctx, s.db.Rebind(`UPDATE ferry_locks SET owner = '', expires_at = 0 WHERE name = ? AND owner = ?`), name, owner); err != nil {
		return fmt.Errorf("queue: unlock %q: %w", name, err)
	}
	if s.dialect == SQLite {
		// The session file is no longer needed to tell a crash apart.
		os.Remove(s.sessionPath(name, owner))
	}
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
	err := f.store.db.GetContext(ctx, &n, f.store.db.Rebind(`SELECT COUNT(*) FROM ferry_locks WHERE name = ? AND token = ?`), f.name, f.token)
	if err != nil {
		return false, fmt.Errorf("queue: check lock %q: %w", f.name, err)
	}
	return n == 1, nil
}
