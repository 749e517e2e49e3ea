package postgres

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/lib/pq"
)

// Health checks of a PostgreSQL store: how often, and how long an answer
// may take before the database counts as not answering.
const (
	healthInterval = time.Second
	healthTimeout  = 3 * time.Second
)

// listening is a store's LISTEN connection and its health checks.
type listening struct {
	listener *pq.Listener
	health   *health
	once     sync.Once
}

// Listen starts the LISTEN connection of channel, which calls wake with
// each notified queue and wakeAll after a reconnection (notifications may
// have been missed), and the health checks of the server.
func (d *Dialect) Listen(channel, connection, shownDSN string, log *slog.Logger, wake func(queue string), wakeAll func()) io.Closer {
	// The LISTEN connection waits for notifications for as long as there
	// are none: no answer timeout, only keepalives.
	l := pq.NewDialListener(&pgDialer{}, d.dsn, 100*time.Millisecond, 10*time.Second, func(ev pq.ListenerEventType, err error) {
		switch ev {
		case pq.ListenerEventReconnected:
			wakeAll() // notifications may have been missed
		case pq.ListenerEventConnectionAttemptFailed:
			log.Debug("queue: LISTEN connection failed; receivers poll", "connection", connection, "err", err)
		}
	})
	if err := l.Listen(channel); err != nil {
		log.Warn("queue: LISTEN failed; receivers poll", "connection", connection, "channel", channel, "err", err)
	}
	ls := &listening{listener: l, health: d.startHealth(connection, shownDSN, log, wakeAll)}
	go func() {
		for n := range l.Notify {
			if n == nil { // reconnected: wake everybody
				wakeAll()
				continue
			}
			wake(n.Extra)
		}
	}()
	return ls
}

// Close stops listening and the health checks.
func (ls *listening) Close() error {
	ls.once.Do(func() {
		ls.listener.Close()
		if ls.health != nil {
			ls.health.stop()
		}
	})
	return nil
}

// health asks the server a trivial question every healthInterval on a
// connection of its own, so that a database that stops answering (down,
// frozen, partitioned away) is reported within seconds, once, however many
// operations fail meanwhile, and its return once too.
type health struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startHealth starts the checks; wakeAll is called when the database
// answers again.
func (d *Dialect) startHealth(connection, shownDSN string, log *slog.Logger, wakeAll func()) *health {
	db, err := openPostgres(d.dsn, healthTimeout)
	if err != nil {
		log.Warn("queue: health checks not started", "connection", connection, "err", err)
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
				log.Warn("queue: database not answering", "connection", connection, "dsn", shownDSN, "err", err)
			case err == nil && !down.IsZero():
				log.Info("queue: database answering again", "connection", connection,
					"down", time.Since(down).Round(100*time.Millisecond))
				down = time.Time{}
				// Receivers waiting out an error backoff try again now.
				wakeAll()
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
