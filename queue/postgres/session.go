package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// sessionKey is the SQL of the advisory lock key that marks owner's session
// alive for lock name, scoped to the schema.
func sessionKey(name, owner string) string {
	return `hashtextextended(current_schema() || ':ferry_lock:' || ` + name + ` || ':' || ` + owner + `, 0)`
}

// Session is an owner's liveness for a lock, as queue.LockSession.
type Session = interface {
	Alive(ctx context.Context) error
	Close() error
}

// lockSession marks a lock owner alive for as long as one database session
// lasts: it holds an advisory lock on a dedicated connection, which the
// server drops the moment the process dies or the connection closes. The
// acquire statement (LockSQL) then treats that owner's lock as free.
type lockSession struct {
	conn *sql.Conn
}

// OpenSession takes owner's session lock for lock name on a connection of
// its own.
func (d *Dialect) OpenSession(ctx context.Context, db *sqlx.DB, name, owner string) (Session, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("session connection: %w", err)
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(`+sessionKey("$1::text", "$2::text")+`)`, name, owner).Scan(&ok); err != nil {
		conn.Close()
		return nil, fmt.Errorf("session lock: %w", err)
	}
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("session lock of owner %q is held by another session", owner)
	}
	return &lockSession{conn: conn}, nil
}

// DeadHolder finds nobody: the acquire statement itself tells a holder
// without a session.
func (d *Dialect) DeadHolder(context.Context, *sqlx.DB, string, string) (string, func(), error) {
	return "", func() {}, nil
}

// ForgetSession has nothing to clean up: the server dropped the lock.
func (d *Dialect) ForgetSession(string, string) {}

// Alive reports an error when the session's connection no longer answers:
// its lock is then gone, and a new session must be opened.
func (l *lockSession) Alive(ctx context.Context) error {
	if l == nil {
		return nil
	}
	if _, err := l.conn.ExecContext(ctx, `SELECT 1`); err != nil {
		return fmt.Errorf("queue: lock session: %w", err)
	}
	return nil
}

// Close ends the session, which frees its lock. A nil session is a no-op.
func (l *lockSession) Close() error {
	if l == nil {
		return nil
	}
	// The server drops the lock only once its backend has noticed the
	// closed connection, a moment later; unlocking first frees it at once,
	// so that an owner reopening its session right away finds it free. If
	// the connection is dead already, so is the lock.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, _ = l.conn.ExecContext(ctx, `SELECT pg_advisory_unlock_all()`)
	cancel()
	// Closing the connection ends the server session; a raw close rather
	// than a return to the pool.
	_ = l.conn.Raw(func(any) error { return driver.ErrBadConn })
	if err := l.conn.Close(); err != nil && !errors.Is(err, sql.ErrConnDone) {
		return fmt.Errorf("queue: close lock session: %w", err)
	}
	return nil
}
