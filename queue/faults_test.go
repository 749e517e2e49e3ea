package queue_test

import (
	"context"
	"errors"
	"github.com/ferrybus/ferry/internal/testkit"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ferrybus/ferry/internal/faultproxy"
	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/queue"
)

// returnsWithin runs f and fails the test if it has not returned within
// limit: a guard against hangs, not a timing assertion (limit is far above
// what f needs).
func returnsWithin[T any](t *testing.T, limit time.Duration, what string, f func() T) T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	select {
	case v := <-ch:
		return v
	case <-time.After(limit):
		t.Fatalf("%s did not return within %s: it hangs", what, limit)
		panic("unreachable")
	}
}

// silentServer accepts TCP connections and never answers.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range held {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestOpenSilentServer: a server that accepts TCP and never answers fails
// Open by the default connect timeout, with an error naming the server.
func TestOpenSilentServer(t *testing.T) {
	dsn := "postgres://ferry@" + silentServer(t) + "/test?sslmode=disable"
	err := returnsWithin(t, 60*time.Second, "Open of a silent server", func() error {
		s, err := queue.Open(context.Background(), dsn, queue.Options{})
		if err == nil {
			s.Close()
		}
		return err
	})
	if err == nil {
		t.Fatal("Open of a silent server succeeded")
	}
	if !errors.Is(err, queue.ErrConnect) || !strings.Contains(err.Error(), dsn) {
		t.Errorf("error %q: want ErrConnect naming %s", err, dsn)
	}
	if !queue.IsTransient(err) {
		t.Errorf("IsTransient(%v) = false", err)
	}
}

// TestSessionDefaults: ferry's sessions get statement and lock timeouts
// unless the connection string sets its own, which wins.
func TestSessionDefaults(t *testing.T) {
	base := testdb.Postgres(t)
	show := func(dsn, setting string) string {
		t.Helper()
		s, err := queue.Open(context.Background(), dsn, queue.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var v string
		if err := testkit.SQLX(s).GetContext(context.Background(), &v, "SHOW "+setting); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := show(base, "statement_timeout"); got != "30s" {
		t.Errorf("default statement_timeout = %q, want 30s", got)
	}
	if got := show(base, "lock_timeout"); got != "10s" {
		t.Errorf("default lock_timeout = %q, want 10s", got)
	}
	if got := show(base+"&statement_timeout=1234", "statement_timeout"); got != "1234ms" {
		t.Errorf("statement_timeout from the DSN = %q, want 1234ms", got)
	}
	if got := show(base+"&options=-c%20lock_timeout%3D2s", "lock_timeout"); got != "2s" {
		t.Errorf("lock_timeout from the DSN's options = %q, want 2s", got)
	}
}

// TestFrozenDatabase: when the database stops answering, an operation in
// flight fails instead of hanging, the store warns within seconds naming
// the connection, and logs once that it answers again after the thaw.
func TestFrozenDatabase(t *testing.T) {
	p, dsn := faultproxy.Postgres(t, testdb.Postgres(t))
	rec, log := testkit.NewLog()
	// A short statement_timeout makes the answer timeout short too.
	s, err := queue.Open(context.Background(), dsn+"&statement_timeout=1s", queue.Options{Name: "frozen", AutoMigrate: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q, err := s.Queue("work")
	if err != nil {
		t.Fatal(err)
	}
	q.Wake() // a receiver starts the health checks
	if _, err := q.Count(context.Background()); err != nil {
		t.Fatal(err)
	}

	p.Freeze()
	err = returnsWithin(t, 60*time.Second, "Count on a frozen database", func() error {
		_, err := q.Count(context.Background())
		return err
	})
	if err == nil {
		t.Fatal("Count on a frozen database succeeded")
	}
	if !queue.IsTransient(err) {
		t.Errorf("IsTransient(%v) = false", err)
	}
	w := rec.Wait(t, 30*time.Second, "database not answering")
	if w.Level != slog.LevelWarn || w.Attrs["connection"].String() != "frozen" { // WARN
		t.Errorf("warning %v: want WARN naming connection frozen", w)
	}

	p.Thaw()
	back := rec.Wait(t, 30*time.Second, "database answering again")
	if back.Attrs["connection"].String() != "frozen" || back.Attrs["down"].Duration() <= 0 {
		t.Errorf("recovery line %v: want the connection and how long it was down", back)
	}
	if _, err := q.Count(context.Background()); err != nil {
		t.Errorf("Count after the thaw: %v", err)
	}
	if n := len(rec.Matching("database not answering")); n != 1 {
		t.Errorf("%d 'not answering' lines for one freeze, want 1", n)
	}
}

// TestIsMissingTable tells an unmigrated database from an unreachable one.
func TestIsMissingTable(t *testing.T) {
	for _, dialect := range testdb.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			s, err := queue.Open(context.Background(), testdb.DSN(t, dialect), queue.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			_, err = s.DB().ExecContext(context.Background(), "SELECT version FROM ferry_migrations")
			if err == nil || !queue.IsMissingTable(err) {
				t.Errorf("IsMissingTable(%v) = false", err)
			}
			if queue.IsTransient(err) {
				t.Errorf("IsTransient(%v) = true", err)
			}
		})
	}
	if queue.IsMissingTable(errors.New("read tcp: connection reset by peer")) {
		t.Error("a connection reset counted as a missing table")
	}
}
