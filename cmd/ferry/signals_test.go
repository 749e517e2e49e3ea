package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestWatchStopSignals: the first signal cancels the context and nothing
// more; the second is handed to force.
func TestWatchStopSignals(t *testing.T) {
	sigs := make(chan os.Signal, 2)
	forced := make(chan os.Signal, 2)
	ctx, stop := watchStopSignals(context.Background(), sigs, func(sig os.Signal) { forced <- sig })
	defer stop()

	if ctx.Err() != nil {
		t.Fatal("context cancelled before any signal")
	}
	sigs <- syscall.SIGINT
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the first signal did not cancel the context within 5s")
	}
	select {
	case sig := <-forced:
		t.Fatalf("the first signal forced an exit (%v)", sig)
	default:
	}

	sigs <- syscall.SIGTERM
	select {
	case sig := <-forced:
		if sig != syscall.SIGTERM {
			t.Errorf("force got %v, want the second signal, SIGTERM", sig)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second signal did not force an exit within 5s")
	}
}

// TestWatchStopSignalsStop: stop without signals cancels the context and
// ends the watch: a signal after it forces nothing.
func TestWatchStopSignalsStop(t *testing.T) {
	sigs := make(chan os.Signal, 2)
	forced := make(chan os.Signal, 2)
	ctx, stop := watchStopSignals(context.Background(), sigs, func(sig os.Signal) { forced <- sig })
	stop()
	stop() // twice is fine
	if ctx.Err() == nil {
		t.Error("stop did not cancel the context")
	}
	sigs <- syscall.SIGINT
	sigs <- syscall.SIGINT
	select {
	case sig := <-forced:
		t.Errorf("a signal after stop forced an exit (%v)", sig)
	default:
	}

	// A parent's cancellation is not a signal: the next signal is the first.
	parent, cancel := context.WithCancel(context.Background())
	sigs = make(chan os.Signal, 2)
	ctx, stop = watchStopSignals(parent, sigs, func(sig os.Signal) { forced <- sig })
	defer stop()
	cancel()
	<-ctx.Done()
	sigs <- syscall.SIGINT
	sigs <- syscall.SIGINT
	select {
	case <-forced:
	case <-time.After(5 * time.Second):
		t.Fatal("the second signal after the parent's cancellation did not force an exit within 5s")
	}
}

func TestSignalExitCode(t *testing.T) {
	for sig, want := range map[os.Signal]int{os.Interrupt: 130, syscall.SIGTERM: 143} {
		if got := signalExitCode(sig); got != want {
			t.Errorf("signalExitCode(%v) = %d, want %d", sig, got, want)
		}
	}
}

// TestRunSecondSignal: `ferry run` stopping gracefully waits for a handler
// that never finishes (--stop-timeout 10m); a second SIGINT or SIGTERM makes
// it exit at once, with 128+signal, saying so in its log.
func TestRunSecondSignal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
		code int
	}{
		{"SIGINT", syscall.SIGINT, 130},
		{"SIGTERM", syscall.SIGTERM, 143},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var arrived atomic.Int32
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				arrived.Add(1)
				select { // never answers while ferry runs
				case <-r.Context().Done():
				case <-release:
				}
			}))
			t.Cleanup(srv.Close)
			t.Cleanup(func() { close(release) }) // before srv.Close

			cfg := filepath.Join(dir, "config.json")
			writeJSON(t, cfg, map[string]any{
				"connections": map[string]any{"default": "sqlite://" + filepath.Join(dir, "ferry.db")},
				"endpoints": map[string]any{
					"slow": map[string]any{
						"inbox":    map[string]any{"workQueue": "sql://default/slow-work", "errorQueue": "sql://default/error", "threads": 1},
						"handlers": []any{map[string]any{"type": "*", "http": map[string]any{"urls": []any{srv.URL}, "timeout": "10m"}}},
					},
				},
				"log": map[string]any{"level": "info", "format": "json"},
			})
			if out, stderr, code := ferry(t, dir, nil, "migrate", "-c", cfg); code != 0 {
				t.Fatalf("ferry migrate: exit %d\n%s%s", code, out, stderr)
			}
			p := start(t, dir, "slow", "run", "slow", "-c", cfg, "--stop-timeout", "10m")
			if out, stderr, code := ferry(t, dir, nil, "send", "--type", "t", "--to", "sql://default/slow-work", "-c", cfg); code != 0 {
				t.Fatalf("ferry send: exit %d\n%s%s", code, out, stderr)
			}
			waitFor(t, 30*time.Second, []*proc{p}, func() bool { return arrived.Load() > 0 },
				func() string { return "the message to reach the handler" })
			logHas := func(s string) func() bool {
				return func() bool {
					b, _ := os.ReadFile(p.log)
					return bytes.Contains(b, []byte(s))
				}
			}

			if err := p.cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 30*time.Second, []*proc{p}, logHas(`"msg":"stop signal received`),
				func() string { return "the log of the first signal" })
			if p.exited() {
				t.Fatalf("ferry run exited (%v) after the first signal without waiting for the handler: the test shows nothing", p.err)
			}

			sent := time.Now()
			if err := p.cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-p.done:
			case <-time.After(15 * time.Second):
				t.Fatalf("ferry run still running 15s after a second %s", tc.name)
			}
			t.Logf("exited %s after the second signal", time.Since(sent).Round(time.Millisecond))
			if code := p.cmd.ProcessState.ExitCode(); code != tc.code {
				t.Errorf("exit code %d (%v), want %d", code, p.err, tc.code)
			}
			if !logHas(`"msg":"second signal: exiting without waiting"`)() {
				b, _ := os.ReadFile(p.log)
				t.Errorf("the log does not say \"second signal: exiting without waiting\":\n%s", b)
			}
			if logHas(`"msg":"stopped cleanly"`)() {
				t.Errorf("the log says it stopped cleanly")
			}
		})
	}
}
