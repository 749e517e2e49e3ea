// Package testkit holds the helpers ferry's tests share: waiting on a
// condition with a deadline, raw SQL on a store, counting a queue,
// recording what a component logged.
package testkit

import (
	"github.com/ferrybus/ferry/queue"
	"github.com/jmoiron/sqlx"
)

// SQLX wraps a store's pool for tests that write raw SQL with sqlx's
// helpers (Rebind, Get, Select) on either dialect.
func SQLX(s queue.Store) *sqlx.DB {
	driver := "sqlite3"
	if s.Dialect() == queue.Postgres {
		driver = "postgres"
	}
	return sqlx.NewDb(s.DB(), driver)
}
