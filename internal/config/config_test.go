package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// base is a valid configuration of the documented shape, as a tree that a
// test case can break before it is encoded.
func base() map[string]any {
	var m map[string]any
	if err := json.Unmarshal([]byte(`{
	  "connections": {"default": "sqlite://./ferry.db"},
	  "endpoints": {
	    "distributor": {
	      "inbox": {"workQueue": "sql://default/server-inbox-work", "errorQueue": "sql://default/error",
	                "distribute": true, "distributeSendCount": 5},
	      "controlInbox": {"workQueue": "sql://default/control-inbox-work", "errorQueue": "sql://default/error"},
	      "reclaimAfter": "30s"
	    },
	    "worker": {
	      "inbox": {"workQueue": "sql://default/worker-{id}-work", "errorQueue": "sql://default/error",
	                "threads": 8, "lease": "10s", "retry": {"maxAttempts": 5, "backoff": ["1s", "5s", "30s"]}},
	      "worker": {"distributorControlQueue": "sql://default/control-inbox-work", "availabilityInterval": "15s"},
	      "handlers": [{"type": "*", "http": {"urls": ["http://127.0.0.1:8080/handle"], "timeout": "10s"}}]
	    }
	  },
	  "routes": [{"types": ["*"], "queue": "sql://default/server-inbox-work"}],
	  "log": {"level": "info", "format": "json"}
	}`), &m); err != nil {
		panic(err)
	}
	return m
}

// obj returns the object at a dotted path of m ("endpoints.worker.inbox").
func obj(m map[string]any, path string) map[string]any {
	cur := m
	for _, k := range strings.Split(path, ".") {
		cur = cur[k].(map[string]any)
	}
	return cur
}

// set sets the value at a dotted path; nil deletes the key.
func set(path string, v any) func(map[string]any) {
	return func(m map[string]any) {
		i := strings.LastIndex(path, ".")
		parent, key := m, path
		if i >= 0 {
			parent, key = obj(m, path[:i]), path[i+1:]
		}
		if v == nil {
			delete(parent, key)
			return
		}
		parent[key] = v
	}
}

// handler replaces the worker's first handler.
func handler(h map[string]any) func(map[string]any) {
	return func(m map[string]any) {
		obj(m, "endpoints.worker")["handlers"] = []any{h}
	}
}

func encode(t *testing.T, m map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// keys lists the key paths of the *Error values inside err.
func keys(err error) []string {
	var out []string
	eachError(err, func(ce *Error) { out = append(out, ce.Key) })
	return out
}

func TestParseValidBase(t *testing.T) {
	cfg, err := Parse(encode(t, base()), nil)
	if err != nil {
		t.Fatalf("Parse(base): %v", err)
	}
	w := cfg.Endpoints["worker"]
	if w.Inbox.Threads != 8 || w.Inbox.Lease != 10*time.Second || w.Worker.AvailabilityInterval != 15*time.Second {
		t.Errorf("worker inbox = %+v, worker = %+v", w.Inbox, w.Worker)
	}
	if got := w.Inbox.Retry.Backoff; !reflect.DeepEqual(got, []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}) {
		t.Errorf("retry.backoff = %v", got)
	}
	if d := cfg.Endpoints["distributor"]; d.ReclaimAfter != 30*time.Second || !d.Inbox.Distribute || d.Inbox.DistributeSendCount != 5 || d.ControlInbox == nil {
		t.Errorf("distributor = %+v", d)
	}
	if h := w.Handlers; len(h) != 1 || h[0].HTTP == nil || h[0].HTTP.Timeout != 10*time.Second || h[0].Type != "*" {
		t.Errorf("handlers = %+v", h)
	}
	if cfg.Log.Level != "info" || cfg.Log.Format != "json" {
		t.Errorf("log = %+v", cfg.Log)
	}
}

// TestParseBad: every bad configuration is an error that names the key
// path at fault (and, for environment overrides, the variable).
func TestParseBad(t *testing.T) {
	cases := []struct {
		name string
		mut  []func(map[string]any)
		raw  string // used instead of base()+mut when set
		env  []string
		want []string // substrings of the error, the key path first
		keys []string // key paths the error must carry (Error.Key)
	}{
		// Unknown keys, with a suggestion for typos.
		{name: "unknown top-level key", mut: mut(set("connection", map[string]any{})),
			want: []string{"connection: unknown key", `did you mean "connections"`}, keys: []string{"connection"}},
		{name: "typo in inbox", mut: mut(set("endpoints.worker.inbox.thread", 4)),
			want: []string{"endpoints.worker.inbox.thread: unknown key", `did you mean "threads"`}},
		{name: "typo in case", mut: mut(set("endpoints.worker.inbox.workqueue", "sql://default/x")),
			want: []string{"endpoints.worker.inbox.workqueue: unknown key", `did you mean "workQueue"`}},
		{name: "typo in retry", mut: mut(set("endpoints.worker.inbox.retry.maxAttempt", 3)),
			want: []string{"endpoints.worker.inbox.retry.maxAttempt: unknown key", `did you mean "maxAttempts"`}},
		{name: "typo in handler", mut: mut(handler(map[string]any{"type": "*", "htp": map[string]any{}})),
			want: []string{"endpoints.worker.handlers[0].htp: unknown key", `did you mean "http"`}},
		{name: "typo in worker section", mut: mut(set("endpoints.worker.worker.availabilityIntervall", "1s")),
			want: []string{"endpoints.worker.worker.availabilityIntervall: unknown key", `did you mean "availabilityInterval"`}},
		{name: "unknown key no suggestion", mut: mut(set("endpoints.worker.zzzzzzzz", 1)),
			want: []string{"endpoints.worker.zzzzzzzz: unknown key"}},
		{name: "several errors at once", mut: mut(set("endpoints.worker.inbox.thread", 4), set("endpoints.distributor.inbox.lease", "soon")),
			want: []string{"endpoints.worker.inbox.thread: unknown key", "endpoints.distributor.inbox.lease: invalid duration"},
			keys: []string{"endpoints.distributor.inbox.lease", "endpoints.worker.inbox.thread"}},

		// Missing queues.
		{name: "missing inbox.workQueue", mut: mut(set("endpoints.worker.inbox.workQueue", nil)),
			want: []string{"endpoints.worker.inbox.workQueue: required"}},
		{name: "missing inbox.errorQueue", mut: mut(set("endpoints.distributor.inbox.errorQueue", nil)),
			want: []string{"endpoints.distributor.inbox.errorQueue: required"}},
		{name: "missing controlInbox.workQueue", mut: mut(set("endpoints.distributor.controlInbox.workQueue", nil)),
			want: []string{"endpoints.distributor.controlInbox.workQueue: required"}},
		{name: "empty workQueue", mut: mut(set("endpoints.worker.inbox.workQueue", "")),
			want: []string{"endpoints.worker.inbox.workQueue: required"}},
		{name: "missing route queue", mut: mut(set("routes", []any{map[string]any{"types": []any{"*"}}})),
			want: []string{"routes[0].queue: required"}},
		{name: "route without types", mut: mut(set("routes", []any{map[string]any{"queue": "sql://default/x"}})),
			want: []string{"routes[0].types: at least one"}},

		// Invalid queue URIs.
		{name: "URI with another scheme", mut: mut(set("endpoints.distributor.inbox.workQueue", "http://default/x")),
			want: []string{"endpoints.distributor.inbox.workQueue: invalid queue URI", "sql://CONNECTION/QUEUE"}},
		{name: "URI without queue", mut: mut(set("endpoints.worker.inbox.errorQueue", "sql://default")),
			want: []string{"endpoints.worker.inbox.errorQueue: invalid queue URI"}},
		{name: "URI with upper-case queue", mut: mut(set("endpoints.distributor.controlInbox.errorQueue", "sql://default/Errors")),
			want: []string{"endpoints.distributor.controlInbox.errorQueue: invalid queue URI", `"Errors"`}},
		{name: "bad distributorControlQueue", mut: mut(set("endpoints.worker.worker.distributorControlQueue", "control")),
			want: []string{"endpoints.worker.worker.distributorControlQueue: invalid queue URI"}},
		{name: "bad route queue", mut: mut(set("routes", []any{map[string]any{"types": []any{"*"}, "queue": "sql:/default/x"}})),
			want: []string{"routes[0].queue: invalid queue URI"}},
		{name: "unknown connection in URI", mut: mut(set("endpoints.distributor.inbox.workQueue", "sql://other/x")),
			want: []string{"endpoints.distributor.inbox.workQueue:", `unknown connection "other"`, "configured: default"}},
		{name: "unknown connection in route", mut: mut(set("routes", []any{map[string]any{"types": []any{"*"}, "queue": "sql://nope/x"}})),
			want: []string{"routes[0].queue:", `unknown connection "nope"`}},
		{name: "unknown connection in {id} URI", mut: mut(set("endpoints.worker.inbox.workQueue", "sql://other/w-{id}")),
			want: []string{"endpoints.worker.inbox.workQueue:", `unknown connection "other"`}},

		// Durations.
		{name: "invalid lease", mut: mut(set("endpoints.worker.inbox.lease", "5 sec")),
			want: []string{"endpoints.worker.inbox.lease: invalid duration \"5 sec\""}},
		{name: "duration as a number", mut: mut(set("endpoints.worker.worker.availabilityInterval", 15)),
			want: []string{"endpoints.worker.worker.availabilityInterval: want a duration"}},
		{name: "invalid reclaimAfter", mut: mut(set("endpoints.distributor.reclaimAfter", "1 minute")),
			want: []string{"endpoints.distributor.reclaimAfter: invalid duration"}},
		{name: "invalid backoff entry", mut: mut(set("endpoints.worker.inbox.retry.backoff", []any{"1s", "often"})),
			want: []string{"endpoints.worker.inbox.retry.backoff[1]: invalid duration \"often\""}},
		{name: "invalid http timeout", mut: mut(handler(map[string]any{"type": "*", "http": map[string]any{"urls": []any{"http://x/"}, "timeout": "10"}})),
			want: []string{"endpoints.worker.handlers[0].http.timeout: invalid duration"}},

		// Wrong types.
		{name: "threads as a word", mut: mut(set("endpoints.worker.inbox.threads", "eight")),
			want: []string{"endpoints.worker.inbox.threads: want a whole number", `"eight"`}},
		{name: "threads as a fraction", mut: mut(set("endpoints.worker.inbox.threads", 2.5)),
			want: []string{"endpoints.worker.inbox.threads: want a whole number, got 2.5"}},
		{name: "distribute as a word", mut: mut(set("endpoints.distributor.inbox.distribute", "yes please")),
			want: []string{"endpoints.distributor.inbox.distribute: want true or false"}},
		{name: "distribute as a number", mut: mut(set("endpoints.distributor.inbox.distribute", 1)),
			want: []string{"endpoints.distributor.inbox.distribute: want true or false"}},
		{name: "connections as a list", mut: mut(set("connections", []any{"sqlite://x"})),
			want: []string{"connections: want an object, got a list"}},
		{name: "connection as a number", mut: mut(set("connections.default", 5)),
			want: []string{"connections.default: want a string"}},
		{name: "inbox as a string", mut: mut(set("endpoints.worker.inbox", "sql://default/x")),
			want: []string{"endpoints.worker.inbox: want an object"}},
		{name: "handlers as an object", mut: mut(set("endpoints.worker.handlers", map[string]any{"type": "*"})),
			want: []string{"endpoints.worker.handlers: want a list"}},
		{name: "urls as a string", mut: mut(handler(map[string]any{"type": "*", "http": map[string]any{"urls": "http://x/"}})),
			want: []string{"endpoints.worker.handlers[0].http.urls: want a list"}},
		{name: "route types as a string", mut: mut(set("routes", []any{map[string]any{"types": "*", "queue": "sql://default/x"}})),
			want: []string{"routes[0].types: want a list"}},
		{name: "maxAttempts as an object", mut: mut(set("endpoints.worker.inbox.retry.maxAttempts", map[string]any{})),
			want: []string{"endpoints.worker.inbox.retry.maxAttempts: want a whole number, got an object"}},
		{name: "exponential factor as a word", mut: mut(set("endpoints.worker.inbox.retry", map[string]any{"exponential": map[string]any{"factor": "double"}})),
			want: []string{"endpoints.worker.inbox.retry.exponential.factor: want a number"}},
		{name: "autoMigrate as a word", mut: mut(set("autoMigrate", "sometimes")),
			want: []string{"autoMigrate: want true or false"}},
		{name: "negative threads", mut: mut(set("endpoints.worker.inbox.threads", -1)),
			want: []string{"endpoints.worker.inbox.threads: -1 is negative"}},
		{name: "negative distributeSendCount", mut: mut(set("endpoints.distributor.inbox.distributeSendCount", -5)),
			want: []string{"endpoints.distributor.inbox.distributeSendCount: -5 is negative"}},

		// Roles.
		{name: "distribute without controlInbox", mut: mut(set("endpoints.distributor.controlInbox", nil)),
			want: []string{"endpoints.distributor.controlInbox: required when inbox.distribute is true"}},
		{name: "controlInbox without inbox", mut: mut(set("endpoints.distributor.inbox", nil)),
			want: []string{"endpoints.distributor.inbox: required"}},
		{name: "empty controlInbox", mut: mut(set("endpoints.distributor.controlInbox", map[string]any{})),
			want: []string{"endpoints.distributor.controlInbox.workQueue: required", "endpoints.distributor.controlInbox.errorQueue: required"}},
		{name: "worker without distributorControlQueue", mut: mut(set("endpoints.worker.worker.distributorControlQueue", nil)),
			want: []string{"endpoints.worker.worker.distributorControlQueue: required"}},
		{name: "worker with an empty worker section", mut: mut(set("endpoints.worker.worker", map[string]any{})),
			want: []string{"endpoints.worker.worker.distributorControlQueue: required"}},
		{name: "worker without inbox", mut: mut(set("endpoints.worker.inbox", nil)),
			want: []string{"endpoints.worker.inbox: required: a worker needs its own work queue"}},
		{name: "worker that is also a distributor", mut: mut(set("endpoints.worker.controlInbox", map[string]any{"workQueue": "sql://default/c2", "errorQueue": "sql://default/error"})),
			want: []string{"endpoints.worker.controlInbox: a worker cannot also be a distributor"}},

		// Handlers.
		{name: "handler with none of http/log/noop", mut: mut(handler(map[string]any{"type": "*"})),
			want: []string{"endpoints.worker.handlers[0]: set exactly one of http, log, noop"}},
		{name: "handler with http and noop", mut: mut(handler(map[string]any{"type": "*", "noop": map[string]any{}, "http": map[string]any{"urls": []any{"http://x/"}}})),
			want: []string{"endpoints.worker.handlers[0]: set exactly one of http, log, noop"}},
		{name: "handler with log and noop", mut: mut(handler(map[string]any{"type": "*", "noop": map[string]any{}, "log": map[string]any{}})),
			want: []string{"endpoints.worker.handlers[0]: set exactly one of http, log, noop"}},
		{name: "handler without type", mut: mut(handler(map[string]any{"noop": map[string]any{}})),
			want: []string{"endpoints.worker.handlers[0].type: required"}},
		{name: "noop handler as true", mut: mut(handler(map[string]any{"type": "*", "noop": true})),
			want: []string{"endpoints.worker.handlers[0].noop: want an object"}},
		{name: "http without urls", mut: mut(handler(map[string]any{"type": "*", "http": map[string]any{"timeout": "1s"}})),
			want: []string{"endpoints.worker.handlers[0].http.urls: at least one URL is required"}},
		{name: "http with a bad URL", mut: mut(handler(map[string]any{"type": "*", "http": map[string]any{"urls": []any{"http://ok/", "ftp://host/x"}}})),
			want: []string{"endpoints.worker.handlers[0].http.urls[1]:", `"ftp://host/x" is not an http(s) URL`}},
		{name: "http URL without scheme", mut: mut(handler(map[string]any{"type": "*", "http": map[string]any{"urls": []any{"127.0.0.1:8080/handle"}}})),
			want: []string{"endpoints.worker.handlers[0].http.urls[0]:"}},
		{name: "http URL without host", mut: mut(handler(map[string]any{"type": "*", "http": map[string]any{"urls": []any{"http://"}}})),
			want: []string{"endpoints.worker.handlers[0].http.urls[0]:"}},

		// Log, connections, endpoints.
		{name: "bad log level", mut: mut(set("log.level", "loud")),
			want: []string{`log.level: "loud": want debug, info, warn or error`}},
		{name: "bad log format", mut: mut(set("log.format", "xml")),
			want: []string{`log.format: "xml": want text or json`}},
		{name: "no connections", mut: mut(set("connections", map[string]any{})),
			want: []string{"connections: at least one connection is required"}},
		{name: "connection of an unknown kind", mut: mut(set("connections.default", "mysql://u:hunter2@db/x")),
			want: []string{"connections.default:", "want sqlite://PATH or postgres://"}},
		{name: "no endpoints", mut: mut(set("endpoints", map[string]any{})),
			want: []string{"endpoints: at least one endpoint is required"}},
		{name: "not JSON", raw: `{"connections": `, want: []string{"not valid JSON"}},

		// Environment overrides.
		{name: "env bad whole number", env: []string{"FERRY_ENDPOINTS__WORKER__INBOX__THREADS=many"},
			want: []string{"endpoints.worker.inbox.threads: want a whole number", "FERRY_ENDPOINTS__WORKER__INBOX__THREADS"}},
		{name: "env bad duration", env: []string{"FERRY_ENDPOINTS__WORKER__INBOX__LEASE=5 sec"},
			want: []string{"endpoints.worker.inbox.lease: invalid duration", "FERRY_ENDPOINTS__WORKER__INBOX__LEASE"}},
		{name: "env bad log level", env: []string{"FERRY_LOG__LEVEL=loud"},
			want: []string{"log.level:", "FERRY_LOG__LEVEL"}},
		{name: "env bad URI", env: []string{"FERRY_ENDPOINTS__DISTRIBUTOR__INBOX__WORKQUEUE=sql://nope/x"},
			want: []string{"endpoints.distributor.inbox.workQueue:", `unknown connection "nope"`, "FERRY_ENDPOINTS__DISTRIBUTOR__INBOX__WORKQUEUE"}},
		{name: "env unknown key", env: []string{"FERRY_ENDPOINTS__WORKER__INBOX__THREDS=3"},
			want: []string{"FERRY_ENDPOINTS__WORKER__INBOX__THREDS", "endpoints.worker.inbox.threds: unknown key", `did you mean "threads"`}},
		{name: "env unknown top-level section", env: []string{"FERRY_ENDPOINTS__WORKER__INBOXX__THREADS=3"},
			want: []string{"FERRY_ENDPOINTS__WORKER__INBOXX__THREADS", "endpoints.worker.inboxx: unknown key", `did you mean "inbox"`}},
		{name: "env bad value inside a new key", env: []string{"FERRY_ENDPOINTS__WORKER__INBOX__RETRY__BACKOFF=1s,soon"},
			want: []string{"endpoints.worker.inbox.retry.backoff[1]: invalid duration", "FERRY_ENDPOINTS__WORKER__INBOX__RETRY__BACKOFF"}},
		{name: "env key inside a value", env: []string{"FERRY_LOG__LEVEL__X=1"},
			want: []string{"FERRY_LOG__LEVEL__X", "log.level"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data := []byte(tc.raw)
			if tc.raw == "" {
				m := base()
				for _, f := range tc.mut {
					f(m)
				}
				data = encode(t, m)
			}
			cfg, err := Parse(data, tc.env)
			if err == nil {
				t.Fatalf("Parse succeeded, want an error naming %q; config: %s", tc.want[0], data)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("error %T is not a *config.Error (the binary exits 2 on those): %v", err, err)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config with its error")
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, msg)
				}
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("error shows a DSN password:\n%s", msg)
			}
			if tc.keys != nil {
				got := keys(err)
				for _, k := range tc.keys {
					found := false
					for _, g := range got {
						found = found || g == k
					}
					if !found {
						t.Errorf("error keys %q lack %q", got, k)
					}
				}
			}
		})
	}
}

func mut(fs ...func(map[string]any)) []func(map[string]any) { return fs }

// TestEnvOverrides: FERRY_A__B=v sets key a.b, matching keys regardless of
// case; values are converted to the key's type; other FERRY_ variables are
// left alone.
func TestEnvOverrides(t *testing.T) {
	env := []string{
		"FERRY_ENDPOINTS__WORKER__INBOX__THREADS=16",
		"FERRY_ENDPOINTS__WORKER__WORKER__AVAILABILITYINTERVAL=2s",
		"FERRY_ENDPOINTS__WORKER__INBOX__RETRY__BACKOFF=100ms, 2s",
		"FERRY_ENDPOINTS__DISTRIBUTOR__INBOX__DISTRIBUTE=false",
		"FERRY_ENDPOINTS__DISTRIBUTOR__INBOX__DISTRIBUTESENDCOUNT=7",
		"FERRY_ENDPOINTS__DISTRIBUTOR__RECLAIMAFTER=3s",
		"FERRY_CONNECTIONS__DEFAULT=postgres://postgres@127.0.0.1:5432/test",
		"FERRY_CONNECTIONS__OTHER=sqlite:///tmp/other.db",
		"FERRY_AUTOMIGRATE=true",
		"FERRY_LOG__LEVEL=debug",
		// Not configuration keys: ignored.
		"FERRY_CONFIG=/elsewhere.json",
		"FERRY_TEST_POSTGRES=postgres://x",
		"FERRY_REQUIRE_POSTGRES=1",
		"PATH=/usr/bin",
		"FERRY_NOEQUALS",
	}
	cfg, err := Parse(encode(t, base()), env)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	w := cfg.Endpoints["worker"]
	if w.Inbox.Threads != 16 {
		t.Errorf("threads = %d, want 16 from FERRY_ENDPOINTS__WORKER__INBOX__THREADS", w.Inbox.Threads)
	}
	if w.Worker.AvailabilityInterval != 2*time.Second {
		t.Errorf("availabilityInterval = %v, want 2s", w.Worker.AvailabilityInterval)
	}
	if got := w.Inbox.Retry.Backoff; !reflect.DeepEqual(got, []time.Duration{100 * time.Millisecond, 2 * time.Second}) {
		t.Errorf("backoff = %v, want [100ms 2s]", got)
	}
	if w.Inbox.Retry.MaxAttempts != 5 {
		t.Errorf("maxAttempts = %d: an override of a sibling key lost it", w.Inbox.Retry.MaxAttempts)
	}
	d := cfg.Endpoints["distributor"]
	if d.Inbox.Distribute || d.Inbox.DistributeSendCount != 7 || d.ReclaimAfter != 3*time.Second {
		t.Errorf("distributor = %+v reclaimAfter %v", d.Inbox, d.ReclaimAfter)
	}
	if d.Inbox.WorkQueue != "sql://default/server-inbox-work" {
		t.Errorf("distributor inbox.workQueue = %q: lost by an override of a sibling", d.Inbox.WorkQueue)
	}
	if cfg.Connections["default"] != "postgres://postgres@127.0.0.1:5432/test" || cfg.Connections["other"] != "sqlite:///tmp/other.db" {
		t.Errorf("connections = %v", cfg.Connections)
	}
	if cfg.AutoMigrate == nil || !*cfg.AutoMigrate {
		t.Errorf("autoMigrate = %v, want true", cfg.AutoMigrate)
	}
	if cfg.Log.Level != "debug" {
		t.Errorf("log.level = %q", cfg.Log.Level)
	}
}

// TestEnvOverrideWithoutFile: an environment variable can supply a key the
// file does not have at all.
func TestEnvOverrideWithoutFile(t *testing.T) {
	m := base()
	delete(obj(m, "endpoints.worker.inbox"), "threads")
	delete(m, "log")
	cfg, err := Parse(encode(t, m), []string{"FERRY_ENDPOINTS__WORKER__INBOX__THREADS=3", "FERRY_LOG__FORMAT=text"})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Endpoints["worker"].Inbox.Threads; got != 3 {
		t.Errorf("threads = %d, want 3", got)
	}
	if cfg.Log.Format != "text" {
		t.Errorf("log.format = %q", cfg.Log.Format)
	}
}

func TestLogAndNoopHandlers(t *testing.T) {
	m := base()
	obj(m, "endpoints.worker")["handlers"] = []any{
		map[string]any{"type": "orders.*", "log": map[string]any{}},
		map[string]any{"type": "*", "noop": map[string]any{}},
	}
	cfg, err := Parse(encode(t, m), nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := cfg.Endpoints["worker"].Handlers
	if len(hs) != 2 || hs[0].Log == nil || hs[0].HTTP != nil || hs[1].Noop == nil || hs[1].Type != "*" {
		t.Errorf("handlers = %+v", hs)
	}
}

func TestWithID(t *testing.T) {
	m := base()
	obj(m, "endpoints.worker.inbox")["errorQueue"] = "sql://default/worker-{id}-error"
	cfg, err := Parse(encode(t, m), nil)
	if err != nil {
		t.Fatal(err)
	}

	ep, err := cfg.WithID("worker", "w7")
	if err != nil {
		t.Fatalf("WithID(worker, w7): %v", err)
	}
	if ep.Inbox.WorkQueue != "sql://default/worker-w7-work" || ep.Inbox.ErrorQueue != "sql://default/worker-w7-error" {
		t.Errorf("inbox = %q, %q", ep.Inbox.WorkQueue, ep.Inbox.ErrorQueue)
	}
	if ep.Inbox.Threads != 8 || ep.Inbox.Retry == nil || ep.Worker.DistributorControlQueue != "sql://default/control-inbox-work" {
		t.Errorf("WithID lost settings: inbox %+v worker %+v", ep.Inbox, ep.Worker)
	}
	// The configuration itself keeps {id}: another worker can be made from it.
	if got := cfg.Endpoints["worker"].Inbox.WorkQueue; got != "sql://default/worker-{id}-work" {
		t.Errorf("WithID changed the configuration: workQueue now %q", got)
	}
	if ep2, err := cfg.WithID("worker", "w8"); err != nil || ep2.Inbox.WorkQueue != "sql://default/worker-w8-work" {
		t.Errorf("second WithID = %q, %v", ep2.Inbox.WorkQueue, err)
	}

	// {id} used and no id given: one error per key, naming the key and --id.
	_, err = cfg.WithID("worker", "")
	if err == nil {
		t.Fatal("WithID(worker, \"\") succeeded though the worker's queues use {id}")
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Errorf("error %T is not a *config.Error", err)
	}
	msg := err.Error()
	for _, w := range []string{"endpoints.worker.inbox.workQueue", "endpoints.worker.inbox.errorQueue", "--id"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error lacks %q:\n%s", w, msg)
		}
	}
	if n := strings.Count(msg, "endpoints.worker.inbox.workQueue"); n != 1 {
		t.Errorf("the missing --id is reported %d times for workQueue, want once:\n%s", n, msg)
	}

	// An id that makes an invalid queue name.
	_, err = cfg.WithID("worker", "W 1")
	if err == nil || !strings.Contains(err.Error(), "endpoints.worker.inbox.workQueue") || !strings.Contains(err.Error(), `"W 1"`) {
		t.Errorf("WithID(worker, \"W 1\") = %v, want an error naming the key and the id", err)
	}
	_, err = cfg.WithID("worker", "UPPER")
	if err == nil || !strings.Contains(err.Error(), "endpoints.worker.inbox.errorQueue") {
		t.Errorf("WithID(worker, UPPER) = %v, want an error naming inbox.errorQueue too", err)
	}

	// Endpoints that do not use {id} need none.
	if ep, err := cfg.WithID("distributor", ""); err != nil || ep.ControlInbox.WorkQueue != "sql://default/control-inbox-work" {
		t.Errorf("WithID(distributor, \"\") = %+v, %v", ep.ControlInbox, err)
	}
	if _, err := cfg.WithID("distributor", "d1"); err != nil {
		t.Errorf("WithID(distributor, d1): %v", err)
	}

	// Unknown endpoint: named, with the configured ones.
	_, err = cfg.WithID("wroker", "w1")
	if err == nil || !strings.Contains(err.Error(), `"wroker"`) || !strings.Contains(err.Error(), "distributor, worker") || !errors.As(err, &ce) {
		t.Errorf("WithID(wroker) = %v", err)
	}
}

// TestWithIDEverywhere: {id} is filled in the control inbox and the
// worker's distributorControlQueue too, and required there.
func TestWithIDEverywhere(t *testing.T) {
	m := base()
	obj(m, "endpoints.distributor.controlInbox")["workQueue"] = "sql://default/control-{id}"
	obj(m, "endpoints.worker.worker")["distributorControlQueue"] = "sql://default/control-{id}"
	cfg, err := Parse(encode(t, m), nil)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := cfg.WithID("distributor", "eu")
	if err != nil || ep.ControlInbox.WorkQueue != "sql://default/control-eu" {
		t.Errorf("distributor controlInbox = %+v, %v", ep.ControlInbox, err)
	}
	if _, err := cfg.WithID("distributor", ""); err == nil || !strings.Contains(err.Error(), "endpoints.distributor.controlInbox.workQueue") {
		t.Errorf("WithID(distributor, \"\") = %v, want an error naming controlInbox.workQueue", err)
	}
	ep, err = cfg.WithID("worker", "eu")
	if err != nil || ep.Worker.DistributorControlQueue != "sql://default/control-eu" {
		t.Errorf("worker = %+v, %v", ep.Worker, err)
	}
	if _, err := cfg.WithID("worker", ""); err == nil || !strings.Contains(err.Error(), "endpoints.worker.worker.distributorControlQueue") {
		t.Errorf("WithID(worker, \"\") = %v, want an error naming worker.distributorControlQueue", err)
	}
}

// TestRootConfig: the config.json at the root of the repository parses, and
// its worker runs with an --id.
func TestRootConfig(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "config.json")
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	if got := cfg.EndpointNames(); !reflect.DeepEqual(got, []string{"distributor", "worker"}) {
		t.Errorf("endpoints = %v", got)
	}
	d := cfg.Endpoints["distributor"]
	if d.Inbox == nil || !d.Inbox.Distribute || d.Inbox.DistributeSendCount != 5 || d.ControlInbox == nil {
		t.Errorf("distributor = %+v", d)
	}
	w, err := cfg.WithID("worker", "w1")
	if err != nil {
		t.Fatalf("WithID(worker, w1): %v", err)
	}
	if w.Inbox.WorkQueue != "sql://default/worker-w1-work" || w.Inbox.Threads != 8 || w.Worker.AvailabilityInterval != 15*time.Second {
		t.Errorf("worker = %+v %+v", w.Inbox, w.Worker)
	}
	if r := w.Inbox.Retry; r == nil || r.MaxAttempts != 5 || !reflect.DeepEqual(r.Backoff, []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}) {
		t.Errorf("retry = %+v", r)
	}
	if len(w.Handlers) != 1 || w.Handlers[0].HTTP == nil || w.Handlers[0].HTTP.URLs[0] != "http://127.0.0.1:8080/handle" || w.Handlers[0].HTTP.Timeout != 10*time.Second {
		t.Errorf("handlers = %+v", w.Handlers)
	}
	if len(cfg.Routes) != 1 || cfg.Routes[0].Queue != "sql://default/server-inbox-work" {
		t.Errorf("routes = %+v", cfg.Routes)
	}
	if !cfg.Migrate(cfg.Connections["default"]) {
		t.Errorf("a SQLite connection is not migrated at start by default")
	}
	if _, err := cfg.WithID("worker", ""); err == nil {
		t.Errorf("the root config's worker runs without --id")
	}
}

func TestLoadErrors(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.json"), nil)
	var ce *Error
	if err == nil || !errors.As(err, &ce) || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("Load(missing) = %v, want a config error naming the file", err)
	}
}

// TestLoadErrorsNameTheFile: every error of a configuration file, whether
// found reading, parsing, checking or validating it, applying environment
// overrides or filling {id}, is a *Error whose every line begins with
// "config PATH: " and names PATH once; errors of Parse name no file.
func TestLoadErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	broken := func(fs ...func(map[string]any)) []byte {
		m := base()
		for _, f := range fs {
			f(m)
		}
		return encode(t, m)
	}
	good := write("good.json", encode(t, base()))
	cases := []struct {
		name  string
		path  string
		env   []string
		lines int    // lines of the message
		want  string // after "config PATH: "
	}{
		{"missing file", filepath.Join(dir, "missing.json"), nil, 1, "cannot read: "},
		{"not JSON", write("notjson.json", []byte(`{"connections": `)), nil, 1, "not valid JSON: "},
		{"unknown key", write("typo.json", broken(set("endpoints.worker.inbox.thread", 4))), nil, 1, "endpoints.worker.inbox.thread: unknown key"},
		{"wrong type", write("type.json", broken(set("endpoints.worker.inbox.threads", "four"))), nil, 1, "endpoints.worker.inbox.threads: want a whole number"},
		{"invalid URI", write("uri.json", broken(set("endpoints.distributor.inbox.workQueue", "sql://default/Server Inbox"))), nil, 1,
			"endpoints.distributor.inbox.workQueue: invalid queue URI"},
		{"invalid duration", write("duration.json", broken(set("endpoints.distributor.reclaimAfter", "3 seconds"))), nil, 1,
			"endpoints.distributor.reclaimAfter: invalid duration"},
		{"two errors", write("two.json", broken(set("endpoints.worker.inbox.lease", "forever"), set("endpoints.worker.worker.availabilityInterval", 5))), nil, 2,
			"endpoints.worker.inbox.lease: invalid duration"},
		{"validation", write("validate.json", broken(set("endpoints.worker.worker.distributorControlQueue", nil))), nil, 1,
			"endpoints.worker.worker.distributorControlQueue: required"},
		{"bad environment value", good, []string{"FERRY_ENDPOINTS__WORKER__INBOX__THREADS=lots"}, 1,
			"endpoints.worker.inbox.threads: want a whole number"},
		{"unknown environment key", good, []string{"FERRY_ENDPOINTS__WORKER__INBOX__LEAS=1s"}, 1,
			"endpoints.worker.inbox.leas: unknown key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.path, tc.env)
			if err == nil {
				t.Fatalf("Load(%s) succeeded", tc.path)
			}
			checkNamesFile(t, err, tc.path, tc.lines, tc.want)
		})
	}

	// Errors found after loading: {id} unfilled, unknown endpoint.
	cfg, err := Load(good, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File() != good {
		t.Errorf("File() = %q, want %q", cfg.File(), good)
	}
	_, err = cfg.WithID("worker", "")
	checkNamesFile(t, err, good, 1, "endpoints.worker.inbox.workQueue: ")
	_, err = cfg.WithID("wroker", "w1")
	checkNamesFile(t, err, good, 1, `endpoints: no endpoint "wroker"`)
	cfg.Log.Level = "loud"
	checkNamesFile(t, cfg.Validate(), good, 1, "log.level: ")

	// Parse reads no file and names none.
	_, err = Parse(broken(set("endpoints.worker.inbox.thread", 4)), nil)
	if err == nil || !strings.HasPrefix(err.Error(), "config: endpoints.worker.inbox.thread: ") {
		t.Errorf("Parse error = %v, want it to begin \"config: endpoints.worker.inbox.thread: \"", err)
	}
}

// checkNamesFile fails unless err is a *Error of lines lines, each beginning
// "config PATH: " and naming path once, the first followed by want.
func checkNamesFile(t *testing.T, err error, path string, lines int, want string) {
	t.Helper()
	var ce *Error
	if err == nil || !errors.As(err, &ce) {
		t.Fatalf("error %T %v is not a *config.Error (the binary exits 2 on those)", err, err)
	}
	msg := err.Error()
	got := strings.Split(msg, "\n")
	if len(got) != lines {
		t.Errorf("error has %d lines, want %d:\n%s", len(got), lines, msg)
	}
	prefix := "config " + path + ": "
	if !strings.HasPrefix(msg, prefix+want) {
		t.Errorf("error does not begin %q:\n%s", prefix+want, msg)
	}
	for _, line := range got {
		if !strings.HasPrefix(line, prefix) || strings.Count(line, path) != 1 {
			t.Errorf("error line does not begin %q or names the file more than once:\n%s", prefix, line)
		}
	}
}

func TestRedacted(t *testing.T) {
	m := base()
	obj(m, "connections")["pg"] = "postgres://ferry:hunter2@db.example:5432/ferry?sslmode=disable"
	cfg, err := Parse(encode(t, m), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Redacted()
	if strings.Contains(r["pg"], "hunter2") || !strings.Contains(r["pg"], "db.example") {
		t.Errorf("Redacted()[pg] = %q", r["pg"])
	}
	if r["default"] != "sqlite://./ferry.db" {
		t.Errorf("Redacted()[default] = %q", r["default"])
	}
	if cfg.Migrate(cfg.Connections["pg"]) {
		t.Errorf("PostgreSQL connections are migrated at start without autoMigrate")
	}
}
