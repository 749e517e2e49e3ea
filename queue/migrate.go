package queue

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Migration is one versioned schema change embedded in the binary.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations lists the embedded migrations of a dialect, oldest first.
// Each dialect's package embeds its own (queue/postgres/migrations,
// queue/sqlite/migrations).
func Migrations(d Dialect) ([]Migration, error) {
	kind, ok := kindOf(d)
	if !ok {
		return nil, fmt.Errorf("queue: migrations of %s: unknown dialect", d)
	}
	files, dir := kind.migrations(), "migrations"
	entries, err := fs.ReadDir(files, dir)
	if err != nil {
		return nil, fmt.Errorf("queue: migrations of %s: %w", d, err)
	}
	var out []Migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("queue: migration file %q is not named NNNN_name.sql", e.Name())
		}
		body, err := fs.ReadFile(files, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("queue: read migration %q: %w", e.Name(), err)
		}
		out = append(out, Migration{Version: v, Name: strings.TrimSuffix(e.Name(), ".sql"), SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Migrate applies the embedded migrations that the database lacks (see
// MigrateCount for how many). It is safe to run twice, and from several
// processes at once: a lock (an advisory lock on PostgreSQL, the write lock
// on SQLite) lets one apply them while the others wait and then find nothing
// left to do.
func (s *sqlStore) Migrate(ctx context.Context) error {
	_, err := s.MigrateCount(ctx)
	return err
}

// MigrateCount is Migrate that also reports how many migrations it applied.
func (s *sqlStore) MigrateCount(ctx context.Context) (int, error) {
	migs, err := Migrations(s.kind)
	if err != nil {
		return 0, err
	}
	defer s.lockWrites()()
	tx, err := s.db.BeginTxx(ctx, nil) // SQLite: BEGIN IMMEDIATE, the write lock
	if err != nil {
		return 0, fmt.Errorf("queue: migrate: begin: %w", err)
	}
	defer tx.Rollback()
	if s.q.migrateLock != "" {
		if _, err := tx.ExecContext(ctx, s.q.migrateLock); err != nil {
			return 0, fmt.Errorf("queue: migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, s.q.migrateCreate); err != nil {
		return 0, fmt.Errorf("queue: migrate: create ferry_migrations: %w", err)
	}
	var have []int
	if err := tx.SelectContext(ctx, &have, s.q.migrateRead); err != nil {
		return 0, fmt.Errorf("queue: migrate: read versions: %w", err)
	}
	done := map[int]bool{}
	for _, v := range have {
		done[v] = true
	}
	applied := 0
	for _, m := range migs {
		if done[m.Version] {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return 0, fmt.Errorf("queue: migration %s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, s.q.migrateRecord,
			m.Version, m.Name, micros(time.Now())); err != nil {
			return 0, fmt.Errorf("queue: record migration %s: %w", m.Name, err)
		}
		applied++
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("queue: migrate: commit: %w", err)
	}
	return applied, nil
}

// ErrUnmigrated is returned (wrapped) by PendingMigrations when the database
// has no schema version table: it was never migrated.
var ErrUnmigrated = errors.New("database schema not migrated")

// PendingMigrations lists the embedded migrations the database lacks.
func (s *sqlStore) PendingMigrations(ctx context.Context) ([]Migration, error) {
	migs, err := Migrations(s.kind)
	if err != nil {
		return nil, err
	}
	var have []int
	if err := s.db.SelectContext(ctx, &have, s.q.migrateRead); err != nil {
		// Only a missing table means an unmigrated schema: a connection
		// reset or a timeout says nothing about the schema.
		if IsMissingTable(err) {
			return nil, fmt.Errorf("%w: %w", ErrUnmigrated, err)
		}
		return nil, fmt.Errorf("queue: read schema version: %w", err)
	}
	done := map[int]bool{}
	for _, v := range have {
		done[v] = true
	}
	var pending []Migration
	for _, m := range migs {
		if !done[m.Version] {
			pending = append(pending, m)
		}
	}
	return pending, nil
}
