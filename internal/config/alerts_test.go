package config

import (
	"encoding/json"
	"testing"
	"time"
)

// withAlerts adds the alerts section of the documentation's example to
// base(), whose endpoints are "distributor" and "worker".
func withAlerts(m map[string]any) {
	var a map[string]any
	if err := json.Unmarshal([]byte(`{
	  "webhook": {"url": "http://127.0.0.1:9093/alerts", "timeout": "3s", "maxAttempts": 4, "headers": {"Authorization": "Bearer x"}},
	  "interval": "5s", "repeatInterval": "1h",
	  "rules": [
	    {"name": "worker-failing", "kind": "failureRate", "endpoint": "worker", "window": "5m", "threshold": 0.2, "minMessages": 20},
	    {"name": "stuck", "kind": "failureCount", "endpoint": "worker", "threshold": 3},
	    {"name": "backlog", "kind": "queueDepth", "queue": "sql://default/server-inbox-work", "threshold": 10000},
	    {"name": "old-head", "kind": "queueAge", "queue": "sql://default/server-inbox-work", "threshold": "10m"},
	    {"name": "worker-silent", "kind": "workerSilent", "endpoint": "distributor", "threshold": "30s"},
	    {"name": "lock-lost", "kind": "lockLost", "endpoint": "distributor"},
	    {"name": "errors", "kind": "queueDepth", "queue": "sql://default/error", "threshold": 1, "count": "total"},
	    {"name": "own-queue", "kind": "queueDepth", "queue": "sql://default/worker-{id}-work", "threshold": 50}
	  ]}`), &a); err != nil {
		panic(err)
	}
	m["alerts"] = a
}

// rule sets key k of alerts.rules[i].
func rule(i int, k string, v any) func(map[string]any) {
	return func(m map[string]any) {
		r := m["alerts"].(map[string]any)["rules"].([]any)[i].(map[string]any)
		if v == nil {
			delete(r, k)
			return
		}
		r[k] = v
	}
}

func TestAlertsValid(t *testing.T) {
	m := base()
	withAlerts(m)
	cfg, err := Parse(encode(t, m), nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	a := cfg.Alerts
	if a.Webhook.Timeout != 3*time.Second || a.Webhook.MaxAttempts != 4 || a.RepeatInterval != time.Hour || len(a.Rules) != 8 {
		t.Fatalf("alerts = %+v", a)
	}
	if r := a.Rules[0]; r.ThresholdNumber() != 0.2 || r.Window != 5*time.Minute || r.MinMessages != 20 {
		t.Errorf("failureRate rule = %+v", r)
	}
	if r := a.Rules[3]; r.ThresholdDuration() != 10*time.Minute {
		t.Errorf("queueAge rule = %+v", r)
	}
	// Queue rules are evaluated by the endpoint receiving from the queue;
	// the error queue's by the first endpoint (by name) parking there.
	for i, want := range map[int]string{2: "distributor", 3: "distributor", 6: "distributor", 7: "worker"} {
		if got := cfg.AlertQueueEndpoint(a.Rules[i]); got != want {
			t.Errorf("rule %d evaluated by %q, want %q", i, got, want)
		}
	}
}

// Every bad value of the alerts section is an error naming its key path.
func TestAlertsBad(t *testing.T) {
	cases := []struct {
		name string
		mut  func(map[string]any)
		key  string
		want string
	}{
		{"bad url", set("alerts.webhook.url", "ftp://x"), "alerts.webhook.url", "not an http(s) URL"},
		{"zero timeout", set("alerts.webhook.timeout", "0s"), "alerts.webhook.timeout", "0 is not allowed"},
		{"too many attempts", set("alerts.webhook.maxAttempts", 11), "alerts.webhook.maxAttempts", "too large"},
		{"zero interval", set("alerts.interval", "0s"), "alerts.interval", "0 is not allowed"},
		{"long repeat", set("alerts.repeatInterval", "1000h"), "alerts.repeatInterval", "too long"},
		{"negative maxAlerts", set("alerts.maxAlerts", -1), "alerts.maxAlerts", "negative"},
		{"no rules", set("alerts.rules", []any{}), "alerts.rules", "at least one rule"},
		{"unknown key", rule(0, "thresold", 1), "alerts.rules[0].thresold", "did you mean \"threshold\""},
		{"no name", rule(0, "name", nil), "alerts.rules[0].name", "required"},
		{"bad name", rule(0, "name", "a b"), "alerts.rules[0].name", "want letters"},
		{"same name", rule(1, "name", "worker-failing"), "alerts.rules[1].name", "also the name of alerts.rules[0]"},
		{"unknown kind", rule(0, "kind", "failureRat"), "alerts.rules[0].kind", "want failureRate"},
		{"ratio over 1", rule(0, "threshold", 1.5), "alerts.rules[0].threshold", "at most 1"},
		{"ratio zero", rule(0, "threshold", 0), "alerts.rules[0].threshold", "above 0"},
		{"ratio as text", rule(0, "threshold", "high"), "alerts.rules[0].threshold", "want a number"},
		{"no threshold", rule(0, "threshold", nil), "alerts.rules[0].threshold", "required"},
		{"zero window", rule(0, "window", "0s"), "alerts.rules[0].window", "0 is not allowed"},
		{"zero minMessages", rule(0, "minMessages", 0), "alerts.rules[0].minMessages", "0 is not allowed"},
		{"unknown endpoint", rule(0, "endpoint", "orders"), "alerts.rules[0].endpoint", "no endpoint \"orders\""},
		{"distributing endpoint", rule(0, "endpoint", "distributor"), "alerts.rules[0].endpoint", "handles none itself"},
		{"fractional count", rule(1, "threshold", 2.5), "alerts.rules[1].threshold", "whole number"},
		{"window on failureCount", rule(1, "window", "1m"), "alerts.rules[1].window", "not a key of a failureCount rule"},
		{"unknown queue", rule(2, "queue", "sql://default/nope"), "alerts.rules[2].queue", "not a queue of this file"},
		{"bad depth", rule(2, "threshold", 0), "alerts.rules[2].threshold", "from 1"},
		{"bad count", rule(2, "count", "all"), "alerts.rules[2].count", "want ready"},
		{"age as number", rule(3, "threshold", 600), "alerts.rules[3].threshold", "want a duration"},
		{"bad age", rule(3, "threshold", "10 minutes"), "alerts.rules[3].threshold", "invalid duration"},
		{"short age", rule(3, "threshold", "10ms"), "alerts.rules[3].threshold", "want 1s to"},
		{"silent of a worker", rule(4, "endpoint", "worker"), "alerts.rules[4].endpoint", "not a distributor"},
		{"lockLost with threshold", rule(5, "threshold", 1), "alerts.rules[5].threshold", "not a key of a lockLost rule"},
		{"route queue nobody receives", func(m map[string]any) {
			m["routes"] = append(m["routes"].([]any), map[string]any{"types": []any{"x"}, "queue": "sql://default/elsewhere"})
			rule(2, "queue", "sql://default/elsewhere")(m)
		}, "alerts.rules[2].endpoint", "no endpoint of this file receives"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := parseErr(t, nil, withAlerts, c.mut)
			wantErr(t, err, c.key, c.want)
		})
	}
}
