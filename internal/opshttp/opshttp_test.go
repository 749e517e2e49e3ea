package opshttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrybus/ferry/internal/opshttp"
	"github.com/ferrybus/ferry/internal/testkit"
)

func newServer(t *testing.T, cfg opshttp.Config) *opshttp.Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	s, err := opshttp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, path, nil))
	return rr.Code, rr.Body.String()
}

func readiness(t *testing.T, body string) opshttp.Readiness {
	t.Helper()
	var r opshttp.Readiness
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("readyz body %q: %v", body, err)
	}
	return r
}

func TestHealthz(t *testing.T) {
	s := newServer(t, opshttp.Config{})
	if err := s.AddCheck("never", func(context.Context) error { return errors.New("down") }); err != nil {
		t.Fatal(err)
	}
	code, body := get(t, s.Handler(), "/healthz")
	if code != http.StatusOK || !strings.Contains(body, `"alive"`) {
		t.Fatalf("healthz: %d %q, want 200 with status alive (liveness ignores readiness checks)", code, body)
	}
}

func TestReadyzReadyAndUnready(t *testing.T) {
	var failing atomic.Bool
	s := newServer(t, opshttp.Config{CacheFor: time.Nanosecond})
	_ = s.AddCheck("database default", func(context.Context) error { return nil })
	_ = s.AddCheck("endpoint", func(context.Context) error {
		if failing.Load() {
			return errors.New("endpoint not started")
		}
		return nil
	})
	code, body := get(t, s.Handler(), "/readyz")
	r := readiness(t, body)
	if code != http.StatusOK || !r.Ready() || len(r.Checks) != 2 || !r.Checks[0].OK || !r.Checks[1].OK {
		t.Fatalf("readyz: %d %s, want 200 and both checks ok", code, body)
	}
	failing.Store(true)
	code, body = get(t, s.Handler(), "/readyz")
	r = readiness(t, body)
	if code != http.StatusServiceUnavailable || r.Ready() {
		t.Fatalf("readyz: %d %s, want 503", code, body)
	}
	if c := r.Checks[1]; c.Name != "endpoint" || c.OK || c.Error != "endpoint not started" {
		t.Errorf("failing check %+v, want endpoint named with its reason", c)
	}
	if !r.Checks[0].OK {
		t.Errorf("passing check reported failing: %+v", r.Checks[0])
	}
}

// TestReadyzCached: many probes within the cache time run each check once.
func TestReadyzCached(t *testing.T) {
	var calls atomic.Int64
	s := newServer(t, opshttp.Config{CacheFor: time.Hour}) // capped at MaxCacheFor
	_ = s.AddCheck("db", func(context.Context) error { calls.Add(1); return nil })
	start := time.Now()
	for range 50 {
		get(t, s.Handler(), "/readyz")
	}
	if n := calls.Load(); time.Since(start) < opshttp.MaxCacheFor && n != 1 {
		t.Errorf("check ran %d times for 50 probes within %s, want 1", n, opshttp.MaxCacheFor)
	}
	// Past the cache time the check runs again.
	testkit.Eventually(t, 10*time.Second, "the check run again after the cache time", func() bool {
		get(t, s.Handler(), "/readyz")
		return calls.Load() >= 2
	})
}

// TestReadyzHungCheck: a check that never returns fails at its timeout,
// and is not started again while it hangs.
func TestReadyzHungCheck(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var calls atomic.Int64
	s := newServer(t, opshttp.Config{CheckTimeout: 50 * time.Millisecond, CacheFor: time.Nanosecond})
	_ = s.AddCheck("stuck", func(context.Context) error { calls.Add(1); <-release; return nil })
	for i := range 3 {
		code, body := get(t, s.Handler(), "/readyz")
		r := readiness(t, body)
		if code != http.StatusServiceUnavailable || r.Checks[0].OK || r.Checks[0].Error == "" {
			t.Fatalf("probe %d: %d %s, want 503 naming the stuck check", i, code, body)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("a hung check was started %d times, want 1", n)
	}
}

func TestPprofOnlyWhenEnabled(t *testing.T) {
	off := newServer(t, opshttp.Config{})
	if code, _ := get(t, off.Handler(), "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("pprof off: /debug/pprof/ answered %d, want 404", code)
	}
	on := newServer(t, opshttp.Config{Pprof: true})
	if code, body := get(t, on.Handler(), "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof on: /debug/pprof/ answered %d, want 200 with the profiles", code)
	}
	if code, _ := get(t, on.Handler(), "/debug/pprof/cmdline"); code != http.StatusOK {
		t.Errorf("pprof on: /debug/pprof/cmdline answered %d", code)
	}
}

func TestMetricsHandler(t *testing.T) {
	none := newServer(t, opshttp.Config{})
	if code, _ := get(t, none.Handler(), "/metrics"); code != http.StatusNotFound {
		t.Errorf("no metrics handler: /metrics %d, want 404", code)
	}
	s := newServer(t, opshttp.Config{Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ferry_up 1\n")
	})})
	if code, body := get(t, s.Handler(), "/metrics"); code != http.StatusOK || body != "ferry_up 1\n" {
		t.Errorf("/metrics: %d %q", code, body)
	}
}

func TestListenAddr(t *testing.T) {
	for in, want := range map[string]string{
		":9090":          "127.0.0.1:9090",
		"0.0.0.0:9090":   "0.0.0.0:9090",
		"[::]:9090":      "[::]:9090",
		"localhost:0":    "localhost:0",
		"10.1.2.3:65535": "10.1.2.3:65535",
	} {
		if got, err := opshttp.ListenAddr(in); err != nil || got != want {
			t.Errorf("ListenAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "9090", "host", ":http", ":70000", ":-1", "a:b:c"} {
		if _, err := opshttp.ListenAddr(bad); err == nil {
			t.Errorf("ListenAddr(%q): no error", bad)
		} else if !strings.Contains(err.Error(), bad) {
			t.Errorf("ListenAddr(%q): error %q does not name the address", bad, err)
		}
	}
}

// TestServeAndShutdown: a started server answers over TCP, a second one on
// the same port fails naming the address, and Shutdown stops it.
func TestServeAndShutdown(t *testing.T) {
	s := newServer(t, opshttp.Config{})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + s.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz over TCP: %d", resp.StatusCode)
	}
	taken := newServer(t, opshttp.Config{Addr: s.Addr()})
	if err := taken.Start(); err == nil {
		taken.Shutdown(context.Background())
		t.Fatal("second server on a taken port started")
	} else if !strings.Contains(err.Error(), s.Addr()) {
		t.Errorf("listen error %q does not name %s", err, s.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + s.Addr() + "/healthz"); err == nil {
		t.Error("server still answers after Shutdown")
	}
}
