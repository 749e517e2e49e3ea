package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConfigLimits: values ferry would replace by a default, values out of
// range, duplicate keys and endpoints whose queues cannot work together
// make `ferry run` and `ferry send` exit 2 before anything starts, naming
// the key or flag.
func TestConfigLimits(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		mut  func(m map[string]any)
		raw  func(path string) string // the file's text instead, given its path
		args []string
		want []string
	}{
		{name: "threads 100000000", mut: func(m map[string]any) { at(m, "endpoints.worker.inbox")["threads"] = 100000000 },
			args: []string{"run", "worker", "--id", "w1"}, want: []string{"endpoints.worker.inbox.threads: 100000000 is too large"}},
		{name: "distributeSendCount 1000000", mut: func(m map[string]any) { at(m, "endpoints.distributor.inbox")["distributeSendCount"] = 1000000 },
			args: []string{"run", "distributor"}, want: []string{"endpoints.distributor.inbox.distributeSendCount: 1000000 is too large"}},
		{name: "lease 0s", mut: func(m map[string]any) { at(m, "endpoints.worker.inbox")["lease"] = "0s" },
			args: []string{"run", "worker", "--id", "w1"}, want: []string{"endpoints.worker.inbox.lease: 0 is not allowed"}},
		{name: "negative reclaimAfter", mut: func(m map[string]any) { at(m, "endpoints.distributor")["reclaimAfter"] = "-3s" },
			args: []string{"run", "distributor"}, want: []string{"endpoints.distributor.reclaimAfter: -3s is negative"}},
		{name: "http timeout 0s", mut: func(m map[string]any) {
			at(m, "endpoints.worker")["handlers"] = []any{map[string]any{"type": "*", "http": map[string]any{"urls": []any{"http://127.0.0.1:1/"}, "timeout": "0s"}}}
		}, args: []string{"run", "worker", "--id", "w1"}, want: []string{"endpoints.worker.handlers[0].http.timeout: 0 is not allowed"}},
		{name: "worker inbox is the control queue", mut: func(m map[string]any) {
			at(m, "endpoints.worker.inbox")["workQueue"] = "sql://default/control-inbox-work"
		}, args: []string{"run", "worker", "--id", "w1"}, want: []string{"endpoints.worker.inbox.workQueue:", "control queue of distributor"}},
		{name: "duplicate key", raw: func(path string) string {
			return `{"connections": {"default": "sqlite://` + filepath.Join(filepath.Dir(path), "ferry.db") + `"}, "endpoints": {"e": {"inbox": {"workQueue": "sql://default/a", "errorQueue": "sql://default/e", "threads": 2, "threads": 200}}}}`
		}, args: []string{"run", "e"}, want: []string{"endpoints.e.inbox.threads: duplicate key"}},
		{name: "negative --stop-timeout", args: []string{"run", "worker", "--id", "w1", "--stop-timeout", "-1s"}, want: []string{"--stop-timeout -1s is negative"}},
		{name: "negative --delay", args: []string{"send", "--type", "t", "--delay", "-5s"}, want: []string{"--delay -5s is negative"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "config.json")
			raw := ""
			if c.raw != nil {
				raw = c.raw(path)
			}
			writeTestConfig(t, path, dir, raw, c.mut)
			args := append(append([]string{}, c.args...), "-c", path)
			_, stderr, code := ferry(t, dir, nil, args...)
			if code != 2 {
				t.Errorf("ferry %s: exit code %d, want 2\nstderr: %s", strings.Join(c.args, " "), code, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("ferry %s: stderr lacks %q:\n%s", strings.Join(c.args, " "), w, stderr)
				}
			}
		})
	}
}

// TestConfigWarningsLogged: `ferry run` starts with a doubtful setting (a
// worker's control queue that no distributor of the file serves) and logs
// it once as a warning naming the key; a distributor's lockTTL is accepted.
func TestConfigWarningsLogged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	writeTestConfig(t, path, dir, "", func(m map[string]any) {
		at(m, "endpoints.worker.worker")["distributorControlQueue"] = "sql://default/elsewhere"
		at(m, "endpoints.distributor")["lockTTL"] = "3s"
	})
	if _, stderr, code := ferry(t, dir, nil, "migrate", "-c", path); code != 0 {
		t.Fatalf("ferry migrate: exit %d: %s", code, stderr)
	}
	w := start(t, dir, "worker", "run", "worker", "--id", "w1", "-c", path)
	d := start(t, dir, "distributor", "run", "distributor", "-c", path)
	type rec struct {
		Level, Msg, Key, Problem string
	}
	records := func(p *proc) []rec {
		f, err := os.Open(p.log)
		if err != nil {
			return nil
		}
		defer f.Close()
		var out []rec
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var r rec
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				out = append(out, r)
			}
		}
		return out
	}
	has := func(p *proc, msg string) bool {
		for _, r := range records(p) {
			if r.Msg == msg {
				return true
			}
		}
		return false
	}
	waitFor(t, 30*time.Second, []*proc{w, d}, func() bool { return has(w, "worker started") && has(d, "distributor active") },
		func() string { return "worker started and distributor active" })
	var warns []rec
	for _, r := range records(w) {
		if r.Msg == "doubtful configuration" {
			warns = append(warns, r)
		}
	}
	if len(warns) != 1 || warns[0].Level != "WARN" || warns[0].Key != "endpoints.worker.worker.distributorControlQueue" || !strings.Contains(warns[0].Problem, "no distributor") {
		t.Errorf("worker warnings = %+v, want one WARN about endpoints.worker.worker.distributorControlQueue", warns)
	}
	if has(d, "doubtful configuration") {
		t.Errorf("the distributor logged a warning about the worker's setting")
	}
	for _, p := range []*proc{w, d} {
		if code := p.stop(30 * time.Second); code != 0 {
			t.Errorf("%s: exit code %d after SIGTERM, want 0", p.name, code)
		}
	}
}
