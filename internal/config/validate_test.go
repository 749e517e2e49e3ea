package config

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// parseErr parses base() changed by muts (and env) and returns the error,
// failing the test if there is none or it is not a *Error.
func parseErr(t *testing.T, env []string, muts ...func(map[string]any)) error {
	t.Helper()
	m := base()
	for _, f := range muts {
		f(m)
	}
	data := encode(t, m)
	cfg, err := Parse(data, env)
	if err == nil {
		t.Fatalf("Parse succeeded (%+v); config: %s", cfg, data)
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Errorf("error %T is not a *config.Error (the binary exits 2 on those): %v", err, err)
	}
	return err
}

// wantErr checks that err carries key and its text each of want.
func wantErr(t *testing.T, err error, key string, want ...string) {
	t.Helper()
	found := false
	for _, k := range keys(err) {
		found = found || k == key
	}
	if !found {
		t.Errorf("error keys %q lack %q:\n%v", keys(err), key, err)
	}
	for _, w := range append([]string{key + ": "}, want...) {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not contain %q:\n%v", w, err)
		}
	}
}

// TestParseOutOfRange: a value ferry would silently replace by its default
// (an explicit 0, a negative duration) and a value beyond its bound are
// errors naming the key.
func TestParseOutOfRange(t *testing.T) {
	backoff := make([]any, 101)
	for i := range backoff {
		backoff[i] = "1s"
	}
	http := func(timeout string) func(map[string]any) {
		return handler(map[string]any{"type": "*", "http": map[string]any{"urls": []any{"http://x/"}, "timeout": timeout}})
	}
	cases := []struct {
		name string
		mut  []func(map[string]any)
		env  []string
		key  string
		want []string
	}{
		{name: "zero lease", mut: mut(set("endpoints.worker.inbox.lease", "0s")), key: "endpoints.worker.inbox.lease", want: []string{"0 is not allowed", "default, 30s"}},
		{name: "negative lease", mut: mut(set("endpoints.worker.inbox.lease", "-5s")), key: "endpoints.worker.inbox.lease", want: []string{"-5s is negative"}},
		{name: "tiny lease", mut: mut(set("endpoints.worker.inbox.lease", "1ns")), key: "endpoints.worker.inbox.lease", want: []string{"too short"}},
		{name: "zero lease from the environment", env: []string{"FERRY_ENDPOINTS__WORKER__INBOX__LEASE=0s"}, key: "endpoints.worker.inbox.lease",
			want: []string{"0 is not allowed", "FERRY_ENDPOINTS__WORKER__INBOX__LEASE"}},
		{name: "zero availabilityInterval", mut: mut(set("endpoints.worker.worker.availabilityInterval", "0s")), key: "endpoints.worker.worker.availabilityInterval", want: []string{"0 is not allowed"}},
		{name: "negative availabilityInterval", mut: mut(set("endpoints.worker.worker.availabilityInterval", "-1s")), key: "endpoints.worker.worker.availabilityInterval", want: []string{"negative"}},
		{name: "zero reclaimAfter", mut: mut(set("endpoints.distributor.reclaimAfter", "0s")), key: "endpoints.distributor.reclaimAfter", want: []string{"0 is not allowed", "60s"}},
		{name: "negative reclaimAfter", mut: mut(set("endpoints.distributor.reclaimAfter", "-1m")), key: "endpoints.distributor.reclaimAfter", want: []string{"negative"}},
		{name: "zero http timeout", mut: mut(http("0s")), key: "endpoints.worker.handlers[0].http.timeout", want: []string{"0 is not allowed", "10s"}},
		{name: "negative http timeout", mut: mut(http("-10s")), key: "endpoints.worker.handlers[0].http.timeout", want: []string{"negative"}},
		{name: "huge http timeout", mut: mut(http("1000h")), key: "endpoints.worker.handlers[0].http.timeout", want: []string{"too long"}},
		{name: "huge threads", mut: mut(set("endpoints.worker.inbox.threads", 100000000)), key: "endpoints.worker.inbox.threads", want: []string{"100000000 is too large", "1024"}},
		{name: "zero threads", mut: mut(set("endpoints.worker.inbox.threads", 0)), key: "endpoints.worker.inbox.threads", want: []string{"0 is not allowed", "default, 4"}},
		{name: "huge control threads", mut: mut(set("endpoints.distributor.controlInbox.threads", 5000)), key: "endpoints.distributor.controlInbox.threads", want: []string{"too large"}},
		{name: "huge prefetch", mut: mut(set("endpoints.worker.inbox.prefetch", 10000000)), key: "endpoints.worker.inbox.prefetch", want: []string{"too large"}},
		{name: "zero prefetch", mut: mut(set("endpoints.worker.inbox.prefetch", 0)), key: "endpoints.worker.inbox.prefetch", want: []string{"-1 to turn prefetching off"}},
		{name: "prefetch below -1", mut: mut(set("endpoints.worker.inbox.prefetch", -2)), key: "endpoints.worker.inbox.prefetch", want: []string{"want -1 (off)"}},
		{name: "huge distributeSendCount", mut: mut(set("endpoints.distributor.inbox.distributeSendCount", 1000000)), key: "endpoints.distributor.inbox.distributeSendCount", want: []string{"1000000 is too large", "10000"}},
		{name: "zero distributeSendCount", mut: mut(set("endpoints.distributor.inbox.distributeSendCount", 0)), key: "endpoints.distributor.inbox.distributeSendCount", want: []string{"0 is not allowed", "default, 5"}},
		{name: "zero maxAttempts", mut: mut(set("endpoints.worker.inbox.retry.maxAttempts", 0)), key: "endpoints.worker.inbox.retry.maxAttempts", want: []string{"0 is not allowed", "default, 5"}},
		{name: "negative maxAttempts", mut: mut(set("endpoints.worker.inbox.retry.maxAttempts", -3)), key: "endpoints.worker.inbox.retry.maxAttempts", want: []string{"-3 is negative"}},
		{name: "huge maxAttempts", mut: mut(set("endpoints.worker.inbox.retry.maxAttempts", 1000000000)), key: "endpoints.worker.inbox.retry.maxAttempts", want: []string{"too large"}},
		{name: "huge immediate", mut: mut(set("endpoints.worker.inbox.retry.immediate", 1000000)), key: "endpoints.worker.inbox.retry.immediate", want: []string{"too large"}},
		{name: "long backoff list", mut: mut(set("endpoints.worker.inbox.retry.backoff", backoff)), key: "endpoints.worker.inbox.retry.backoff", want: []string{"101 entries"}},
		{name: "huge backoff entry", mut: mut(set("endpoints.worker.inbox.retry.backoff", []any{"1s", "100000h"})), key: "endpoints.worker.inbox.retry.backoff[1]", want: []string{"too long"}},
		{name: "negative backoff entry", mut: mut(set("endpoints.worker.inbox.retry.backoff", []any{"-1s"})), key: "endpoints.worker.inbox.retry.backoff[0]", want: []string{"negative"}},
		{name: "zero exponential initial", mut: mut(set("endpoints.worker.inbox.retry", map[string]any{"exponential": map[string]any{"initial": "0s"}})),
			key: "endpoints.worker.inbox.retry.exponential.initial", want: []string{"0 is not allowed"}},
		{name: "huge exponential max", mut: mut(set("endpoints.worker.inbox.retry", map[string]any{"exponential": map[string]any{"max": "100000h"}})),
			key: "endpoints.worker.inbox.retry.exponential.max", want: []string{"too long"}},
		{name: "zero exponential factor", mut: mut(set("endpoints.worker.inbox.retry", map[string]any{"exponential": map[string]any{"factor": 0}})),
			key: "endpoints.worker.inbox.retry.exponential.factor", want: []string{"0 is not allowed"}},
		{name: "zero maxAttempts in a rule", mut: mut(set("endpoints.worker.inbox.rules", []any{map[string]any{"types": []any{"*"}, "action": "retry", "retry": map[string]any{"maxAttempts": 0}}})),
			key: "endpoints.worker.inbox.rules[0].retry.maxAttempts", want: []string{"0 is not allowed"}},
		{name: "zero lockTTL", mut: mut(set("endpoints.distributor.lockTTL", "0s")), key: "endpoints.distributor.lockTTL", want: []string{"0 is not allowed", "5s"}},
		{name: "huge lockTTL", mut: mut(set("endpoints.distributor.lockTTL", "5h")), key: "endpoints.distributor.lockTTL", want: []string{"too long"}},
		{name: "lockTTL on a worker", mut: mut(set("endpoints.worker.lockTTL", "5s")), key: "endpoints.worker.lockTTL", want: []string{"only for a distributor"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantErr(t, parseErr(t, tc.env, tc.mut...), tc.key, tc.want...)
		})
	}
}

// TestParseInRange: the bounds themselves, and keys left out, are accepted;
// lockTTL reaches the endpoint.
func TestParseInRange(t *testing.T) {
	m := base()
	set("endpoints.distributor.inbox.distributeSendCount", 1000)(m)
	set("endpoints.distributor.lockTTL", "5s")(m)
	set("endpoints.worker.inbox.threads", 1024)(m)
	set("endpoints.worker.inbox.prefetch", -1)(m)
	set("endpoints.worker.inbox.retry.backoff", []any{"0s", "720h"})(m)
	set("endpoints.worker.inbox.lease", nil)(m)
	set("endpoints.worker.inbox.retry.maxAttempts", nil)(m)
	set("endpoints.worker.worker.availabilityInterval", nil)(m)
	cfg, err := Parse(encode(t, m), nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if d := cfg.Endpoints["distributor"]; d.LockTTL != 5*time.Second || d.Inbox.DistributeSendCount != 1000 {
		t.Errorf("distributor = %+v, want lockTTL 5s and distributeSendCount 1000", d)
	}
	if w := cfg.Endpoints["worker"]; w.Inbox.Lease != 0 || w.Inbox.Threads != 1024 || w.Worker.AvailabilityInterval != 0 {
		t.Errorf("worker = %+v %+v", w.Inbox, w.Worker)
	}
	// "null" is a key left out.
	set("endpoints.worker.inbox.lease", nil)(m)
	obj(m, "endpoints.worker.inbox")["lease"] = nil
	if _, err := Parse(encode(t, m), nil); err != nil {
		t.Errorf("Parse with \"lease\": null: %v", err)
	}
}

// TestDuplicateKeys: a key set twice in one object is an error naming the
// key path and the file; the same key in different objects is not.
func TestDuplicateKeys(t *testing.T) {
	cases := []struct{ name, raw, key string }{
		{"top level", `{"connections": {"default": "sqlite://a.db"}, "connections": {"default": "sqlite://b.db"}}`, "connections"},
		{"nested", `{"endpoints": {"worker": {"inbox": {"threads": 8, "workQueue": "sql://default/w", "threads": 800}}}}`, "endpoints.worker.inbox.threads"},
		{"endpoint name", `{"endpoints": {"worker": {}, "other": {}, "worker": {}}}`, "endpoints.worker"},
		{"in a list element", `{"routes": [{"types": ["*"], "queue": "sql://default/a"}, {"queue": "sql://default/b", "queue": "sql://default/c"}]}`, "routes[1].queue"},
		{"after nested lists", `{"a": [[1, {"x": 1}], {"y": [2]}], "b": {"c": 1, "c": 2}}`, "b.c"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.raw), nil)
			if err == nil {
				t.Fatalf("Parse(%s) succeeded", tc.raw)
			}
			wantErr(t, err, tc.key, "duplicate key")
			path := filepath.Join(t.TempDir(), "dup.json")
			if err := os.WriteFile(path, []byte(tc.raw), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = Load(path, nil)
			if err == nil || !strings.HasPrefix(err.Error(), "config "+path+": "+tc.key+": duplicate key") {
				t.Errorf("Load = %v, want an error beginning %q", err, "config "+path+": "+tc.key+": duplicate key")
			}
		})
	}
	// The same key in sibling objects, and in list elements, is fine.
	m := base()
	obj(m, "endpoints.worker.inbox")["workQueue"] = "sql://default/w-{id}"
	if _, err := Parse(encode(t, m), nil); err != nil {
		t.Errorf("Parse(base): %v", err)
	}
}

// TestQueueCrossChecksErrors: endpoints whose queues cannot work together
// are errors before anything starts.
func TestQueueCrossChecksErrors(t *testing.T) {
	plain := func(queue string) func(map[string]any) {
		return set("endpoints.plain", map[string]any{
			"inbox":    map[string]any{"workQueue": queue, "errorQueue": "sql://default/error"},
			"handlers": []any{map[string]any{"type": "*", "noop": map[string]any{}}},
		})
	}
	cases := []struct {
		name string
		mut  []func(map[string]any)
		key  string
		want []string
	}{
		{name: "worker inbox is the control queue", mut: mut(set("endpoints.worker.inbox.workQueue", "sql://default/control-inbox-work")),
			key: "endpoints.worker.inbox.workQueue", want: []string{"control queue of distributor \"distributor\"", "endpoints.distributor.controlInbox.workQueue"}},
		{name: "worker inbox is the distributor's inbox", mut: mut(set("endpoints.worker.inbox.workQueue", "sql://default/server-inbox-work")),
			key: "endpoints.worker.inbox.workQueue", want: []string{"inbox of distributor \"distributor\""}},
		{name: "plain endpoint on the distributor's inbox", mut: mut(plain("sql://default/server-inbox-work")),
			key: "endpoints.plain.inbox.workQueue", want: []string{"inbox of distributor \"distributor\"", "out of distribution"}},
		{name: "plain endpoint on the control queue", mut: mut(plain("sql://default/control-inbox-work")),
			key: "endpoints.plain.inbox.workQueue", want: []string{"control queue of distributor"}},
		{name: "worker announcing to the distributor's inbox", mut: mut(set("endpoints.worker.worker.distributorControlQueue", "sql://default/server-inbox-work")),
			key: "endpoints.worker.worker.distributorControlQueue", want: []string{"not its control queue", "endpoints.distributor.controlInbox.workQueue"}},
		{name: "worker announcing to itself", mut: mut(set("endpoints.worker.worker.distributorControlQueue", "sql://default/worker-{id}-work")),
			key: "endpoints.worker.inbox.workQueue", want: []string{"also this worker's distributorControlQueue"}},
		{name: "another distributor's control queue on the inbox", mut: mut(set("endpoints.d2", map[string]any{
			"inbox":        map[string]any{"workQueue": "sql://default/control-inbox-work", "errorQueue": "sql://default/error", "distribute": true},
			"controlInbox": map[string]any{"workQueue": "sql://default/c2", "errorQueue": "sql://default/error"},
		})), key: "endpoints.d2.inbox.workQueue", want: []string{"control queue of distributor \"distributor\""}},
		{name: "another distributor's inbox as control queue", mut: mut(set("endpoints.d2", map[string]any{
			"inbox":        map[string]any{"workQueue": "sql://default/i2", "errorQueue": "sql://default/error", "distribute": true},
			"controlInbox": map[string]any{"workQueue": "sql://default/server-inbox-work", "errorQueue": "sql://default/error"},
		})), key: "endpoints.d2.controlInbox.workQueue", want: []string{"inbox of distributor \"distributor\""}},
		{name: "same queue through another connection name", mut: mut(set("connections.alias", "sqlite://./ferry.db"), set("endpoints.worker.inbox.workQueue", "sql://alias/control-inbox-work")),
			key: "endpoints.worker.inbox.workQueue", want: []string{"control queue of distributor"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantErr(t, parseErr(t, nil, tc.mut...), tc.key, tc.want...)
		})
	}

	// {id} filled by --id can make a worker's queue the control queue.
	m := base()
	obj(m, "endpoints.worker.inbox")["workQueue"] = "sql://default/{id}"
	cfg, err := Parse(encode(t, m), nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if _, err := cfg.WithID("worker", "w1"); err != nil {
		t.Errorf("WithID(worker, w1): %v", err)
	}
	_, err = cfg.WithID("worker", "control-inbox-work")
	if err == nil {
		t.Fatalf("WithID(worker, control-inbox-work) succeeded")
	}
	wantErr(t, err, "endpoints.worker.inbox.workQueue", "control queue of distributor")
}

// TestQueueCrossChecksWarnings: doubtful but workable settings are
// warnings, listed by endpoint; the documented configuration has none.
func TestQueueCrossChecksWarnings(t *testing.T) {
	warns := func(t *testing.T, muts ...func(map[string]any)) *Config {
		t.Helper()
		m := base()
		for _, f := range muts {
			f(m)
		}
		cfg, err := Parse(encode(t, m), nil)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		return cfg
	}
	has := func(t *testing.T, ws []Warning, key, text string) {
		t.Helper()
		for _, w := range ws {
			if w.Key == key && strings.Contains(w.Msg, text) {
				return
			}
		}
		t.Errorf("warnings %q lack one at %s containing %q", ws, key, text)
	}
	plain := func(name string, shared bool) func(map[string]any) {
		return set("endpoints."+name, map[string]any{
			"inbox":    map[string]any{"workQueue": "sql://default/orders", "errorQueue": "sql://default/error", "shared": shared},
			"handlers": []any{map[string]any{"type": "*", "noop": map[string]any{}}},
		})
	}

	t.Run("none for the documented shape", func(t *testing.T) {
		if ws := warns(t).Warnings(); len(ws) != 0 {
			t.Errorf("warnings = %q", ws)
		}
		_, file, _, _ := runtime.Caller(0)
		cfg, err := Load(filepath.Join(filepath.Dir(file), "..", "..", "config.json"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if ws := cfg.Warnings(); len(ws) != 0 {
			t.Errorf("config.json warnings = %q", ws)
		}
	})
	t.Run("control queue no distributor serves", func(t *testing.T) {
		cfg := warns(t, set("endpoints.worker.worker.distributorControlQueue", "sql://default/elsewhere"))
		has(t, cfg.WarningsFor("worker"), "endpoints.worker.worker.distributorControlQueue", "no distributor in this file")
		if ws := cfg.WarningsFor("distributor"); len(ws) != 0 {
			t.Errorf("distributor warnings = %q", ws)
		}
	})
	t.Run("two endpoints on one work queue", func(t *testing.T) {
		cfg := warns(t, plain("a", false), plain("b", true))
		has(t, cfg.WarningsFor("a"), "endpoints.a.inbox.workQueue", `endpoints "b" consume this work queue too`)
		has(t, cfg.WarningsFor("b"), "endpoints.b.inbox.workQueue", `endpoints "a" consume this work queue too`)
	})
	t.Run("shared on all of them", func(t *testing.T) {
		if ws := warns(t, plain("a", true), plain("b", true)).Warnings(); len(ws) != 0 {
			t.Errorf("warnings = %q", ws)
		}
	})
	t.Run("a standby distributor", func(t *testing.T) {
		standby := func(m map[string]any) { obj(m, "endpoints")["standby"] = obj(m, "endpoints")["distributor"] }
		if ws := warns(t, standby).Warnings(); len(ws) != 0 {
			t.Errorf("warnings = %q", ws)
		}
	})
	t.Run("reclaimAfter within the heartbeat interval", func(t *testing.T) {
		cfg := warns(t, set("endpoints.distributor.reclaimAfter", "10s"), set("endpoints.worker.worker.availabilityInterval", "15s"))
		has(t, cfg.WarningsFor("distributor"), "endpoints.distributor.reclaimAfter", "busy live worker")
		has(t, cfg.WarningsFor("worker"), "endpoints.worker.worker.availabilityInterval", "busy and alive")
	})
}
