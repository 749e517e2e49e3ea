// Package sqlite is the SQLite dialect of ferry's SQL queue engine
// (package queue): its statements, migrations, connection settings, write
// serialisation, session locks on files beside the database, and the
// classification of its errors. It does not import queue: queue opens it
// by the sqlite:// scheme and drives it through its dialect interface.
package sqlite

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations holds the schema: migrations/NNNN_name.sql.
func Migrations() fs.FS { return migrationFiles }

// Dialect is one store's SQLite file.
type Dialect struct {
	file string // the go-sqlite3 DSN (sqliteDSN)
	path string // the database file, beside which session files go
}

// New returns the dialect of a sqlite://PATH[?params] connection string.
func New(dsn string) (*Dialect, error) {
	file, err := sqliteDSN(dsn)
	if err != nil {
		return nil, err
	}
	path, _, _ := strings.Cut(strings.TrimPrefix(dsn, "sqlite://"), "?")
	return &Dialect{file: file, path: path}, nil
}

// sqliteDSN turns sqlite://PATH[?params] into a go-sqlite3 DSN with the
// settings several processes need to share one file safely.
func sqliteDSN(dsn string) (string, error) {
	rest := strings.TrimPrefix(dsn, "sqlite://")
	path, query, _ := strings.Cut(rest, "?")
	if path == "" || path == ":memory:" {
		return "", fmt.Errorf("connection %q: SQLite needs a file path (sqlite://./ferry.db)", dsn)
	}
	params, err := url.ParseQuery(query)
	if err != nil {
		return "", fmt.Errorf("connection %q: %w", dsn, err)
	}
	defaults := map[string]string{
		"_journal_mode": "WAL",
		"_busy_timeout": "10000",
		"_txlock":       "immediate", // a transaction takes the write lock at BEGIN
		"_synchronous":  "NORMAL",
		// No statement cache (_stmt_cache_size): measured, it made Receive
		// slower at small batches and gained nothing end to end (BENCHMARKS.md).
	}
	for k, v := range defaults {
		if params.Get(k) == "" {
			params.Set(k, v)
		}
	}
	return "file:" + path + "?" + params.Encode(), nil
}

// DefaultMaxConns is the default pool size.
func (d *Dialect) DefaultMaxConns() int { return 8 }

// DefaultMaxPoll is the default longest idle poll: short, because other
// processes cannot signal.
func (d *Dialect) DefaultMaxPoll() time.Duration { return 250 * time.Millisecond }

// OpenDB opens the pool on the file.
func (d *Dialect) OpenDB() (*sqlx.DB, error) { return sqlx.Open("sqlite3", d.file) }

// OpenConsume is nil: consumer writes share the one pool.
func (d *Dialect) OpenConsume() (*sqlx.DB, error) { return nil, nil }

// Channel is "": SQLite cannot wake other processes.
func (d *Dialect) Channel(context.Context, *sqlx.DB) (string, error) { return "", nil }

// Listen is never called (no channel); it listens to nothing.
func (d *Dialect) Listen(string, string, string, *slog.Logger, func(string), func()) io.Closer {
	return noListener{}
}

// noListener is the listener of a database that has no channel.
type noListener struct{}

func (noListener) Close() error { return nil }

// Prepares is false: measured, preparing gained nothing (see sqliteDSN).
func (d *Dialect) Prepares() bool { return false }

// SerialWrites is true: this process's writes to the file take turns, so
// that SQLite's busy handler is needed only between processes.
func (d *Dialect) SerialWrites() bool { return true }

// IsMalformedJSON reports SQLite's "malformed JSON", which a headers merge
// meets on a row whose headers are not JSON.
func (d *Dialect) IsMalformedJSON(err error) bool {
	return err != nil && strings.Contains(err.Error(), "malformed JSON")
}

// IDList is a JSON array, the one parameter json_each turns into a set:
// the statement's text is the same for any count.
func (d *Dialect) IDList(ids []int64) any { return jsonList(ids) }

// TextList is a JSON array of strings.
func (d *Dialect) TextList(xs []string) any { return jsonList(xs) }

// AckManyArgs is one JSON array of [id, token] pairs: one constant
// statement, whatever the batch, which SQLite's statement cache keeps compiled.
func (d *Dialect) AckManyArgs(ids, tokens []int64) []any {
	var b strings.Builder
	b.WriteByte('[')
	for i := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('[')
		b.WriteString(strconv.FormatInt(ids[i], 10))
		b.WriteByte(',')
		b.WriteString(strconv.FormatInt(tokens[i], 10))
		b.WriteByte(']')
	}
	b.WriteByte(']')
	return []any{b.String()}
}

// jsonList encodes ids or names as a JSON array.
func jsonList[T int64 | string](xs []T) string {
	if len(xs) == 0 {
		return "[]"
	}
	if ints, ok := any(xs).([]int64); ok {
		var b strings.Builder
		b.WriteByte('[')
		for i, x := range ints {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprint(&b, x)
		}
		b.WriteByte(']')
		return b.String()
	}
	out, _ := json.Marshal(xs) // strings always encode
	return string(out)
}

// IsMissingTable reports SQLite's "no such table".
func IsMissingTable(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && strings.Contains(se.Error(), "no such table")
}

// IsTransient classifies a SQLite error: transient when the file is busy
// or locked by another connection. known is false for an error that is
// not SQLite's.
func IsTransient(err error) (transient, known bool) {
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return false, false
	}
	return se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked, true
}
