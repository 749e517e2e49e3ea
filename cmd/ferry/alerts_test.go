package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrybus/ferry/internal/alerts"
)

// alertHook records the notifications POSTed to it.
type alertHook struct {
	mu  sync.Mutex
	got []alerts.Alert
}

func (h *alertHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var a alerts.Alert
	if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.got = append(h.got, a)
	h.mu.Unlock()
}

// find lists the notifications of rule with status.
func (h *alertHook) find(rule, status string) []alerts.Alert {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []alerts.Alert
	for _, a := range h.got {
		if a.Rule == rule && a.Status == status {
			out = append(out, a)
		}
	}
	return out
}

func (h *alertHook) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, a := range h.got {
		fmt.Fprintf(&b, "%s %s %s (%s)\n", a.Status, a.Rule, a.Subject, a.Process.ID)
	}
	return b.String()
}

// `ferry run` evaluates the rules that concern its endpoint: the worker
// its failure rules, the distributor the error queue's depth (it is the
// first endpoint parking there) and its lock; a graceful stop of the
// distributor raises no lockLost alert.
func TestRunAlerts(t *testing.T) {
	dir := t.TempDir()
	hook := &alertHook{}
	hookSrv := httptest.NewServer(hook)
	t.Cleanup(hookSrv.Close)
	reject := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "rejected", http.StatusUnprocessableEntity)
	}))
	t.Cleanup(reject.Close)
	cfg := clusterConfig("sqlite://"+filepath.Join(dir, "ferry.db"), reject.URL+"/handle")
	cfg["alerts"] = map[string]any{
		"webhook":  map[string]any{"url": hookSrv.URL + "/alerts", "timeout": "2s"},
		"interval": "100ms",
		"rules": []any{
			map[string]any{"name": "worker-failing", "kind": "failureRate", "endpoint": "worker", "window": "1m", "threshold": 0.5, "minMessages": 3},
			map[string]any{"name": "stuck", "kind": "failureCount", "endpoint": "worker", "threshold": 1},
			map[string]any{"name": "errors", "kind": "queueDepth", "queue": "sql://default/error", "threshold": 3, "count": "total"},
			map[string]any{"name": "lock-lost", "kind": "lockLost", "endpoint": "distributor"},
		},
	}
	path := filepath.Join(dir, "config.json")
	writeJSON(t, path, cfg)
	dist := start(t, dir, "distributor", "run", "distributor", "-c", path)
	w1 := start(t, dir, "w1", "run", "worker", "--id", "w1", "-c", path)
	procs := []*proc{dist, w1}
	waitFor(t, 30*time.Second, procs, func() bool { return startedWorkers(dist.log)["w1"] },
		func() string { return "the distributor to see w1 start" })
	mustFerry(t, dir, "send", "--type", "orders.placed", "--body", `{"sku":"A-1"}`, "--count", "3", "-c", path)

	waitFor(t, 30*time.Second, procs, func() bool {
		return len(hook.find("stuck", "resolved")) == 3 && len(hook.find("worker-failing", "firing")) == 1 && len(hook.find("errors", "firing")) == 1
	}, func() string { return "the alerts of 3 rejected messages; got:\n" + hook.String() })
	for _, a := range hook.find("stuck", "firing") {
		if a.Process.ID != "w1" || a.Kind != alerts.FailureCount || a.Value != 1 {
			t.Errorf("stuck notice %+v: want from w1, value 1", a)
		}
	}
	if a := hook.find("errors", "firing")[0]; a.Process.ID != "distributor" || a.Subject != "sql://default/error" || a.Value != 3 {
		t.Errorf("errors notice %+v: want from the distributor about sql://default/error, value 3", a)
	}
	if code := dist.stop(20 * time.Second); code != 0 {
		t.Fatalf("distributor exit %d", code)
	}
	if code := w1.stop(20 * time.Second); code != 0 {
		t.Fatalf("worker exit %d", code)
	}
	if got := hook.find("lock-lost", "firing"); len(got) != 0 {
		t.Fatalf("a graceful stop raised lockLost: %+v", got)
	}
}

// A bad alerts section is a configuration error: exit 2, naming the key.
func TestRunAlertsBadConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := clusterConfig("sqlite://"+filepath.Join(dir, "ferry.db"), "http://127.0.0.1:1/handle")
	cfg["alerts"] = map[string]any{"rules": []any{
		map[string]any{"name": "x", "kind": "queueAge", "queue": "sql://default/error", "threshold": 600},
	}}
	path := filepath.Join(dir, "config.json")
	writeJSON(t, path, cfg)
	_, stderr, code := ferry(t, dir, nil, "run", "distributor", "-c", path)
	if code != 2 || !strings.Contains(stderr, "alerts.rules[0].threshold: want a duration") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}
