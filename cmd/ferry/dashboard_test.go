package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDashboardRefusesOpenAddr: beyond loopback without a token, `ferry
// dashboard` exits 2 naming dashboard.token; a bad address is exit 2 too.
func TestDashboardRefusesOpenAddr(t *testing.T) {
	_, dir := workDirs(t)
	soloConfig(t, dir, nil)
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:8089"} {
		_, stderr, code := ferry(t, dir, nil, "-c", "config.json", "dashboard", "--addr", addr)
		if code != 2 || !strings.Contains(stderr, "dashboard.token") || !strings.Contains(stderr, "FERRY_DASHBOARD_TOKEN") {
			t.Errorf("dashboard --addr %s: exit %d, want 2 naming dashboard.token\n%s", addr, code, stderr)
		}
	}
	_, stderr, code := ferry(t, dir, nil, "-c", "config.json", "dashboard", "--addr", "nonsense")
	if code != 2 || !strings.Contains(stderr, "--addr") {
		t.Errorf("dashboard --addr nonsense: exit %d\n%s", code, stderr)
	}
	soloConfig(t, dir, map[string]any{"dashboard": map[string]any{"token": "a"}})
	_, stderr, code = ferry(t, dir, []string{"FERRY_DASHBOARD_TOKEN=b"}, "-c", "config.json", "dashboard")
	if code != 2 || !strings.Contains(stderr, "differ") {
		t.Errorf("two different tokens: exit %d\n%s", code, stderr)
	}
}

// TestDashboardServes: on a free loopback port it logs its URL, serves the
// overview with the configured queues and their counts, and stops at SIGTERM.
func TestDashboardServes(t *testing.T) {
	_, dir := workDirs(t)
	soloConfig(t, dir, map[string]any{"log": map[string]any{"format": "json"}})
	mustFerry(t, dir, "-c", "config.json", "send", "--type", "hello", "--count", "3")
	p := start(t, dir, "dashboard", "-c", "config.json", "dashboard", "--addr", "127.0.0.1:0")
	var url string
	waitFor(t, 60*time.Second, []*proc{p}, func() bool {
		url, _ = logged(p.log, "dashboard listening")["url"].(string)
		return url != ""
	}, func() string { return "the log line with the dashboard's URL" })
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Errorf("URL %q, want loopback", url)
	}
	code, body := httpGet(t, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d\n%s", url, code, body)
	}
	for _, want := range []string{
		`data-queue="sql://default/solo-work"`, `data-testid="ready">3<`,
		`data-testid="error-queue-row" data-queue="sql://default/solo-error"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %q:\n%s", want, body)
		}
	}
	if code, _ := httpGet(t, url+"errors"); code != http.StatusOK {
		t.Errorf("GET errors: %d", code)
	}
	if code := p.stop(30 * time.Second); code != 0 {
		t.Fatalf("ferry dashboard exited %d after SIGTERM, want 0", code)
	}
}
