package queue

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// sessionPath is the file whose lock marks owner's session of lock name
// alive on a SQLite store: beside the database file, named by a hash.
func (s *sqlStore) sessionPath(name, owner string) string {
	path, _, _ := strings.Cut(strings.TrimPrefix(s.dsn, "sqlite://"), "?")
	sum := sha256.Sum256([]byte(name + "\x00" + owner))
	return path + "-lock-" + hex.EncodeToString(sum[:8])
}

// deadSQLiteHolder reads who holds lock name and, when it is another owner
// with an unexpired lease whose session file lock can be taken (its
// process died), returns that owner, and a release to call once the lock
// is taken over. Otherwise "" and a no-op release.
func (s *sqlStore) deadSQLiteHolder(ctx context.Context, name, owner string) (string, func(), error) {
	var row struct {
		Owner     string `db:"owner"`
		ExpiresAt int64  `db:"expires_at"`
	}
	err := s.db.GetContext(ctx, &row, s.db.Rebind(`SELECT owner, expires_at FROM ferry_locks WHERE name = ?`), name)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", func() {}, nil
	case err != nil:
		return "", nil, fmt.Errorf("queue: lock %q: read holder: %w", name, err)
	}
	if row.Owner == owner || row.ExpiresAt < micros(time.Now()) {
		return "", func() {}, nil // ours, or free anyway
	}
	f, err := tryDeadSession(s.sessionPath(name, row.Owner))
	if err != nil || f == nil {
		return "", func() {}, nil // alive (or unknown): wait for its lease
	}
	return row.Owner, func() { f.close() }, nil
}
