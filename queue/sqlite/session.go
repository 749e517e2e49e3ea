package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jmoiron/sqlx"
)

// Session is an owner's liveness for a lock, as queue.LockSession.
type Session = interface {
	Alive(ctx context.Context) error
	Close() error
}

// sessionPath is the file whose lock marks owner's session of lock name
// alive: beside the database file, named by a hash.
func (d *Dialect) sessionPath(name, owner string) string {
	sum := sha256.Sum256([]byte(name + "\x00" + owner))
	return d.path + "-lock-" + hex.EncodeToString(sum[:8])
}

// lockSession marks a lock owner alive: the SQLite file is on this
// machine, so the session is an exclusive lock on a small file beside the
// database, which the kernel drops when the process dies.
type lockSession struct {
	file *sessionFile
}

// OpenSession locks owner's session file for lock name.
func (d *Dialect) OpenSession(_ context.Context, _ *sqlx.DB, name, owner string) (Session, error) {
	f, err := openSessionFile(d.sessionPath(name, owner))
	if err != nil {
		return nil, fmt.Errorf("session of owner %q: %w", owner, err)
	}
	if f == nil {
		return noSession{}, nil // no file locks here: a plain lease
	}
	return &lockSession{file: f}, nil
}

// Alive is always nil: a file lock lasts as long as the process.
func (l *lockSession) Alive(context.Context) error { return nil }

// Close ends the session, which frees its lock. A nil session is a no-op.
func (l *lockSession) Close() error {
	if l == nil {
		return nil
	}
	return l.file.close()
}

// noSession is the session where the platform has no file locks: the lock
// is a plain lease, freed when it expires.
type noSession struct{}

func (noSession) Alive(context.Context) error { return nil }
func (noSession) Close() error                { return nil }

// DeadHolder reads who holds lock name and, when it is another owner
// with an unexpired lease whose session file lock can be taken (its
// process died), returns that owner, and a release to call once the lock
// is taken over. Otherwise "" and a no-op release.
func (d *Dialect) DeadHolder(ctx context.Context, db *sqlx.DB, name, owner string) (string, func(), error) {
	var row struct {
		Owner     string `db:"owner"`
		ExpiresAt int64  `db:"expires_at"`
	}
	err := db.GetContext(ctx, &row, `SELECT owner, expires_at FROM ferry_locks WHERE name = ?`, name)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", func() {}, nil
	case err != nil:
		return "", nil, fmt.Errorf("queue: lock %q: read holder: %w", name, err)
	}
	if row.Owner == owner || row.ExpiresAt < time.Now().UnixMicro() {
		return "", func() {}, nil // ours, or free anyway
	}
	f, err := tryDeadSession(d.sessionPath(name, row.Owner))
	if err != nil || f == nil {
		return "", func() {}, nil // alive (or unknown): wait for its lease
	}
	return row.Owner, func() { f.close() }, nil
}

// ForgetSession removes owner's session file once its lock is freed: it is
// no longer needed to tell a crash apart.
func (d *Dialect) ForgetSession(name, owner string) {
	os.Remove(d.sessionPath(name, owner))
}
