package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrybus/ferry/internal/testkit"
)

// traceConfig is a plain endpoint on SQLite whose handler logs.
func traceConfig(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "config.json")
	writeJSON(t, path, map[string]any{
		"connections": map[string]any{"default": "sqlite://" + filepath.Join(dir, "ferry.db")},
		"endpoints": map[string]any{
			"orders": map[string]any{
				"inbox":    map[string]any{"workQueue": "sql://default/orders", "errorQueue": "sql://default/error"},
				"handlers": []any{map[string]any{"type": "*", "log": map[string]any{}}},
			},
		},
		"routes": []any{map[string]any{"types": []any{"*"}, "queue": "sql://default/orders"}},
	})
	return path
}

// An exporter or protocol ferry does not know stops `ferry run` with a
// usage error (exit code 2) naming the variable.
func TestRunRefusesUnknownTracingValues(t *testing.T) {
	t.Parallel()
	_, dir := workDirs(t)
	cfg := traceConfig(t, dir)
	for _, env := range [][]string{
		{"OTEL_TRACES_EXPORTER=zipkin"},
		{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=http/json"},
	} {
		_, stderr, code := ferry(t, dir, env, "run", "orders", "-c", cfg)
		name, _, _ := strings.Cut(env[len(env)-1], "=")
		if code != 2 || !strings.Contains(stderr, name) {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming %s", env, code, stderr, name)
		}
	}
}

// OTEL_TRACES_EXPORTER=console: `ferry run` writes the spans of what it
// handles to its standard output, flushed when it stops, with
// service.name ferry and the endpoint.
func TestRunConsoleTracing(t *testing.T) {
	t.Parallel()
	_, dir := workDirs(t)
	cfg := traceConfig(t, dir)
	mustFerry(t, dir, "migrate", "-c", cfg)
	mustFerry(t, dir, "send", "-c", cfg, "--type", "orders.placed", "--body", `{"id":"o1"}`)

	var out strings.Builder
	stderr := &syncWriter{}
	cmd := exec.Command(ferryBin, "run", "orders", "-c", cfg)
	cmd.Dir = dir
	cmd.Env = childEnv("OTEL_TRACES_EXPORTER=console")
	cmd.Stdout, cmd.Stderr = &out, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	})
	testkit.Eventually(t, 30*time.Second, "the message handled", func() bool {
		for _, r := range queues(t, dir, cfg) {
			if r.URI == "sql://default/orders" && r.Ready+r.InFlight > 0 {
				return false
			}
		}
		return strings.Contains(stderr.String(), "tracing on")
	})
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		if waitErr != nil {
			t.Fatalf("ferry run: %v\n%s", waitErr, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ferry run did not stop")
	}
	got := out.String()
	for _, want := range []string{`"Name":"handle sql://default/orders"`, `"messaging.system"`, `"ferry.endpoint"`, `"Value":"ferry"`} {
		if !strings.Contains(got, want) {
			t.Errorf("console spans lack %s:\n%s\nstderr:\n%s", want, got, stderr.String())
		}
	}
}

// syncWriter is a buffer a process writes to while the test reads it.
type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
