package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/lib/pq"
)

// malformedHeadersErr reports whether a bulk move failed because a row's
// stored headers are not valid JSON (the database could not merge the new
// headers into them): PostgreSQL's invalid_text_representation, SQLite's
// "malformed JSON".
func malformedHeadersErr(err error) bool {
	var pe *pq.Error
	if errors.As(err, &pe) {
		return pe.Code == "22P02"
	}
	return err != nil && strings.Contains(err.Error(), "malformed JSON")
}

// moveFencedRows is the fenced move row by row, for when the bulk statement
// failed on a row with malformed headers (written by a producer other than
// ferry): the headers are merged in Go, and a row whose headers cannot be
// decoded moves with them untouched, byte for byte, for its receiver to park
// as a decode failure. One transaction: the fence is checked in it, with the
// rows locked.
func (q *sqlQueue) moveFencedRows(ctx context.Context, dst *sqlQueue, limit int, setHeaders map[string]string, fence Fence) (int, error) {
	s := q.store
	pg := s.dialect == Postgres
	if !pg {
		defer s.lockWrites()()
	}
	db := s.consume
	if db == nil {
		db = s.db
	}
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	s.ops.Add(1)
	fenceQ := `SELECT 1 FROM ferry_locks WHERE name = ? AND token = ?`
	if pg {
		fenceQ += ` FOR SHARE`
	}
	var held int
	switch err := tx.GetContext(ctx, &held, tx.Rebind(fenceQ), fence.name, fence.token); {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil // the lock changed hands: move nothing
	case err != nil:
		return 0, fmt.Errorf("fence: %w", err)
	}
	pick := `SELECT id, headers FROM ferry_messages WHERE queue = ? AND visible_at <= ? ORDER BY priority DESC, id LIMIT ?`
	if pg {
		pick += ` FOR UPDATE SKIP LOCKED`
	}
	var rows []struct {
		ID      int64  `db:"id"`
		Headers string `db:"headers"`
	}
	s.ops.Add(1)
	if err := tx.SelectContext(ctx, &rows, tx.Rebind(pick), q.name, micros(time.Now()), limit); err != nil {
		return 0, fmt.Errorf("pick rows: %w", err)
	}
	update := tx.Rebind(`UPDATE ferry_messages SET queue = ?, lease_token = 0, headers = ? WHERE id = ?`)
	for _, r := range rows {
		headers := r.Headers
		if h, err := decodeHeaders(r.Headers); err == nil {
			merged := make(map[string]string, len(h)+len(setHeaders))
			maps.Copy(merged, h)
			maps.Copy(merged, setHeaders)
			if headers, err = encodeHeaders(merged); err != nil {
				return 0, err
			}
		}
		s.ops.Add(1)
		if _, err := tx.ExecContext(ctx, update, dst.name, headers, r.ID); err != nil {
			return 0, fmt.Errorf("move row %d: %w", r.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	if len(rows) > 0 {
		s.notify(ctx, dst.name)
	}
	return len(rows), nil
}
