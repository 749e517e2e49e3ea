package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// soloConfig is one plain endpoint on a SQLite file in dir, with extra
// top-level keys.
func soloConfig(t *testing.T, dir string, extra map[string]any) {
	t.Helper()
	cfg := map[string]any{
		"connections": map[string]any{"default": "sqlite://" + filepath.Join(dir, "ferry.db")},
		"endpoints": map[string]any{
			"solo": map[string]any{
				"inbox":    map[string]any{"workQueue": "sql://default/solo-work", "errorQueue": "sql://default/solo-error", "threads": 1},
				"handlers": []any{map[string]any{"type": "*", "noop": map[string]any{}}},
			},
		},
		"routes": []any{map[string]any{"types": []any{"*"}, "queue": "sql://default/solo-work"}},
	}
	for k, v := range extra {
		cfg[k] = v
	}
	writeJSON(t, filepath.Join(dir, "config.json"), cfg)
}

// jsonLogLines reads the JSON log lines of a process's log file.
func jsonLogLines(path string) []map[string]any {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20) // stack traces make long lines
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// logged returns the first log line of path whose msg starts with prefix.
func logged(path, prefix string) map[string]any {
	for _, m := range jsonLogLines(path) {
		if s, _ := m["msg"].(string); strings.HasPrefix(s, prefix) {
			return m
		}
	}
	return nil
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRunServesHealth: `ferry run --http 127.0.0.1:0` logs the address it
// listens on and serves /healthz, /readyz (every check named and passing)
// and /metrics; summary lines come at log.summaryInterval; a stop ends the
// server with the process.
func TestRunServesHealth(t *testing.T) {
	_, dir := workDirs(t)
	soloConfig(t, dir, map[string]any{"log": map[string]any{"format": "json", "summaryInterval": "1s"}})
	p := start(t, dir, "solo", "-c", "config.json", "run", "solo", "--http", "127.0.0.1:0")
	var addr string
	waitFor(t, 60*time.Second, []*proc{p}, func() bool {
		m := logged(p.log, "serving /metrics")
		addr, _ = m["addr"].(string)
		return addr != ""
	}, func() string { return "the log line with the listening address" })
	if h, _, err := net.SplitHostPort(addr); err != nil || h != "127.0.0.1" {
		t.Errorf("listening on %q, want 127.0.0.1", addr)
	}
	if code, body := httpGet(t, "http://"+addr+"/healthz"); code != http.StatusOK || !strings.Contains(body, "alive") {
		t.Errorf("/healthz: %d %s", code, body)
	}
	var ready struct {
		Status string `json:"status"`
		Checks []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		} `json:"checks"`
	}
	waitFor(t, 60*time.Second, []*proc{p}, func() bool {
		code, body := httpGet(t, "http://"+addr+"/readyz")
		_ = json.Unmarshal([]byte(body), &ready)
		return code == http.StatusOK
	}, func() string { return "/readyz 200" })
	names := map[string]bool{}
	for _, c := range ready.Checks {
		names[c.Name] = c.OK
	}
	if !names["endpoint"] || !names["database default"] || len(names) != 2 {
		t.Errorf("/readyz checks %+v, want endpoint and database default, both ok", ready.Checks)
	}
	if code, _ := httpGet(t, "http://"+addr+"/metrics"); code != http.StatusOK {
		t.Errorf("/metrics: %d", code)
	}
	if code, _ := httpGet(t, "http://"+addr+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without http.pprof: %d, want 404", code)
	}

	mustFerry(t, dir, "-c", "config.json", "send", "--type", "hello", "--count", "3")
	waitFor(t, 60*time.Second, []*proc{p}, func() bool {
		var handled float64
		for _, m := range jsonLogLines(p.log) {
			if m["msg"] == "summary" {
				h, _ := m["handled"].(float64)
				handled += h
			}
		}
		return handled == 3
	}, func() string { return "summary lines adding up to 3 handled" })
	// /metrics of a running process: the handled counter of its endpoint
	// and the sampled depth of its inbox.
	var body string
	waitFor(t, 60*time.Second, []*proc{p}, func() bool {
		_, body = httpGet(t, "http://"+addr+"/metrics")
		return strings.Contains(body, `ferry_messages_handled_total{endpoint="solo",queue="sql://default/solo-work",type="hello"} 3`) &&
			strings.Contains(body, `ferry_queue_messages{queue="sql://default/solo-work",state="ready"} 0`) &&
			strings.Contains(body, `ferry_store_round_trips_total{connection="default"}`)
	}, func() string { return "/metrics with 3 handled and the sampled inbox:\n" + body })

	if code := p.stop(30 * time.Second); code != 0 {
		t.Fatalf("ferry run exited %d after SIGTERM, want 0", code)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Errorf("%s still accepts connections after the process ended", addr)
	}
}

// TestRunHTTPErrors: a bad --http or http.addr is a usage/config error
// (exit 2) naming the flag or key; a port taken fails naming the address.
func TestRunHTTPErrors(t *testing.T) {
	_, dir := workDirs(t)
	soloConfig(t, dir, nil)
	_, stderr, code := ferry(t, dir, nil, "-c", "config.json", "run", "solo", "--http", "9090")
	if code != 2 || !strings.Contains(stderr, "--http") || !strings.Contains(stderr, `"9090"`) {
		t.Errorf("--http 9090: exit %d, %s; want 2 naming --http and the value", code, stderr)
	}
	soloConfig(t, dir, map[string]any{"http": map[string]any{"addr": "nowhere"}})
	_, stderr, code = ferry(t, dir, nil, "-c", "config.json", "run", "solo")
	if code != 2 || !strings.Contains(stderr, "http.addr") {
		t.Errorf("http.addr nowhere: exit %d, %s; want 2 naming http.addr", code, stderr)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	soloConfig(t, dir, map[string]any{"http": map[string]any{"addr": taken}})
	_, stderr, code = ferry(t, dir, nil, "-c", "config.json", "run", "solo")
	if code != 1 || !strings.Contains(stderr, taken) || !strings.Contains(stderr, "http.addr") {
		t.Errorf("port taken: exit %d, %s; want 1 naming http.addr and %s", code, stderr, taken)
	}
}
