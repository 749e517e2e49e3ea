package queue

import (
	"context"

	"time"
)

// health asks a PostgreSQL store's server a trivial question every
// healthInterval on a connection of its own, so that a database that stops
// answering (down, frozen, partitioned away) is reported within seconds,
// once, however many operations fail meanwhile, and its return once too.
type health struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startHealth starts the checks of a PostgreSQL store; nil on SQLite.
func (s *sqlStore) startHealth() *health {
	if s.dialect != Postgres {
		return nil
	}
	db, err := openPostgres(s.pgDSN, healthTimeout)
	if err != nil {
		s.log.Warn("queue: health checks not started", "connection", s.opts.Name, "err", err)
		return nil
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	ctx, cancel := context.WithCancel(context.Background())
	h := &health{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		defer db.Close()
		var down time.Time // when the failures began; zero while answering
		t := time.NewTicker(healthInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			asked := time.Now()
			cctx, ccancel := context.WithTimeout(ctx, healthTimeout)
			_, err := db.ExecContext(cctx, "SELECT 1")
			ccancel()
			switch {
			case ctx.Err() != nil:
				return
			case err != nil && down.IsZero():
				down = asked // it has not answered since then
				s.log.Warn("queue: database not answering", "connection", s.opts.Name, "dsn", RedactDSN(s.dsn), "err", err)
			case err == nil && !down.IsZero():
				s.log.Info("queue: database answering again", "connection", s.opts.Name,
					"down", time.Since(down).Round(100*time.Millisecond))
				down = time.Time{}
				// Receivers waiting out an error backoff try again now.
				s.signals.fireAll()
			}
		}
	}()
	return h
}

// stop ends the checks without waiting for one in flight on a server that
// does not answer: that one ends by healthTimeout on its own.
func (h *health) stop() {
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(100 * time.Millisecond):
	}
}
