// Package postgres is the PostgreSQL dialect of ferry's SQL queue engine
// (package queue): its statements, migrations, connection pools, wake-ups
// by LISTEN/NOTIFY, session locks on advisory locks, and the classification
// of its errors. It does not import queue: queue opens it by the
// postgres:// scheme and drives it through its dialect interface.
package postgres

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"io/fs"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations holds the schema: migrations/NNNN_name.sql.
func Migrations() fs.FS { return migrationFiles }

// Dialect is one store's PostgreSQL: its connection string with ferry's
// session defaults, and what its connections may wait for.
type Dialect struct {
	dsn    string        // with pgDefaults (postgresDSN)
	answer time.Duration // answerTimeout of dsn
}

// New returns the dialect of a postgres:// (or postgresql://) connection string.
func New(dsn string) (*Dialect, error) {
	d := postgresDSN(dsn)
	return &Dialect{dsn: d, answer: answerTimeout(d)}, nil
}

// DefaultMaxConns is the default pool size.
func (d *Dialect) DefaultMaxConns() int { return 20 }

// DefaultMaxPoll is the default longest idle poll: LISTEN/NOTIFY wakes
// receivers, polling only covers a lost notification.
func (d *Dialect) DefaultMaxPoll() time.Duration { return time.Second }

// OpenDB opens the main pool, whose commits wait for the WAL flush.
func (d *Dialect) OpenDB() (*sqlx.DB, error) { return openPostgres(d.dsn, d.answer) }

// OpenConsume opens the consumer pool, whose sessions commit
// asynchronously: losing the last of its writes in a server crash only
// redelivers messages.
func (d *Dialect) OpenConsume() (*sqlx.DB, error) {
	return openPostgres(consumeDSN(d.dsn), d.answer)
}

// Channel is the NOTIFY channel of db's schema.
func (d *Dialect) Channel(ctx context.Context, db *sqlx.DB) (string, error) {
	var schema string
	if err := db.GetContext(ctx, &schema, "SELECT current_schema()"); err != nil {
		return "", err
	}
	return notifyChannel(schema), nil
}

// notifyChannel names the NOTIFY channel of a schema. PostgreSQL cuts
// identifiers at 63 bytes and refuses longer channel names, so a long schema
// name is replaced by a hash of it.
func notifyChannel(schema string) string {
	if ch := "ferry." + schema; len(ch) <= 63 {
		return ch
	}
	sum := sha256.Sum256([]byte(schema))
	return "ferry." + hex.EncodeToString(sum[:16])
}

// Prepares is true: the server then parses and plans the hot statements
// once per connection.
func (d *Dialect) Prepares() bool { return true }

// SerialWrites is false: the server orders concurrent writers itself.
func (d *Dialect) SerialWrites() bool { return false }

// IsMalformedJSON reports PostgreSQL's invalid_text_representation, which
// a headers merge meets on a row whose headers are not JSON.
func (d *Dialect) IsMalformedJSON(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code == "22P02"
}

// IDList is a bigint[] argument.
func (d *Dialect) IDList(ids []int64) any { return pq.Array(ids) }

// TextList is a text[] argument; nil is the empty array, not NULL.
func (d *Dialect) TextList(xs []string) any {
	if xs == nil {
		xs = []string{}
	}
	return pq.Array(xs)
}

// AckManyArgs are the ids and the tokens as two arrays.
func (d *Dialect) AckManyArgs(ids, tokens []int64) []any {
	return []any{pq.Array(ids), pq.Array(tokens)}
}

// IsMissingTable reports PostgreSQL's undefined_table (42P01).
func IsMissingTable(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code == "42P01"
}

// IsTransient classifies a PostgreSQL server error: transient when it may
// pass by itself (connection lost, server shutting down or starting up,
// timeouts, lock and serialization conflicts). known is false for an error
// that is not the server's.
func IsTransient(err error) (transient, known bool) {
	var pe *pq.Error
	if !errors.As(err, &pe) {
		return false, false
	}
	switch {
	case strings.HasPrefix(string(pe.Code), "08"), // connection exception
		pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // shutdown, crash, cannot connect now
		pe.Code == "53300",                     // too many connections
		pe.Code == "57014",                     // query cancelled (statement_timeout)
		pe.Code == "55P03",                     // lock not available (lock_timeout)
		pe.Code == "40001", pe.Code == "40P01": // serialization failure, deadlock
		return true, true
	}
	return false, true
}
