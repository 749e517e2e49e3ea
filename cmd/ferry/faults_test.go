package main

// Database faults seen from the command line: a database down at start, a
// server that never answers, a database frozen during a stop. The faults
// go to a proxy in front of the shared PostgreSQL, never to the server.

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrybus/ferry/internal/faultproxy"
	"github.com/ferrybus/ferry/internal/testdb"
)

// faultConfig writes a configuration with one plain endpoint, svc, whose
// http handler posts to target, on connection "main" at dsn.
func faultConfig(t *testing.T, dir, dsn, target string) string {
	t.Helper()
	path := filepath.Join(dir, "config.json")
	writeJSON(t, path, map[string]any{
		"connections": map[string]any{"main": dsn},
		"endpoints": map[string]any{
			"svc": map[string]any{
				"inbox": map[string]any{"workQueue": "sql://main/svc", "errorQueue": "sql://main/svc-error",
					"threads": 1, "lease": "5s"},
				"handlers": []any{map[string]any{"type": "*", "http": map[string]any{"urls": []any{target}, "timeout": "60s"}}},
			},
		},
		"routes": []any{map[string]any{"types": []any{"*"}, "queue": "sql://main/svc"}},
		"log":    map[string]any{"level": "debug", "format": "json"},
	})
	return path
}

// logCount counts the lines of a process's log containing every one of ss.
func logCount(p *proc, ss ...string) int {
	b, _ := os.ReadFile(p.log)
	n := 0
lines:
	for _, line := range strings.Split(string(b), "\n") {
		for _, s := range ss {
			if !strings.Contains(line, s) {
				continue lines
			}
		}
		n++
	}
	return n
}

// hits is an HTTP target counting requests; while hold is set, each
// request waits until the client goes away.
type hits struct {
	n    atomic.Int64
	hold atomic.Bool
}

func (h *hits) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Read the body: only then does the server notice a client gone away.
	_, _ = io.Copy(io.Discard, r.Body)
	h.n.Add(1)
	if h.hold.Load() {
		<-r.Context().Done()
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// faultService makes a migrated configuration for svc (faultConfig) in a
// fresh dir, on a proxied PostgreSQL the test can fault, posting to h;
// hold is h.hold from the start.
func faultService(t *testing.T, hold bool) (p *faultproxy.Proxy, h *hits, dir, cfg string) {
	t.Helper()
	p, dsn := faultproxy.Postgres(t, testdb.Postgres(t))
	h = &hits{}
	h.hold.Store(hold)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close) // after the processes are gone: a held request ends with its client
	dir = t.TempDir()
	cfg = faultConfig(t, dir, dsn, srv.URL)
	mustFerry(t, dir, "migrate", "-c", cfg)
	return p, h, dir, cfg
}

// TestOneShotFailsFast: send, queue and errors commands against a database
// that refuses connections, or accepts them and never answers, exit 1 with
// an error naming the connection instead of waiting.
func TestOneShotFailsFast(t *testing.T) {
	t.Parallel()
	p, dsn := faultproxy.Postgres(t, testdb.Postgres(t))
	p.Refuse()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	for _, server := range []struct{ name, dsn string }{
		{"refusing", dsn},
		{"silent", "postgres://postgres@" + silent.Addr().String() + "/test?sslmode=disable"},
	} {
		dir := t.TempDir()
		cfg := faultConfig(t, dir, server.dsn, "http://127.0.0.1:1/")
		for _, args := range [][]string{
			{"send", "--type", "t"},
			{"queue", "ls"},
			{"errors", "ls"},
			{"migrate"},
		} {
			_, stderr, code := ferry(t, dir, nil, append(args, "-c", cfg)...)
			if code != 1 || !strings.Contains(stderr, `connection "main"`) || strings.Contains(stderr, "ferry migrate' first") {
				t.Errorf("%s server: ferry %s: exit %d, stderr %q; want exit 1 and an error naming connection \"main\"",
					server.name, strings.Join(args, " "), code, stderr)
			}
		}
	}
}

// TestRunWaitsForDatabase: `ferry run` started while its database refuses
// connections keeps retrying, logging each attempt, and once the database
// accepts them it starts and handles messages.
func TestRunWaitsForDatabase(t *testing.T) {
	t.Parallel()
	p, h, dir, cfg := faultService(t, false)

	p.Refuse()
	svc := start(t, dir, "svc", "run", "svc", "-c", cfg)
	waitFor(t, 60*time.Second, []*proc{svc}, func() bool {
		return logCount(svc, "database not reachable; retrying") >= 2
	}, func() string { return "two logged start attempts" })
	p.Accept()
	waitFor(t, 60*time.Second, []*proc{svc}, func() bool { return logCount(svc, "endpoint started") > 0 },
		func() string { return "the endpoint starting once the database accepts connections" })
	mustFerry(t, dir, "send", "--type", "t", "-c", cfg)
	waitFor(t, 60*time.Second, []*proc{svc}, func() bool { return h.n.Load() > 0 },
		func() string { return "the message handled" })
	if code := svc.stop(60 * time.Second); code != 0 {
		t.Errorf("ferry run exited %d after SIGTERM, want 0", code)
	}
}

// TestStopWhileFrozen: with the database frozen, `ferry run` warns within
// seconds that it does not answer, naming the connection, and a stop still
// ends by --stop-timeout (exit 1: what it held is delivered again when the
// leases end).
func TestStopWhileFrozen(t *testing.T) {
	t.Parallel()
	p, h, dir, cfg := faultService(t, true)
	svc := start(t, dir, "svc", "run", "svc", "--stop-timeout", "2s", "-c", cfg)
	waitFor(t, 60*time.Second, []*proc{svc}, func() bool { return logCount(svc, "endpoint started") > 0 },
		func() string { return "the endpoint started" })
	mustFerry(t, dir, "send", "--type", "t", "-c", cfg)
	waitFor(t, 60*time.Second, []*proc{svc}, func() bool { return h.n.Load() > 0 },
		func() string { return "the handler running" })

	p.Freeze()
	waitFor(t, 60*time.Second, []*proc{svc}, func() bool {
		return logCount(svc, `"level":"WARN"`, `database not answering`, `"connection":"main"`) > 0
	}, func() string { return `a "database not answering" warning naming connection "main"` })
	// The handler's context ends at the stop timeout; giving its message
	// back needs the frozen database, so the stop gives up at the timeout.
	code := svc.stop(60 * time.Second)
	if code == -1 {
		t.Fatal("ferry run did not exit within 60s of SIGTERM with --stop-timeout 2s and the database frozen")
	}
	if code != 1 {
		t.Errorf("ferry run exited %d, want 1 (the stop did not finish)", code)
	}
	if logCount(svc, "stop-timeout") == 0 {
		t.Error("the log does not say the stop ran out of time")
	}
	p.Thaw()
}

// TestRunRetryHidesPassword: the start-up retries of `ferry run` name the
// connection string with its password hidden.
func TestRunRetryHidesPassword(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := faultConfig(t, dir, "postgres://ferry:"+secret+"@127.0.0.1:1/ferry?sslmode=disable&connect_timeout=5", "http://127.0.0.1:1/")
	svc := start(t, dir, "svc", "run", "svc", "-c", cfg)
	waitFor(t, 60*time.Second, []*proc{svc}, func() bool {
		return logCount(svc, "database not reachable; retrying", `connection \"main\"`, "ferry:xxxxx@127.0.0.1:1") >= 2
	}, func() string { return "two logged start attempts naming the connection, password hidden" })
	if code := svc.stop(60 * time.Second); code != 0 {
		t.Errorf("ferry run stopped while waiting for its database: exit %d, want 0", code)
	}
	if b, _ := os.ReadFile(svc.log); strings.Contains(string(b), secret) {
		t.Errorf("ferry run printed a password:\n%s", b)
	}
}
