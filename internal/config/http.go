package config

import (
	"strings"
	"time"

	"github.com/ferrybus/ferry/internal/opshttp"
)

// HTTPServer configures the process's operations HTTP server (/metrics,
// /healthz, /readyz, /debug/pprof/): the "http" key.
type HTTPServer struct {
	// Addr is where `ferry run` serves: ":9090" listens on 127.0.0.1 only;
	// another interface is named ("0.0.0.0:9090"). Default "": no server.
	// `ferry run --http ADDR` overrides it.
	Addr string `koanf:"addr"`
	// Pprof serves /debug/pprof/ too. Default false.
	Pprof bool `koanf:"pprof"`
}

// DefaultSummaryInterval is how often `ferry run` logs an endpoint's
// summary line when log.summaryInterval is not set.
const DefaultSummaryInterval = 30 * time.Second

// Bounds of the keys of this file.
const (
	maxSummaryInterval = 24 * time.Hour
	minRetention       = time.Minute // retention runs every minute
	maxRetention       = 10 * 365 * 24 * time.Hour
)

// SummaryInterval is log.summaryInterval: DefaultSummaryInterval when the
// key is left out, 0 (no summary lines) when it is "0s".
func (c *Config) SummaryInterval() time.Duration {
	if !c.given["log.summaryInterval"] {
		return DefaultSummaryInterval
	}
	return c.Log.SummaryInterval
}

// CheckHTTPAddr checks an address for the operations server given at key
// (a configuration key or a flag): "" (none) or what opshttp.ListenAddr
// accepts.
func CheckHTTPAddr(key, addr string) error {
	if addr == "" {
		return nil
	}
	if _, err := opshttp.ListenAddr(addr); err != nil {
		return errorf(key, "%v", err)
	}
	return nil
}

// checkOps checks the keys of this file: http.addr, log.summaryInterval
// and the inboxes' retentions.
func (c *Config) checkOps() []error {
	var errs []error
	if err := CheckHTTPAddr("http.addr", c.HTTP.Addr); err != nil {
		errs = append(errs, err)
	}
	if c.given["http.addr"] && strings.TrimSpace(c.HTTP.Addr) == "" {
		errs = append(errs, errorf("http.addr", "empty: leave the key out for no HTTP server, or give an address such as \":9090\""))
	}
	l := &limits{given: c.given}
	// "0s" turns summary lines off: an explicit 0 is meaningful here.
	l.duration("log.summaryInterval", c.Log.SummaryInterval, time.Second, maxSummaryInterval, DefaultSummaryInterval.String(), true)
	for _, name := range sortedKeys(c.Endpoints) {
		ep := c.Endpoints[name]
		key := "endpoints." + name
		if ep.Inbox != nil {
			in := ep.Inbox.InboxConfig
			// 0 is the default (off for errors, 7 days for handled ids).
			l.duration(key+".inbox.errorRetention", in.ErrorRetention, minRetention, maxRetention, "off", true)
			l.duration(key+".inbox.handledRetention", in.HandledRetention, minRetention, maxRetention, "168h", false)
			if c.given[key+".inbox.handledRetention"] && !in.Idempotent {
				l.errs = append(l.errs, errorf(key+".inbox.handledRetention", "only for an idempotent inbox (inbox.idempotent: true): others record no handled ids"))
			}
		}
		if ep.ControlInbox != nil {
			for _, k := range []string{"errorRetention", "handledRetention"} {
				if c.given[key+".controlInbox."+k] {
					l.errs = append(l.errs, errorf(key+".controlInbox."+k, "not for a control inbox: its failed messages are discarded, never moved to the error queue, and it is never idempotent"))
				}
			}
		}
	}
	return append(errs, l.errs...)
}
