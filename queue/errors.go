package queue

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
)

// IsMissingTable reports whether err says a table does not exist:
// PostgreSQL's undefined_table (42P01) or SQLite's "no such table". It
// tells an unmigrated database from one that could not be reached.
func IsMissingTable(err error) bool {
	for _, k := range dialectKinds() {
		if k.missingTable(err) {
			return true
		}
	}
	return false
}

// IsTransient reports whether err is a failure to reach or keep the
// database that may pass by itself (connection refused, reset or timed
// out, server shutting down or starting up, SQLite busy), as opposed to a
// wrong configuration or schema.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	// A database's own error is classified by its dialect alone.
	for _, k := range dialectKinds() {
		if transient, known := k.transient(err); known {
			return transient
		}
	}
	var ne net.Error
	switch {
	case errors.Is(err, ErrConnect),
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, net.ErrClosed),
		errors.As(err, &ne):
		return true
	}
	// lib/pq reports some broken connections only in words.
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "connection reset") ||
		strings.Contains(msg, "broken pipe") || strings.Contains(msg, "bad connection")
}
