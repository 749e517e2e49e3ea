package config

// Dashboard configures `ferry dashboard`: the "dashboard" key.
type Dashboard struct {
	// Addr is where it listens. Default "127.0.0.1:8089";
	// `ferry dashboard --addr` overrides it.
	Addr string `koanf:"addr"`
	// Token, when set, is required of every request (login form or
	// Authorization: Bearer). Required to listen beyond loopback. The
	// environment variable FERRY_DASHBOARD_TOKEN sets it too.
	Token string `koanf:"token"`
}

// checkDashboard checks the dashboard keys: a given key may not be empty.
func (c *Config) checkDashboard() []error {
	var errs []error
	if c.given["dashboard.addr"] && c.Dashboard.Addr == "" {
		errs = append(errs, errorf("dashboard.addr", "empty: leave the key out for 127.0.0.1:8089"))
	}
	if c.given["dashboard.token"] && c.Dashboard.Token == "" {
		errs = append(errs, errorf("dashboard.token", "empty: leave the key out for no token (loopback only)"))
	}
	return errs
}
