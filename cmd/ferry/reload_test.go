package main

import (
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ferrybus/ferry/internal/testdb"
)

// logLines returns the JSON records of a process's log whose msg is msg
// and whose attributes include every one of want (compared as printed).
func logLines(path, msg string, want map[string]any) []map[string]any {
	var out []map[string]any
next:
	for _, rec := range jsonLogLines(path) {
		if rec["msg"] != msg {
			continue
		}
		for k, v := range want {
			if fmt.Sprint(rec[k]) != fmt.Sprint(v) {
				continue next
			}
		}
		out = append(out, rec)
	}
	return out
}

// writeAtomically replaces path by a new file renamed over it, as editors do.
func writeAtomically(t *testing.T, path string, v any) {
	t.Helper()
	tmp := path + ".tmp"
	writeJSON(t, tmp, v)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestReloadAppliesLiveSettings runs a distributor and two workers; the
// distributor and worker w1 reload on SIGHUP only (reload.watch false),
// worker w2 when its file changes. Threads and the send count change while
// messages flow, a bad file is refused naming its key, a queue change is
// logged as needing a restart, and every message reaches the target once.
func TestReloadAppliesLiveSettings(t *testing.T) {
	for _, dialect := range testdb.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			testReload(t, dialect)
		})
	}
}

func testReload(t *testing.T, dialect string) {
	dir := t.TempDir()
	tg := newTarget(2 * time.Millisecond) // handlers take a moment: changes land while messages are in flight
	srv := httptest.NewServer(tg)
	t.Cleanup(srv.Close)
	tg2 := newTarget(0) // where w2's handler posts once its URL is changed
	srv2 := httptest.NewServer(tg2)
	t.Cleanup(srv2.Close)
	dsn := "sqlite://" + filepath.Join(dir, "ferry.db")
	if dialect == "postgres" {
		dsn = testdb.Postgres(t)
		if _, err := url.Parse(dsn); err != nil {
			t.Fatal(err)
		}
	}
	conf := func(watch bool, threads, send int) map[string]any {
		m := clusterConfig(dsn, srv.URL+"/handle")
		at(m, "endpoints.worker.inbox")["threads"] = threads
		at(m, "endpoints.distributor.inbox")["distributeSendCount"] = send
		if !watch {
			m["reload"] = map[string]any{"watch": false}
		}
		return m
	}
	hupCfg := filepath.Join(dir, "hup.json")     // the distributor's and w1's: SIGHUP only
	watchCfg := filepath.Join(dir, "watch.json") // w2's: reloaded when it changes
	writeJSON(t, hupCfg, conf(false, 2, 5))
	writeJSON(t, watchCfg, conf(true, 2, 5))
	mustFerry(t, dir, "migrate", "-c", hupCfg)

	d := start(t, dir, "distributor", "run", "distributor", "-c", hupCfg)
	w1 := start(t, dir, "w1", "run", "worker", "--id", "w1", "-c", hupCfg)
	w2 := start(t, dir, "w2", "run", "worker", "--id", "w2", "-c", watchCfg)
	procs := []*proc{d, w1, w2}
	waitFor(t, 30*time.Second, procs, func() bool {
		s := startedWorkers(d.log)
		return s["w1"] && s["w2"] && len(logLines(w2.log, "reloading the configuration on SIGHUP", map[string]any{"watch": true})) == 1 &&
			len(logLines(w1.log, "reloading the configuration on SIGHUP", map[string]any{"watch": false})) == 1
	}, func() string { return "the distributor to see w1 and w2 start, and both reloaders up" })

	sent := 0
	send := func(n int) {
		t.Helper()
		_, stderr, code := ferry(t, dir, nil, "send", "--type", "orders.placed", "--body", `{"sku":"A-1"}`, "--count", fmt.Sprint(n), "-c", hupCfg)
		if code != 0 {
			t.Fatalf("ferry send: exit %d\n%s", code, stderr)
		}
		sent += n
	}
	delivered := func(n int) {
		t.Helper()
		waitFor(t, 60*time.Second, procs, func() bool {
			got, _ := tg.snapshot()
			got2, _ := tg2.snapshot()
			return got+got2 >= n
		}, func() string {
			got, by := tg.snapshot()
			got2, by2 := tg2.snapshot()
			return fmt.Sprintf("%d messages at the targets: %d+%d so far, by worker %v and %v", n, got, got2, by, by2)
		})
	}
	logged := func(p *proc, msg string, attrs map[string]any) {
		t.Helper()
		waitFor(t, 30*time.Second, procs, func() bool { return len(logLines(p.log, msg, attrs)) > 0 },
			func() string { return fmt.Sprintf("%s to log %q %v", p.name, msg, attrs) })
	}

	// Phase 1, SIGHUP: w1 to 6 threads, the send count to 9, while messages flow.
	send(600)
	writeJSON(t, hupCfg, conf(false, 6, 9))
	for _, p := range []*proc{d, w1} {
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	logged(w1, "inbox threads changed", map[string]any{"from": 2, "to": 6})
	logged(w1, "configuration reloaded", map[string]any{"trigger": "SIGHUP", "needRestart": 0})
	logged(d, "distribute send count changed", map[string]any{"from": 5, "to": 9})
	// The distributor learns w1's new size (a Started of the same session).
	logged(d, "worker started", map[string]any{"worker": "w1", "threads": 6})
	if len(logLines(w2.log, "inbox threads changed", nil)) != 0 {
		t.Fatal("w2 changed threads: its file did not change")
	}
	delivered(600)

	// Phase 2, the file changes (replaced by a rename, as editors do): w2 to 3.
	send(600)
	writeAtomically(t, watchCfg, conf(true, 3, 5))
	logged(w2, "inbox threads changed", map[string]any{"from": 2, "to": 3})
	logged(w2, "configuration reloaded", map[string]any{"trigger": "file changed"})
	logged(d, "worker started", map[string]any{"worker": "w2", "threads": 3})
	delivered(1200)

	// A bad file is refused, naming the key; w2 keeps its 3 threads and works on.
	bad := conf(true, -3, 5)
	writeAtomically(t, watchCfg, bad)
	logged(w2, "configuration refused; old settings kept", map[string]any{"key": "endpoints.worker.inbox.threads"})
	// A queue change needs a restart; the rest applies: threads, and the
	// handler's URL (w2 now posts to the second target).
	moved := conf(true, 5, 5)
	at(moved, "endpoints.worker.inbox")["errorQueue"] = "sql://default/error2"
	at(moved, "endpoints.worker")["handlers"] = []any{map[string]any{"type": "*", "http": map[string]any{"urls": []any{srv2.URL + "/handle"}, "timeout": "3s"}}}
	writeAtomically(t, watchCfg, moved)
	logged(w2, "changed setting needs a restart; kept as it runs", map[string]any{"key": "endpoints.worker.inbox.errorQueue"})
	logged(w2, "inbox threads changed", map[string]any{"from": 3, "to": 5})
	logged(w2, "configuration reloaded", map[string]any{"trigger": "file changed", "needRestart": 1})
	send(400)
	delivered(1600)
	waitFor(t, 30*time.Second, procs, func() bool { n, _ := tg2.snapshot(); return n > 0 },
		func() string { return "w2 to post to its new URL" })

	// Every message reached a target exactly once; only w2 posts to the second.
	seen := map[string]int{}
	for _, x := range []*target{tg, tg2} {
		x.mu.Lock()
		for id, n := range x.seen {
			seen[id] += n
		}
		x.mu.Unlock()
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("message %s reached the targets %d times", id, n)
		}
	}
	if len(seen) != sent {
		t.Errorf("%d distinct messages at the targets, want %d", len(seen), sent)
	}
	_, by := tg.snapshot()
	_, by2 := tg2.snapshot()
	if by2["w1"] != 0 {
		t.Errorf("w1 posted %d messages to w2's new URL", by2["w1"])
	}
	t.Logf("by worker: %v, at the new URL: %v", by, by2)
	for _, p := range procs {
		if code := p.stop(30 * time.Second); code != 0 {
			t.Errorf("%s after SIGTERM: exit %d, want 0", p.name, code)
		}
		for _, rec := range logLines(p.log, "configuration refused; old settings kept", nil) {
			if p != w2 {
				t.Errorf("%s refused a configuration: %v", p.name, rec)
			}
		}
	}
}
