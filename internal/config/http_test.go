package config

import (
	"testing"
	"time"
)

// TestOpsKeys: http.addr, http.pprof, log.summaryInterval and the inbox
// retentions parse, with their defaults when left out.
func TestOpsKeys(t *testing.T) {
	cfg, err := Parse(encode(t, base()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != "" || cfg.HTTP.Pprof {
		t.Errorf("http defaults %+v, want no server, no pprof", cfg.HTTP)
	}
	if got := cfg.SummaryInterval(); got != DefaultSummaryInterval {
		t.Errorf("SummaryInterval() = %s with the key left out, want %s", got, DefaultSummaryInterval)
	}
	m := base()
	for _, f := range []func(map[string]any){
		set("http", map[string]any{"addr": ":9090", "pprof": true}),
		set("log.summaryInterval", "0s"),
		set("endpoints.worker.inbox.errorRetention", "720h"),
		set("endpoints.worker.inbox.idempotent", true),
		set("endpoints.worker.inbox.handledRetention", "48h"),
	} {
		f(m)
	}
	cfg, err = Parse(encode(t, m), []string{"FERRY_HTTP__ADDR=0.0.0.0:9191"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != "0.0.0.0:9191" || !cfg.HTTP.Pprof {
		t.Errorf("http %+v, want the environment's address and pprof on", cfg.HTTP)
	}
	if got := cfg.SummaryInterval(); got != 0 {
		t.Errorf("SummaryInterval() = %s for \"0s\", want 0 (off)", got)
	}
	in := cfg.Endpoints["worker"].Inbox
	if in.ErrorRetention != 720*time.Hour || in.HandledRetention != 48*time.Hour {
		t.Errorf("retentions %s, %s; want 720h, 48h", in.ErrorRetention, in.HandledRetention)
	}
}

// TestOpsKeysInvalid: bad values are errors naming their key.
func TestOpsKeysInvalid(t *testing.T) {
	for _, c := range []struct {
		name string
		mut  func(map[string]any)
		key  string
		want []string
	}{
		{"addr without port", setHTTP("addr", "9090"), "http.addr", []string{`"9090"`, "HOST:PORT"}},
		{"addr port out of range", setHTTP("addr", ":70000"), "http.addr", []string{"65535"}},
		{"addr named port", setHTTP("addr", ":http"), "http.addr", []string{"port"}},
		{"addr empty", setHTTP("addr", ""), "http.addr", []string{"leave the key out"}},
		{"pprof not bool", setHTTP("pprof", "yes"), "http.pprof", []string{"true or false"}},
		{"unknown http key", setHTTP("port", 9090), "http.port", []string{"unknown key"}},
		{"summary too short", set("log.summaryInterval", "10ms"), "log.summaryInterval", []string{"too short"}},
		{"summary negative", set("log.summaryInterval", "-1s"), "log.summaryInterval", []string{"negative"}},
		{"summary not a duration", set("log.summaryInterval", "30"), "log.summaryInterval", []string{"invalid duration"}},
		{"error retention too short", set("endpoints.worker.inbox.errorRetention", "1s"), "endpoints.worker.inbox.errorRetention", []string{"too short", "1m0s"}},
		{"handled retention not idempotent", set("endpoints.worker.inbox.handledRetention", "48h"), "endpoints.worker.inbox.handledRetention", []string{"idempotent"}},
		{"handled retention zero", func(m map[string]any) {
			set("endpoints.worker.inbox.idempotent", true)(m)
			set("endpoints.worker.inbox.handledRetention", "0s")(m)
		}, "endpoints.worker.inbox.handledRetention", []string{"0 is not allowed", "168h"}},
		{"control inbox retention", set("endpoints.distributor.controlInbox.errorRetention", "1h"), "endpoints.distributor.controlInbox.errorRetention", []string{"not for a control inbox"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantErr(t, parseErr(t, nil, c.mut), c.key, c.want...)
		})
	}
}

// TestCheckHTTPAddr names the flag it checks.
func TestCheckHTTPAddr(t *testing.T) {
	if err := CheckHTTPAddr("--http", "127.0.0.1:0"); err != nil {
		t.Errorf("127.0.0.1:0: %v", err)
	}
	if err := CheckHTTPAddr("--http", ""); err != nil {
		t.Errorf("empty (no server): %v", err)
	}
	err := CheckHTTPAddr("--http", "localhost")
	if err == nil {
		t.Fatal("localhost: no error")
	}
	wantErr(t, err, "--http", `"localhost"`)
}

// setHTTP sets the key k of the "http" object, creating it.
func setHTTP(k string, v any) func(map[string]any) {
	return func(m map[string]any) {
		h, ok := m["http"].(map[string]any)
		if !ok {
			h = map[string]any{}
			m["http"] = h
		}
		h[k] = v
	}
}
