// Package config loads ferry's JSON configuration with koanf, applies
// FERRY_… environment overrides, and validates it before anything starts:
// every error names the key path at fault.
package config

import (
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor"
	"github.com/ferrybus/ferry/queue"
	"github.com/ferrybus/ferry/worker"
)

// Config is the whole configuration file.
type Config struct {
	// Connections name the databases: "default": "sqlite://./ferry.db".
	Connections map[string]string `koanf:"connections"`
	// AutoMigrate runs schema migrations at start. Default: true for SQLite
	// connections, false for PostgreSQL (run `ferry migrate`).
	AutoMigrate *bool `koanf:"autoMigrate"`
	// SyncConsume makes leases, acks and moves on PostgreSQL wait for the WAL
	// flush. Default false: they commit asynchronously, so a database crash
	// can redeliver the last few messages, never lose one.
	SyncConsume bool `koanf:"syncConsume"`
	// NoPrepare sends every statement unprepared (for PostgreSQL behind a
	// pooler in transaction mode, such as PgBouncer).
	NoPrepare bool `koanf:"noPrepare"`
	// MaxSendBodyBytes is the largest body `ferry send` sends. Default
	// bus.DefaultMaxSendBodyBytes (4 MiB); at most MaxSendBodyLimit.
	MaxSendBodyBytes *int `koanf:"maxSendBodyBytes"`
	// Endpoints by name, as `ferry run NAME` starts them.
	Endpoints map[string]Endpoint `koanf:"endpoints"`
	// Routes send message types to queues.
	Routes []bus.Route `koanf:"routes"`
	// Log sets the log level and format.
	Log Log `koanf:"log"`
	// Reload sets how `ferry run` takes in changes of the file.
	Reload Reload `koanf:"reload"`
	// Alerts are threshold rules `ferry run` evaluates and notifies.
	Alerts *Alerts `koanf:"alerts"`
	// HTTP configures the operations HTTP server of `ferry run` (http.go).
	HTTP HTTPServer `koanf:"http"`
	// Dashboard configures `ferry dashboard` (dashboard.go).
	Dashboard Dashboard `koanf:"dashboard"`

	file  string          // the file Load read, for errors found later
	given map[string]bool // key paths the file or environment set (not null)
}

// Log configures logging.
type Log struct {
	// Level: debug, info, warn or error. Default info.
	Level string `koanf:"level"`
	// Format: text (tint on a terminal) or json. Default: text on a terminal, else json.
	Format string `koanf:"format"`
	// SummaryInterval: how often `ferry run` logs each endpoint's summary
	// line. Default 30s (DefaultSummaryInterval); "0s": none.
	SummaryInterval time.Duration `koanf:"summaryInterval"`
}

// Reload configures live reloading: on SIGHUP, and unless Watch is false
// when the file changes, `ferry run` loads the file again and applies what
// can change without a restart.
type Reload struct {
	// Watch: reload when the file changes. Default true.
	Watch *bool `koanf:"watch"`
}

// WatchFile reports whether `ferry run` reloads the file when it changes.
func (r Reload) WatchFile() bool { return r.Watch == nil || *r.Watch }

// Endpoint is one endpoint: a plain endpoint, a distributor (inbox with
// distribute, or a control inbox) or a worker (worker section).
type Endpoint struct {
	Inbox        *Inbox           `koanf:"inbox"`
	ControlInbox *bus.InboxConfig `koanf:"controlInbox"`
	Worker       *Worker          `koanf:"worker"`
	Handlers     []Handler        `koanf:"handlers"`
	// Subscribe lists the message types the inbox subscribes to.
	Subscribe []string `koanf:"subscribe"`
	// ReclaimAfter (distributors): how long a worker may be silent before its
	// queue is returned to the inbox. Default 60s.
	ReclaimAfter time.Duration `koanf:"reclaimAfter"`
	// LockTTL (distributors): how long the lock on the control inbox lasts
	// unrenewed, bounding a standby's takeover. Default 15s.
	LockTTL time.Duration `koanf:"lockTTL"`
}

// Inbox is an inbox with the distributor's settings.
type Inbox struct {
	bus.InboxConfig `koanf:",squash"`
	// Distribute true: hand every message to workers.
	Distribute bool `koanf:"distribute"`
	// DistributeSendCount: messages moved per worker availability. Default 5.
	DistributeSendCount int `koanf:"distributeSendCount"`
	// Shared true: other endpoints of the file consume this work queue too,
	// on purpose (no warning at start).
	Shared bool `koanf:"shared"`
}

// Worker makes an endpoint a worker of a distributor.
type Worker struct {
	DistributorControlQueue string        `koanf:"distributorControlQueue"`
	AvailabilityInterval    time.Duration `koanf:"availabilityInterval"`
}

// Handler handles messages of Type (a pattern) without Go code: exactly one
// of HTTP, Log and Noop is set.
type Handler struct {
	Type string    `koanf:"type"`
	HTTP *HTTP     `koanf:"http"`
	Log  *struct{} `koanf:"log"`
	Noop *struct{} `koanf:"noop"`
}

// HTTP posts each message body to one of URLs.
type HTTP struct {
	URLs    []string      `koanf:"urls"`
	Timeout time.Duration `koanf:"timeout"`
}

// The configuration's types keep the file's layout; these give the
// libraries' configurations built from them, so that callers do not copy
// fields one by one.

// BusConfig is the bus.Config of the endpoint named name, sending by routes
// (the file's Routes) and logging to log.
func (e Endpoint) BusConfig(name string, routes []bus.Route, log *slog.Logger) bus.Config {
	cfg := bus.Config{Name: name, Routes: routes, Subscribe: e.Subscribe, Logger: log}
	if e.Inbox != nil {
		cfg.Inbox = &e.Inbox.InboxConfig
	}
	return cfg
}

// WorkerConfig is the worker.Config of a worker endpoint with the given id;
// only its id is set when the endpoint has no worker section.
func (e Endpoint) WorkerConfig(id string) worker.Config {
	cfg := worker.Config{ID: id}
	if e.Worker != nil {
		cfg.DistributorControlQueue = e.Worker.DistributorControlQueue
		cfg.AvailabilityInterval = e.Worker.AvailabilityInterval
	}
	return cfg
}

// DistributorConfig is the distributor.Config of a distributor endpoint
// named name, logging to log; its inboxes are left empty when the endpoint
// has none (Validate requires both of a distributor).
func (e Endpoint) DistributorConfig(name string, log *slog.Logger) distributor.Config {
	cfg := distributor.Config{Name: name, ReclaimAfter: e.ReclaimAfter, LockTTL: e.LockTTL, Logger: log}
	if e.Inbox != nil {
		cfg.Inbox = e.Inbox.InboxConfig
		cfg.Distribute = e.Inbox.Distribute
		cfg.DistributeSendCount = e.Inbox.DistributeSendCount
	}
	if e.ControlInbox != nil {
		cfg.ControlInbox = *e.ControlInbox
	}
	return cfg
}

// File is the file the configuration was loaded from; empty for Parse.
func (c *Config) File() string { return c.file }

// EndpointNames lists the configured endpoints, sorted.
func (c *Config) EndpointNames() []string { return sortedKeys(c.Endpoints) }

// Redacted returns the connections with passwords hidden, for printing.
func (c *Config) Redacted() map[string]string {
	out := map[string]string{}
	for k, v := range c.Connections {
		out[k] = queue.RedactDSN(v)
	}
	return out
}

// StoreOptions are the queue store options the configuration sets.
func (c *Config) StoreOptions(log *slog.Logger) queue.Options {
	return queue.Options{Logger: log, SyncConsume: c.SyncConsume, NoPrepare: c.NoPrepare}
}

// Migrate reports whether a connection should be migrated at start.
func (c *Config) Migrate(dsn string) bool {
	if c.AutoMigrate != nil {
		return *c.AutoMigrate
	}
	return strings.HasPrefix(dsn, "sqlite://")
}

// WithID returns a copy of the endpoint with {id} in its queue URIs replaced
// by id; it is an error to leave {id} unfilled, or to give an id that makes
// an invalid queue URI.
func (c *Config) WithID(name, id string) (Endpoint, error) {
	ep, ok := c.Endpoints[name]
	if !ok {
		return Endpoint{}, inFile(errorf("endpoints", "no endpoint %q (configured: %s)", name, strings.Join(c.EndpointNames(), ", ")), c.file)
	}
	orig := ep
	var errs []error
	fill := func(key string, s *string) {
		if !strings.Contains(*s, "{id}") {
			return
		}
		if id == "" {
			errs = append(errs, errorf(key, "%q uses {id}: start it with --id", *s))
			return
		}
		filled := strings.ReplaceAll(*s, "{id}", id)
		if _, err := queue.ParseURI(filled); err != nil {
			errs = append(errs, errorf(key, "with --id %q: %v", id, strings.TrimPrefix(err.Error(), "queue: ")))
			return
		}
		*s = filled
	}
	key := "endpoints." + name
	if ep.Inbox != nil {
		in := *ep.Inbox
		fill(key+".inbox.workQueue", &in.WorkQueue)
		fill(key+".inbox.errorQueue", &in.ErrorQueue)
		ep.Inbox = &in
	}
	if ep.ControlInbox != nil {
		ci := *ep.ControlInbox
		fill(key+".controlInbox.workQueue", &ci.WorkQueue)
		fill(key+".controlInbox.errorQueue", &ci.ErrorQueue)
		ep.ControlInbox = &ci
	}
	if ep.Worker != nil {
		w := *ep.Worker
		fill(key+".worker.distributorControlQueue", &w.DistributorControlQueue)
		ep.Worker = &w
	}
	if len(errs) == 0 {
		errs = c.checkFilled(name, orig, ep)
	}
	if err := errors.Join(errs...); err != nil {
		return Endpoint{}, inFile(err, c.file)
	}
	return ep, nil
}
