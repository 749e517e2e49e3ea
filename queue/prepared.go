package queue

import (
	"context"
	"sync"

	"github.com/jmoiron/sqlx"
)

// preparedStmts caches the consume pool's hot statements, prepared once per
// store where the dialect prepares (PostgreSQL), so the server parses and
// plans them once per connection instead of on every call.
type preparedStmts struct {
	mu sync.Mutex
	m  map[string]*sqlx.Stmt
}

// prepared returns query prepared on the consume pool, or nil where
// statements are not prepared (SQLite, Options.NoPrepare) or preparing failed.
func (s *sqlStore) prepared(query string) *sqlx.Stmt {
	if !s.prepare {
		return nil
	}
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	if st, ok := s.stmts.m[query]; ok {
		return st
	}
	st, err := s.consume.PreparexContext(context.Background(), query)
	if err != nil {
		s.log.Warn("queue: preparing a statement failed; sending it unprepared", "err", err)
		st = nil
	}
	if s.stmts.m == nil {
		s.stmts.m = map[string]*sqlx.Stmt{}
	}
	s.stmts.m[query] = st
	return st
}

// consumeQuery runs a consumer-side query, prepared where possible.
func (s *sqlStore) consumeQuery(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	if st := s.prepared(query); st != nil {
		return st.QueryxContext(ctx, args...)
	}
	return s.consume.QueryxContext(ctx, query, args...)
}

// consumeQueryRow runs a consumer-side single-row query, prepared where possible.
func (s *sqlStore) consumeQueryRow(ctx context.Context, query string, args ...any) *sqlx.Row {
	if st := s.prepared(query); st != nil {
		return st.QueryRowxContext(ctx, args...)
	}
	return s.consume.QueryRowxContext(ctx, query, args...)
}

// closeStmts closes the prepared statements.
func (s *sqlStore) closeStmts() {
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	for _, st := range s.stmts.m {
		if st != nil {
			st.Close()
		}
	}
	s.stmts.m = nil
}
