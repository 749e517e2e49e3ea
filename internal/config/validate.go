package config

// Validate and the checks it runs, once the keys and value types are known
// good: required keys, queue URIs and handlers, values out of range (a typo
// of a few zeros is an error before anything starts, not gigabytes
// allocated or a busy loop), values given explicitly that ferry would
// otherwise replace by a default, and the endpoints' queues checked
// against each other.

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/queue"
)

// Bounds of the values the configuration accepts. They are far above any
// sensible setting, and low enough that a mistyped value fails at once.
const (
	maxThreads              = 1024                // inbox.threads, controlInbox.threads
	maxPrefetch             = 10_000              // inbox.prefetch
	maxDistributeSendCount  = 10_000              // inbox.distributeSendCount
	maxRetryAttempts        = 10_000              // retry.maxAttempts, retry.immediate
	maxBackoffSteps         = 100                 // entries of retry.backoff
	maxRetryDelay           = 30 * 24 * time.Hour // each retry.backoff entry, retry.exponential.initial and max
	minInterval             = 100 * time.Millisecond
	maxLease                = 24 * time.Hour
	maxAvailabilityInterval = time.Hour
	maxReclaimAfter         = 24 * time.Hour
	maxLockTTL              = 10 * time.Minute
	maxHTTPTimeout          = time.Hour
)

// Warning is a doubtful setting that does not stop ferry from running:
// Key is the key path it concerns, Msg what is doubtful about it.
type Warning struct {
	Key string
	Msg string
}

// String formats the warning as "KEY: MSG".
func (w Warning) String() string { return w.Key + ": " + w.Msg }

// Validate checks what types alone cannot: required keys, queue URIs and
// the connections they name, handlers.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Connections) == 0 {
		errs = append(errs, errorf("connections", "at least one connection is required, e.g. \"default\": \"sqlite://./ferry.db\""))
	}
	for _, name := range sortedKeys(c.Connections) {
		dsn := c.Connections[name]
		if !strings.HasPrefix(dsn, "sqlite://") && !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
			errs = append(errs, errorf("connections."+name, "%q: want sqlite://PATH or postgres://…", queue.RedactDSN(dsn)))
		}
	}
	uri := func(key, u string, required bool) {
		if u == "" {
			if required {
				errs = append(errs, errorf(key, "required"))
			}
			return
		}
		// {id} is filled in by `ferry run --id`; check the rest of the URI.
		p, err := queue.ParseURI(strings.ReplaceAll(u, "{id}", "id"))
		if err != nil {
			errs = append(errs, errorf(key, "%v", strings.TrimPrefix(err.Error(), "queue: ")))
			return
		}
		if _, ok := c.Connections[p.Connection]; !ok && len(c.Connections) > 0 {
			errs = append(errs, errorf(key, "queue URI %q names unknown connection %q (configured: %s)", u, p.Connection, strings.Join(sortedKeys(c.Connections), ", ")))
		}
	}
	inbox := func(key string, in *bus.InboxConfig) {
		uri(key+".workQueue", in.WorkQueue, true)
		uri(key+".errorQueue", in.ErrorQueue, true)
		if in.Threads < 0 {
			errs = append(errs, errorf(key+".threads", "%d is negative", in.Threads))
		}
	}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		if len(r.Types) == 0 {
			errs = append(errs, errorf(key+".types", "at least one type pattern is required"))
		}
		uri(key+".queue", r.Queue, true)
	}
	if len(c.Endpoints) == 0 {
		errs = append(errs, errorf("endpoints", "at least one endpoint is required"))
	}
	for _, name := range sortedKeys(c.Endpoints) {
		ep := c.Endpoints[name]
		key := "endpoints." + name
		if ep.Inbox != nil {
			inbox(key+".inbox", &ep.Inbox.InboxConfig)
			if ep.Inbox.DistributeSendCount < 0 {
				errs = append(errs, errorf(key+".inbox.distributeSendCount", "%d is negative", ep.Inbox.DistributeSendCount))
			}
		}
		if ep.ControlInbox != nil {
			inbox(key+".controlInbox", ep.ControlInbox)
			if ep.Inbox == nil {
				errs = append(errs, errorf(key+".inbox", "required: a control inbox serves an inbox that distributes"))
			}
		}
		if ep.Inbox != nil && ep.Inbox.Distribute && ep.ControlInbox == nil {
			errs = append(errs, errorf(key+".controlInbox", "required when inbox.distribute is true (workers announce themselves there)"))
		}
		if ep.Worker != nil {
			uri(key+".worker.distributorControlQueue", ep.Worker.DistributorControlQueue, true)
			if ep.Inbox == nil {
				errs = append(errs, errorf(key+".inbox", "required: a worker needs its own work queue"))
			}
			if ep.ControlInbox != nil {
				errs = append(errs, errorf(key+".controlInbox", "a worker cannot also be a distributor"))
			}
		}
		for i, h := range ep.Handlers {
			hk := fmt.Sprintf("%s.handlers[%d]", key, i)
			if h.Type == "" {
				errs = append(errs, errorf(hk+".type", "required (a message type or pattern such as \"*\")"))
			}
			n := 0
			for _, set := range []bool{h.HTTP != nil, h.Log != nil, h.Noop != nil} {
				if set {
					n++
				}
			}
			if n != 1 {
				errs = append(errs, errorf(hk, "set exactly one of http, log, noop"))
			}
			if h.HTTP != nil {
				if len(h.HTTP.URLs) == 0 {
					errs = append(errs, errorf(hk+".http.urls", "at least one URL is required"))
				}
				for j, u := range h.HTTP.URLs {
					if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
						errs = append(errs, errorf(fmt.Sprintf("%s.http.urls[%d]", hk, j), "%q is not an http(s) URL such as \"http://127.0.0.1:8080/handle\"", u))
					}
				}
			}
		}
	}
	errs = append(errs, c.checkSendLimits()...)
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		errs = append(errs, errorf("log.level", "%q: want debug, info, warn or error", c.Log.Level))
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		errs = append(errs, errorf("log.format", "%q: want text or json", c.Log.Format))
	}
	errs = append(errs, c.checkValues()...)
	errs = append(errs, c.checkAlerts()...)
	errs = append(errs, c.checkOps()...)
	errs = append(errs, c.checkDashboard()...)
	queueErrs, _ := c.checkQueues()
	errs = append(errs, queueErrs...)
	return inFile(errors.Join(errs...), c.file)
}

// givenKeys records in out every key path that raw sets to a value other
// than null, lists' elements as PATH[i]: a key the file (or environment)
// sets explicitly is told apart from one left out for its default.
func givenKeys(raw any, path string, out map[string]bool) {
	switch v := raw.(type) {
	case nil:
		return
	case map[string]any:
		for k, x := range v {
			givenKeys(x, join(path, k), out)
		}
	case []any:
		for i, x := range v {
			givenKeys(x, fmt.Sprintf("%s[%d]", path, i), out)
		}
	}
	if path != "" {
		out[path] = true
	}
}

// limits checks ranges, and refuses an explicit 0 where 0 would stand for
// a default: "lease": "0s" is a mistake, not a request for 30s.
type limits struct {
	given map[string]bool
	errs  []error
}

// count checks a whole number at key. Negative numbers are left to the
// caller when neg is false (Validate already reports them).
func (l *limits) count(key string, n, hi int, def string, neg bool) {
	switch {
	case n < 0 && neg:
		l.errs = append(l.errs, errorf(key, "%d is negative", n))
	case n == 0 && l.given[key]:
		l.errs = append(l.errs, errorf(key, "0 is not allowed: want 1 to %d (leave the key out for the default, %s)", hi, def))
	case n > hi:
		l.errs = append(l.errs, errorf(key, "%d is too large: want at most %d", n, hi))
	}
}

// duration checks a duration at key: lo ≤ d ≤ hi when set, and no explicit
// 0 unless zeroOK.
func (l *limits) duration(key string, d, lo, hi time.Duration, def string, zeroOK bool) {
	switch {
	case d < 0:
		l.errs = append(l.errs, errorf(key, "%s is negative", d))
	case d == 0 && l.given[key] && !zeroOK:
		l.errs = append(l.errs, errorf(key, "0 is not allowed: want %s to %s (leave the key out for the default, %s)", lo, hi, def))
	case d != 0 && d < lo:
		l.errs = append(l.errs, errorf(key, "%s is too short: want at least %s", d, lo))
	case d > hi:
		l.errs = append(l.errs, errorf(key, "%s is too long: want at most %s", d, hi))
	}
}

// inbox checks an inbox's numbers and its retry policies.
func (l *limits) inbox(key string, in *bus.InboxConfig) {
	l.count(key+".threads", in.Threads, maxThreads, "4", false)
	switch p := in.Prefetch; {
	case p < -1:
		l.errs = append(l.errs, errorf(key+".prefetch", "%d: want -1 (off) or 1 to %d", p, maxPrefetch))
	case p == 0 && l.given[key+".prefetch"]:
		l.errs = append(l.errs, errorf(key+".prefetch", "0 is not allowed: use -1 to turn prefetching off, or leave the key out for as many as threads"))
	case p > maxPrefetch:
		l.errs = append(l.errs, errorf(key+".prefetch", "%d is too large: want at most %d", p, maxPrefetch))
	}
	l.duration(key+".lease", in.Lease, minInterval, maxLease, "30s", false)
	if in.Retry != nil {
		l.retry(key+".retry", in.Retry)
	}
	for i, r := range in.Rules {
		if r.Retry != nil {
			l.retry(fmt.Sprintf("%s.rules[%d].retry", key, i), r.Retry)
		}
	}
}

// retry checks a retry policy's bounds (bus.RetryPolicy.Validate checks the
// rest when the endpoint is built).
func (l *limits) retry(key string, p *bus.RetryPolicy) {
	l.count(key+".maxAttempts", p.MaxAttempts, maxRetryAttempts, "5", true)
	if p.Immediate > maxRetryAttempts {
		l.errs = append(l.errs, errorf(key+".immediate", "%d is too large: want at most %d", p.Immediate, maxRetryAttempts))
	} else if p.Immediate < 0 {
		l.errs = append(l.errs, errorf(key+".immediate", "%d is negative", p.Immediate))
	}
	if len(p.Backoff) > maxBackoffSteps {
		l.errs = append(l.errs, errorf(key+".backoff", "%d entries: want at most %d (the last one repeats)", len(p.Backoff), maxBackoffSteps))
	}
	for i, d := range p.Backoff {
		// 0 is a retry at once: not a default, so allowed.
		l.duration(fmt.Sprintf("%s.backoff[%d]", key, i), d, 0, maxRetryDelay, "", true)
	}
	if x := p.Exponential; x != nil {
		l.duration(key+".exponential.initial", x.Initial, time.Millisecond, maxRetryDelay, "1s", false)
		l.duration(key+".exponential.max", x.Max, time.Millisecond, maxRetryDelay, "1h", false)
		if x.Factor == 0 && l.given[key+".exponential.factor"] {
			l.errs = append(l.errs, errorf(key+".exponential.factor", "0 is not allowed: want 1 or more (leave the key out for the default, 2)"))
		}
	}
}

// checkValues checks the ranges of every number and duration of c.
func (c *Config) checkValues() []error {
	l := &limits{given: c.given}
	for _, name := range sortedKeys(c.Endpoints) {
		ep := c.Endpoints[name]
		key := "endpoints." + name
		if ep.Inbox != nil {
			l.inbox(key+".inbox", &ep.Inbox.InboxConfig)
			l.count(key+".inbox.distributeSendCount", ep.Inbox.DistributeSendCount, maxDistributeSendCount, "5", false)
		}
		if ep.ControlInbox != nil {
			l.inbox(key+".controlInbox", ep.ControlInbox)
		}
		l.duration(key+".reclaimAfter", ep.ReclaimAfter, minInterval, maxReclaimAfter, "60s", false)
		l.duration(key+".lockTTL", ep.LockTTL, minInterval, maxLockTTL, "5s", false)
		if ep.ControlInbox == nil {
			for _, k := range []string{"reclaimAfter", "lockTTL"} {
				if c.given[key+"."+k] {
					l.errs = append(l.errs, errorf(key+"."+k, "only for a distributor (an endpoint with a controlInbox)"))
				}
			}
		}
		if ep.Worker != nil {
			l.duration(key+".worker.availabilityInterval", ep.Worker.AvailabilityInterval, minInterval, maxAvailabilityInterval, "5s", false)
		}
		for i, h := range ep.Handlers {
			if h.HTTP != nil {
				l.duration(fmt.Sprintf("%s.handlers[%d].http.timeout", key, i), h.HTTP.Timeout, time.Millisecond, maxHTTPTimeout, "10s", false)
			}
		}
	}
	return l.errs
}

// queueID identifies a queue URI across spellings of one connection: two
// connection names with the same DSN are the same database.
func (c *Config) queueID(u string) string {
	conn, name, ok := strings.Cut(strings.TrimPrefix(u, "sql://"), "/")
	if !ok {
		return u
	}
	if dsn, ok := c.Connections[conn]; ok {
		conn = dsn
	}
	return conn + "\x00" + name
}

// distQueues are the distributors' queues: by queue identity, the
// distributor and the key of the queue.
type distQueues struct {
	inbox, control map[string][2]string // queueID → {endpoint, key}
}

func (c *Config) distributorQueues() distQueues {
	d := distQueues{inbox: map[string][2]string{}, control: map[string][2]string{}}
	for _, name := range sortedKeys(c.Endpoints) {
		ep := c.Endpoints[name]
		if ep.ControlInbox == nil {
			continue
		}
		key := "endpoints." + name
		if u := ep.ControlInbox.WorkQueue; u != "" && !strings.Contains(u, "{id}") {
			if _, ok := d.control[c.queueID(u)]; !ok {
				d.control[c.queueID(u)] = [2]string{name, key + ".controlInbox.workQueue"}
			}
		}
		if ep.Inbox != nil {
			if u := ep.Inbox.WorkQueue; u != "" && !strings.Contains(u, "{id}") {
				if _, ok := d.inbox[c.queueID(u)]; !ok {
					d.inbox[c.queueID(u)] = [2]string{name, key + ".inbox.workQueue"}
				}
			}
		}
	}
	return d
}

// consumeErr is the error, if any, of the endpoint name consuming the
// queue u at key as its inbox: a distributor's control queue is for
// distributors only (two distributors on one are active and standby), and
// its inbox for distributors only (distributing it to two pools of workers
// is doubtful, a warning).
func (d distQueues) consumeErr(c *Config, name, key, u string, distributor bool) error {
	id := c.queueID(u)
	if o, ok := d.control[id]; ok && o[0] != name {
		return errorf(key, "%q is the control queue of distributor %q (%s): the workers' announcements would be taken here as messages; give this endpoint its own work queue", u, o[0], o[1])
	}
	if distributor {
		return nil
	}
	if o, ok := d.inbox[id]; ok && o[0] != name {
		return errorf(key, "%q is the inbox of distributor %q (%s): this endpoint would take messages out of distribution; give it its own work queue (workers receive from the queue the distributor moves messages to)", u, o[0], o[1])
	}
	return nil
}

// checkQueues cross-checks the endpoints' queues: what cannot work is an
// error, what is doubtful a warning.
func (c *Config) checkQueues() (errs []error, warns []Warning) {
	d := c.distributorQueues()
	type use struct{ name, key string }
	consumers := map[string][]use{} // queueID of an inbox work queue → its endpoints
	shared := map[string]bool{}     // endpoint name → inbox.shared
	pairs := map[string]bool{}      // a distributor's inbox and control queue: its standby's are the same
	for _, name := range sortedKeys(c.Endpoints) {
		ep := c.Endpoints[name]
		key := "endpoints." + name
		isDist := ep.ControlInbox != nil
		if isDist && ep.ControlInbox.WorkQueue != "" && !strings.Contains(ep.ControlInbox.WorkQueue, "{id}") {
			if o, ok := d.inbox[c.queueID(ep.ControlInbox.WorkQueue)]; ok && o[0] != name {
				errs = append(errs, errorf(key+".controlInbox.workQueue", "%q is the inbox of distributor %q (%s): its messages would be taken here as announcements", ep.ControlInbox.WorkQueue, o[0], o[1]))
			}
		}
		if ep.Inbox != nil && ep.Inbox.WorkQueue != "" {
			u := ep.Inbox.WorkQueue
			if !strings.Contains(u, "{id}") {
				id := c.queueID(u)
				standby := false
				if isDist {
					pair := id + "\x00" + c.queueID(ep.ControlInbox.WorkQueue)
					standby, pairs[pair] = pairs[pair], true
				}
				if err := d.consumeErr(c, name, key+".inbox.workQueue", u, isDist); err != nil {
					errs = append(errs, err)
				} else if !standby {
					consumers[id] = append(consumers[id], use{name, key + ".inbox.workQueue"})
					shared[name] = ep.Inbox.Shared
				}
			}
		}
		if ep.Worker == nil || ep.Worker.DistributorControlQueue == "" {
			continue
		}
		cq := ep.Worker.DistributorControlQueue
		cqKey := key + ".worker.distributorControlQueue"
		if ep.Inbox != nil && c.queueID(cq) == c.queueID(ep.Inbox.WorkQueue) {
			errs = append(errs, errorf(key+".inbox.workQueue", "%q is also this worker's distributorControlQueue: it would receive its own announcements as messages", ep.Inbox.WorkQueue))
			continue
		}
		if strings.Contains(cq, "{id}") {
			continue
		}
		id := c.queueID(cq)
		if o, ok := d.inbox[id]; ok {
			if _, alsoControl := d.control[id]; !alsoControl {
				errs = append(errs, errorf(cqKey, "%q is the inbox of distributor %q (%s), not its control queue (%s.controlInbox.workQueue): announcements sent there would be distributed as messages", cq, o[0], o[1], "endpoints."+o[0]))
				continue
			}
		}
		o, ok := d.control[id]
		if !ok {
			warns = append(warns, Warning{Key: cqKey, Msg: fmt.Sprintf("%q is the control queue of no distributor in this file: the worker receives messages only if a distributor configured elsewhere serves it", cq)})
			continue
		}
		// A busy worker's heartbeats come every availabilityInterval; a
		// distributor that gives up on workers sooner returns live queues.
		dist := c.Endpoints[o[0]]
		reclaim, every := dist.ReclaimAfter, ep.Worker.AvailabilityInterval
		if reclaim <= 0 {
			reclaim = 60 * time.Second
		}
		if every <= 0 {
			every = 15 * time.Second
		}
		if reclaim <= every {
			msg := fmt.Sprintf("%s is not longer than the availabilityInterval %s of worker %q: the distributor would return the queue of a busy live worker between two of its heartbeats", reclaim, every, name)
			warns = append(warns,
				Warning{Key: "endpoints." + o[0] + ".reclaimAfter", Msg: msg},
				Warning{Key: key + ".worker.availabilityInterval", Msg: fmt.Sprintf("%s is not shorter than the reclaimAfter %s of distributor %q: the distributor would return this worker's queue while it is busy and alive", every, reclaim, o[0])})
		}
	}
	ids := make([]string, 0, len(consumers))
	for id := range consumers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		us := consumers[id]
		if len(us) < 2 {
			continue
		}
		all := true
		for _, u := range us {
			all = all && shared[u.name]
		}
		if all {
			continue
		}
		for _, u := range us {
			var others []string
			for _, o := range us {
				if o.name != u.name {
					others = append(others, fmt.Sprintf("%q", o.name))
				}
			}
			warns = append(warns, Warning{Key: u.key, Msg: fmt.Sprintf("endpoints %s consume this work queue too: each message goes to only one of them; set inbox.shared: true on all of them if that is intended", strings.Join(others, ", "))})
		}
	}
	return errs, warns
}

// Warnings lists the doubtful settings of the configuration (a control
// queue no distributor of the file serves, endpoints sharing a work
// queue…): ferry runs with them, and logs them at start.
func (c *Config) Warnings() []Warning {
	_, w := c.checkQueues()
	return w
}

// WarningsFor lists the warnings about the endpoint name: those `ferry run
// NAME` logs.
func (c *Config) WarningsFor(name string) []Warning {
	var out []Warning
	prefix := "endpoints." + name + "."
	for _, w := range c.Warnings() {
		if strings.HasPrefix(w.Key, prefix) {
			out = append(out, w)
		}
	}
	return out
}

// checkFilled checks the endpoint name once WithID has filled {id} in its
// queues: an id can make a worker's queue a distributor's.
func (c *Config) checkFilled(name string, orig, ep Endpoint) []error {
	if ep.Inbox == nil || orig.Inbox == nil || !strings.Contains(orig.Inbox.WorkQueue, "{id}") || ep.ControlInbox != nil {
		return nil
	}
	key := "endpoints." + name + ".inbox.workQueue"
	var errs []error
	if err := c.distributorQueues().consumeErr(c, name, key, ep.Inbox.WorkQueue, false); err != nil {
		errs = append(errs, err)
	}
	if ep.Worker != nil && c.queueID(ep.Worker.DistributorControlQueue) == c.queueID(ep.Inbox.WorkQueue) {
		errs = append(errs, errorf(key, "%q is also this worker's distributorControlQueue: it would receive its own announcements as messages", ep.Inbox.WorkQueue))
	}
	return errs
}
