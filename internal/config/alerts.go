package config

// The alerts section: rules that `ferry run` evaluates and notifies to a
// webhook (package internal/alerts).

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Alerts configures threshold alerts.
type Alerts struct {
	// Webhook receives each notification as JSON; without it alerts are
	// only logged.
	Webhook *AlertWebhook `koanf:"webhook"`
	// Interval is how often rules are evaluated. Default 5s.
	Interval time.Duration `koanf:"interval"`
	// RepeatInterval is how often a firing alert is notified again. Default 1h.
	RepeatInterval time.Duration `koanf:"repeatInterval"`
	// MaxAlerts bounds the firing alerts tracked (and, separately, the
	// message alerts). Default 10000.
	MaxAlerts int         `koanf:"maxAlerts"`
	Rules     []AlertRule `koanf:"rules"`
}

// AlertWebhook is where alerts are POSTed.
type AlertWebhook struct {
	URL string `koanf:"url"`
	// Timeout bounds each POST. Default 5s.
	Timeout time.Duration `koanf:"timeout"`
	// MaxAttempts bounds the POSTs of one notification. Default 3.
	MaxAttempts int `koanf:"maxAttempts"`
	// Headers are sent with each POST (e.g. Authorization).
	Headers map[string]string `koanf:"headers"`
}

// AlertRule is one rule. Threshold is a number for failureRate (a ratio),
// failureCount (attempts) and queueDepth (messages), a duration for
// queueAge and workerSilent; lockLost has none.
type AlertRule struct {
	Name     string `koanf:"name"`
	Kind     string `koanf:"kind"`
	Endpoint string `koanf:"endpoint"`
	Queue    string `koanf:"queue"`
	// Window (failureRate): the sliding window. Default 5m.
	Window time.Duration `koanf:"window"`
	// MinMessages (failureRate): attempts the window must hold. Default 20.
	MinMessages int `koanf:"minMessages"`
	// Threshold is a number or a duration string, by kind (see AlertRule).
	Threshold any `koanf:"threshold"`
	// Count (queueDepth): "ready" (default) or "total".
	Count string `koanf:"count"`
}

// Bounds and defaults of the alerts section.
const (
	maxAlertRules       = 100
	maxAlertsTracked    = 1_000_000
	maxAlertInterval    = time.Hour
	minRepeatInterval   = time.Second
	maxRepeatInterval   = 7 * 24 * time.Hour
	maxWebhookTimeout   = time.Minute
	maxWebhookAttempts  = 10
	maxWebhookHeaders   = 20
	maxAlertWindow      = 24 * time.Hour
	maxMinMessages      = 1_000_000
	maxFailureCount     = 10_000
	maxQueueDepth       = 1e12
	maxAlertDuration    = 30 * 24 * time.Hour
	DefaultAlertWindow  = 5 * time.Minute
	DefaultMinMessages  = 20
	defaultAlertTimeout = "5s"
)

var ruleName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,99}$`)

// ThresholdNumber is the rule's numeric threshold (after Validate).
func (r AlertRule) ThresholdNumber() float64 {
	switch v := r.Threshold.(type) {
	case float64:
		return v
	case string:
		f, _ := strconv.ParseFloat(v, 64)
		return f
	}
	return 0
}

// ThresholdDuration is the rule's duration threshold (after Validate).
func (r AlertRule) ThresholdDuration() time.Duration {
	s, _ := r.Threshold.(string)
	d, _ := time.ParseDuration(s)
	return d
}

// checkAlerts checks the alerts section: every value, and that each rule
// names an endpoint (of the right role) or a queue of this file.
func (c *Config) checkAlerts() []error {
	a := c.Alerts
	if a == nil {
		return nil
	}
	l := &limits{given: c.given}
	l.duration("alerts.interval", a.Interval, minInterval, maxAlertInterval, "5s", false)
	l.duration("alerts.repeatInterval", a.RepeatInterval, minRepeatInterval, maxRepeatInterval, "1h", false)
	l.count("alerts.maxAlerts", a.MaxAlerts, maxAlertsTracked, "10000", true)
	if w := a.Webhook; w != nil {
		if p, err := url.Parse(w.URL); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			l.errs = append(l.errs, errorf("alerts.webhook.url", "%q is not an http(s) URL such as \"http://127.0.0.1:9093/alerts\"", w.URL))
		}
		l.duration("alerts.webhook.timeout", w.Timeout, time.Millisecond, maxWebhookTimeout, defaultAlertTimeout, false)
		l.count("alerts.webhook.maxAttempts", w.MaxAttempts, maxWebhookAttempts, "3", true)
		if len(w.Headers) > maxWebhookHeaders {
			l.errs = append(l.errs, errorf("alerts.webhook.headers", "%d headers: want at most %d", len(w.Headers), maxWebhookHeaders))
		}
	}
	if len(a.Rules) == 0 {
		l.errs = append(l.errs, errorf("alerts.rules", "at least one rule is required (or leave out alerts)"))
	}
	if len(a.Rules) > maxAlertRules {
		l.errs = append(l.errs, errorf("alerts.rules", "%d rules: want at most %d", len(a.Rules), maxAlertRules))
	}
	names := map[string]int{}
	for i, r := range a.Rules {
		key := fmt.Sprintf("alerts.rules[%d]", i)
		switch {
		case r.Name == "":
			l.errs = append(l.errs, errorf(key+".name", "required"))
		case !ruleName.MatchString(r.Name):
			l.errs = append(l.errs, errorf(key+".name", "%q: want letters, digits, '.', '-', '_' (at most 100)", r.Name))
		default:
			if j, ok := names[r.Name]; ok {
				l.errs = append(l.errs, errorf(key+".name", "%q is also the name of alerts.rules[%d]", r.Name, j))
			}
			names[r.Name] = i
		}
		c.checkRule(l, key, r)
	}
	return l.errs
}

// checkRule checks one rule by its kind: the keys it needs, the keys it
// does not take, and the values.
func (c *Config) checkRule(l *limits, key string, r AlertRule) {
	// uses lists the keys the kind takes beyond name and kind.
	var uses []string
	switch r.Kind {
	case "failureRate":
		uses = []string{"endpoint", "window", "minMessages", "threshold"}
		c.ruleEndpoint(l, key, r, "")
		l.duration(key+".window", r.Window, time.Second, maxAlertWindow, "5m", false)
		l.count(key+".minMessages", r.MinMessages, maxMinMessages, "20", true)
		if f, ok := l.number(key+".threshold", r.Threshold); ok && (f <= 0 || f > 1) {
			l.errs = append(l.errs, errorf(key+".threshold", "%v: want a ratio above 0 and at most 1 (0.2 is 20%% of attempts failed)", f))
		}
	case "failureCount":
		uses = []string{"endpoint", "threshold"}
		c.ruleEndpoint(l, key, r, "")
		if f, ok := l.number(key+".threshold", r.Threshold); ok && (f < 1 || f > maxFailureCount || f != float64(int64(f))) {
			l.errs = append(l.errs, errorf(key+".threshold", "%v: want a whole number of attempts from 1 to %d", f, maxFailureCount))
		}
	case "queueDepth":
		uses = []string{"queue", "endpoint", "threshold", "count"}
		c.ruleQueue(l, key, r)
		if f, ok := l.number(key+".threshold", r.Threshold); ok && (f < 1 || f > maxQueueDepth || f != float64(int64(f))) {
			l.errs = append(l.errs, errorf(key+".threshold", "%v: want a whole number of messages from 1 to %g", f, maxQueueDepth))
		}
		switch r.Count {
		case "", "ready", "total":
		default:
			l.errs = append(l.errs, errorf(key+".count", "%q: want ready (the default) or total", r.Count))
		}
	case "queueAge":
		uses = []string{"queue", "endpoint", "threshold"}
		c.ruleQueue(l, key, r)
		l.durationValue(key+".threshold", r.Threshold)
	case "workerSilent":
		uses = []string{"endpoint", "threshold"}
		c.ruleEndpoint(l, key, r, "distributor")
		l.durationValue(key+".threshold", r.Threshold)
	case "lockLost":
		uses = []string{"endpoint"}
		c.ruleEndpoint(l, key, r, "distributor")
	case "":
		l.errs = append(l.errs, errorf(key+".kind", "required: failureRate, failureCount, queueDepth, queueAge, workerSilent or lockLost"))
		return
	default:
		l.errs = append(l.errs, errorf(key+".kind", "%q: want failureRate, failureCount, queueDepth, queueAge, workerSilent or lockLost", r.Kind))
		return
	}
	for _, k := range []string{"endpoint", "queue", "window", "minMessages", "threshold", "count"} {
		if c.given[key+"."+k] && !contains(uses, k) {
			l.errs = append(l.errs, errorf(key+"."+k, "not a key of a %s rule (it takes %s)", r.Kind, strings.Join(uses, ", ")))
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// number checks a numeric threshold: required, a number.
func (l *limits) number(key string, v any) (float64, bool) {
	switch x := v.(type) {
	case nil:
		l.errs = append(l.errs, errorf(key, "required"))
	case float64:
		return x, true
	case string:
		if f, err := strconv.ParseFloat(x, 64); err == nil {
			return f, true
		}
		l.errs = append(l.errs, errorf(key, "want a number, got %q", x))
	default:
		l.errs = append(l.errs, errorf(key, "want a number, got %s", describe(v)))
	}
	return 0, false
}

// durationValue checks a duration threshold: required, 1s to 30 days.
func (l *limits) durationValue(key string, v any) {
	s, ok := v.(string)
	if !ok {
		if v == nil {
			l.errs = append(l.errs, errorf(key, "required: a duration such as \"30s\" or \"10m\""))
		} else {
			l.errs = append(l.errs, errorf(key, "want a duration such as \"10m\", got %s", describe(v)))
		}
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		l.errs = append(l.errs, errorf(key, "invalid duration %q (want e.g. \"30s\", \"10m\")", s))
		return
	}
	if d < time.Second || d > maxAlertDuration {
		l.errs = append(l.errs, errorf(key, "%s: want 1s to %s", d, maxAlertDuration))
	}
}

// ruleEndpoint checks a rule's endpoint: required, configured, and a
// distributor when role says so. For failure rules, an endpoint that
// handles nothing itself (a distributing distributor) is refused.
func (c *Config) ruleEndpoint(l *limits, key string, r AlertRule, role string) {
	if r.Endpoint == "" {
		l.errs = append(l.errs, errorf(key+".endpoint", "required"))
		return
	}
	ep, ok := c.Endpoints[r.Endpoint]
	if !ok {
		l.errs = append(l.errs, errorf(key+".endpoint", "no endpoint %q (configured: %s)", r.Endpoint, strings.Join(c.EndpointNames(), ", ")))
		return
	}
	switch {
	case role == "distributor" && ep.ControlInbox == nil:
		l.errs = append(l.errs, errorf(key+".endpoint", "%q is not a distributor (an endpoint with a controlInbox)", r.Endpoint))
	case role == "" && ep.Inbox == nil:
		l.errs = append(l.errs, errorf(key+".endpoint", "%q has no inbox: it handles no messages", r.Endpoint))
	case role == "" && ep.ControlInbox != nil && ep.Inbox.Distribute:
		l.errs = append(l.errs, errorf(key+".endpoint", "%q distributes every message to workers and handles none itself: name the workers' endpoint", r.Endpoint))
	}
}

// ruleQueue checks a queue rule's queue (one the file's endpoints or
// routes use) and the endpoint whose `ferry run` evaluates it.
func (c *Config) ruleQueue(l *limits, key string, r AlertRule) {
	if r.Queue == "" {
		l.errs = append(l.errs, errorf(key+".queue", "required"))
		return
	}
	if r.Endpoint != "" {
		if _, ok := c.Endpoints[r.Endpoint]; !ok {
			l.errs = append(l.errs, errorf(key+".endpoint", "no endpoint %q (configured: %s)", r.Endpoint, strings.Join(c.EndpointNames(), ", ")))
		}
	}
	known := c.fileQueues()
	if _, ok := known[c.queueID(r.Queue)]; !ok {
		l.errs = append(l.errs, errorf(key+".queue", "%q is not a queue of this file (an endpoint's inbox, error or control queue, or a route's)", r.Queue))
		return
	}
	if r.Endpoint == "" && c.AlertQueueEndpoint(r) == "" {
		l.errs = append(l.errs, errorf(key+".endpoint", "required: no endpoint of this file receives from %q; name the endpoint whose `ferry run` evaluates this rule", r.Queue))
	}
}

// fileQueues lists the queues the file names, by queue identity.
func (c *Config) fileQueues() map[string]bool {
	out := map[string]bool{}
	add := func(u string) {
		if u != "" {
			out[c.queueID(u)] = true
		}
	}
	for _, ep := range c.Endpoints {
		if ep.Inbox != nil {
			add(ep.Inbox.WorkQueue)
			add(ep.Inbox.ErrorQueue)
		}
		if ep.ControlInbox != nil {
			add(ep.ControlInbox.WorkQueue)
			add(ep.ControlInbox.ErrorQueue)
		}
	}
	for _, r := range c.Routes {
		add(r.Queue)
	}
	return out
}

// AlertQueueEndpoint is the endpoint whose `ferry run` evaluates a queue
// rule: its endpoint key when set, else the first endpoint (by name) that
// receives from the queue (inbox or control inbox), else the first whose
// error queue it is; "" when none.
func (c *Config) AlertQueueEndpoint(r AlertRule) string {
	if r.Endpoint != "" {
		return r.Endpoint
	}
	id := c.queueID(r.Queue)
	for _, name := range c.EndpointNames() {
		ep := c.Endpoints[name]
		if (ep.Inbox != nil && c.queueID(ep.Inbox.WorkQueue) == id) || (ep.ControlInbox != nil && c.queueID(ep.ControlInbox.WorkQueue) == id) {
			return name
		}
	}
	for _, name := range c.EndpointNames() {
		ep := c.Endpoints[name]
		if (ep.Inbox != nil && c.queueID(ep.Inbox.ErrorQueue) == id) || (ep.ControlInbox != nil && c.queueID(ep.ControlInbox.ErrorQueue) == id) {
			return name
		}
	}
	return ""
}
