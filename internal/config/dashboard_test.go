package config

import (
	"strings"
	"testing"
)

// TestDashboardKeys: dashboard.addr and dashboard.token decode (the token
// from the environment too), and an empty one is an error naming the key.
func TestDashboardKeys(t *testing.T) {
	m := base()
	set("dashboard", map[string]any{"addr": "0.0.0.0:8089", "token": "t0k"})(m)
	cfg, err := Parse(encode(t, m), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Dashboard.Addr != "0.0.0.0:8089" || cfg.Dashboard.Token != "t0k" {
		t.Errorf("decoded %+v", cfg.Dashboard)
	}
	cfg, err = Parse(encode(t, base()), []string{"FERRY_DASHBOARD__TOKEN=env-tok"})
	if err != nil || cfg.Dashboard.Token != "env-tok" {
		t.Errorf("token from FERRY_DASHBOARD__TOKEN: %+v, %v", cfg.Dashboard, err)
	}
	for key, raw := range map[string]map[string]any{"dashboard.token": {"token": ""}, "dashboard.addr": {"addr": ""}, "dashboard.tokn": {"tokn": "x"}} {
		m := base()
		set("dashboard", raw)(m)
		_, err := Parse(encode(t, m), nil)
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%v: %v, want an error naming %s", raw, err, key)
		}
	}
}
