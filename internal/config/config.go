// Package config loads ferry's JSON configuration with koanf, applies
// FERRY_… environment overrides, and validates it before anything starts:
// every error names the key path at fault.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/queue"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/v2"
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

	file  string          // the file Load read, for errors found later
	given map[string]bool // key paths the file or environment set (not null)
}

// Log configures logging.
type Log struct {
	// Level: debug, info, warn or error. Default info.
	Level string `koanf:"level"`
	// Format: text (tint on a terminal) or json. Default: text on a terminal, else json.
	Format string `koanf:"format"`
}

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

// Error is a configuration error; Key is the key path at fault, File the
// configuration file (empty for configuration parsed from memory).
type Error struct {
	File string
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	prefix := "config"
	if e.File != "" {
		prefix += " " + e.File
	}
	if e.Key == "" {
		return prefix + ": " + e.Msg
	}
	return fmt.Sprintf("%s: %s: %s", prefix, e.Key, e.Msg)
}

func errorf(key, format string, args ...any) error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Load reads the JSON file at path, applies overrides from env (FERRY_A__B=v
// sets key a.b; lists take commas) and checks every key and value type.
// Every *Error it returns names the file in its File field; so do those of
// the returned Config's Validate and WithID.
func Load(path string, env []string) (*Config, error) {
	raw := map[string]any{}
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // "open PATH: " would repeat the path
		}
		return nil, &Error{File: path, Msg: fmt.Sprintf("cannot read: %v", err)}
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, &Error{File: path, Msg: fmt.Sprintf("not valid JSON: %v", err)}
	}
	if err := checkDuplicateKeys(b); err != nil {
		return nil, inFile(err, path)
	}
	cfg, err := parse(raw, env)
	if err != nil {
		return nil, inFile(err, path)
	}
	cfg.file = path
	return cfg, nil
}

// inFile sets File to path in err, or in each error err joins, when it is
// an *Error that names no file yet. (It does not look inside fmt.Errorf
// wrappers: their text is fixed when they are made.)
func inFile(err error, path string) error {
	if path == "" {
		return err
	}
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case *Error:
			if e.File == "" {
				e.File = path
			}
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x)
			}
		}
	}
	walk(err)
	return err
}

// File is the file the configuration was loaded from; empty for Parse.
func (c *Config) File() string { return c.file }

// Parse is Load for configuration already in memory.
func Parse(data []byte, env []string) (*Config, error) {
	raw := map[string]any{}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, &Error{Msg: fmt.Sprintf("not valid JSON: %v", err)}
	}
	if err := checkDuplicateKeys(data); err != nil {
		return nil, err
	}
	return parse(raw, env)
}

func parse(raw map[string]any, env []string) (*Config, error) {
	if raw == nil { // the file is "null"
		raw = map[string]any{}
	}
	schema := reflect.TypeFor[Config]()
	fromEnv, err := applyEnv(raw, schema, env)
	if err != nil {
		return nil, err
	}
	var errs []error
	check(raw, schema, "", &errs)
	if len(errs) > 0 {
		return nil, blameEnv(errors.Join(errs...), fromEnv)
	}
	k := koanf.New(".")
	if err := k.Load(confmap.Provider(raw, ""), nil); err != nil {
		return nil, &Error{Msg: err.Error()}
	}
	var cfg Config
	if err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
		return nil, &Error{Msg: err.Error()}
	}
	cfg.given = map[string]bool{}
	givenKeys(raw, "", cfg.given)
	if err := cfg.Validate(); err != nil {
		return nil, blameEnv(err, fromEnv)
	}
	return &cfg, nil
}

// blameEnv adds to each error about a key set (or inside a key set) by an
// environment variable the name of that variable, so that a bad value that
// is not in the file can be found.
func blameEnv(err error, fromEnv map[string]string) error {
	if err == nil || len(fromEnv) == 0 {
		return err
	}
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		ce, ok := err.(*Error)
		if !ok || ce.Key == "" {
			return
		}
		for path, name := range fromEnv {
			if ce.Key == path || strings.HasPrefix(ce.Key, path+".") || strings.HasPrefix(ce.Key, path+"[") {
				ce.Msg += " (set by environment variable " + name + ")"
				return
			}
		}
	}
	walk(err)
	return err
}

// keyOf is the configuration key of a struct field.
func keyOf(f reflect.StructField) (name string, squash bool) {
	tag := f.Tag.Get("koanf")
	if tag == "" {
		tag = f.Tag.Get("json")
	}
	name, opts, _ := strings.Cut(tag, ",")
	if strings.Contains(opts, "squash") {
		return "", true
	}
	if name == "-" {
		return "", false
	}
	if name == "" {
		name = strings.ToLower(f.Name[:1]) + f.Name[1:]
	}
	return name, false
}

// fields lists the keys of a struct type, with embedded squashed structs flattened.
func fields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, squash := keyOf(f)
		if squash {
			for k, v := range fields(deref(f.Type)) {
				out[k] = v
			}
			continue
		}
		if name != "" {
			out[name] = f.Type
		}
	}
	return out
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var durationType = reflect.TypeFor[time.Duration]()

// check walks raw against the schema type t, collecting errors that name
// the key path: unknown keys (with a suggestion) and values of the wrong type.
func check(raw any, t reflect.Type, path string, errs *[]error) {
	t = deref(t)
	if raw == nil {
		return
	}
	switch {
	case t == durationType:
		s, ok := raw.(string)
		if !ok {
			*errs = append(*errs, errorf(path, "want a duration such as \"15s\", got %v", raw))
			return
		}
		if _, err := time.ParseDuration(s); err != nil {
			*errs = append(*errs, errorf(path, "invalid duration %q (want e.g. \"500ms\", \"15s\", \"1m\")", s))
		}
	case t.Kind() == reflect.Struct:
		m, ok := raw.(map[string]any)
		if !ok {
			*errs = append(*errs, errorf(path, "want an object, got %s", describe(raw)))
			return
		}
		known := fields(t)
		keys := sortedKeys(m)
		for _, k := range keys {
			ft, ok := known[k]
			if !ok {
				msg := "unknown key"
				if s := suggest(k, known); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				*errs = append(*errs, errorf(join(path, k), "%s", msg))
				continue
			}
			check(m[k], ft, join(path, k), errs)
		}
	case t.Kind() == reflect.Map:
		m, ok := raw.(map[string]any)
		if !ok {
			*errs = append(*errs, errorf(path, "want an object, got %s", describe(raw)))
			return
		}
		for _, k := range sortedKeys(m) {
			check(m[k], t.Elem(), join(path, k), errs)
		}
	case t.Kind() == reflect.Slice:
		l, ok := raw.([]any)
		if !ok {
			*errs = append(*errs, errorf(path, "want a list, got %s", describe(raw)))
			return
		}
		for i, v := range l {
			check(v, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case t.Kind() == reflect.String:
		if _, ok := raw.(string); !ok {
			*errs = append(*errs, errorf(path, "want a string, got %s", describe(raw)))
		}
	case t.Kind() == reflect.Bool:
		switch v := raw.(type) {
		case bool:
		case string:
			if _, err := strconv.ParseBool(v); err != nil {
				*errs = append(*errs, errorf(path, "want true or false, got %q", v))
			}
		default:
			*errs = append(*errs, errorf(path, "want true or false, got %s", describe(raw)))
		}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		switch v := raw.(type) {
		case float64:
			if v != float64(int64(v)) {
				*errs = append(*errs, errorf(path, "want a whole number, got %v", v))
			}
		case string:
			if _, err := strconv.Atoi(v); err != nil {
				*errs = append(*errs, errorf(path, "want a whole number, got %q", v))
			}
		default:
			*errs = append(*errs, errorf(path, "want a whole number, got %s", describe(raw)))
		}
	case t.Kind() == reflect.Float64 || t.Kind() == reflect.Float32:
		switch v := raw.(type) {
		case float64:
		case string:
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				*errs = append(*errs, errorf(path, "want a number, got %q", v))
			}
		default:
			*errs = append(*errs, errorf(path, "want a number, got %s", describe(raw)))
		}
	}
}

func describe(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return fmt.Sprintf("the string %q", v)
	}
	return fmt.Sprintf("%v", v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// suggest finds the known key closest to a misspelt one.
func suggest(k string, known map[string]reflect.Type) string {
	best, bestD := "", 3
	for cand := range known {
		if strings.EqualFold(cand, k) {
			return cand
		}
		if n := len(k) - len(cand); n > bestD || -n > bestD {
			continue // the distance is at least the difference in length
		}
		if d := distance(strings.ToLower(k), strings.ToLower(cand)); d < bestD || (d == bestD && cand < best) {
			best, bestD = cand, d
		}
	}
	return best
}

// distance is the Levenshtein distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// applyEnv sets keys from FERRY_A__B__C=value variables whose first segment
// names a top-level key; segments match keys case-insensitively. It returns
// the key paths it set, each with the variable that set it.
func applyEnv(raw map[string]any, schema reflect.Type, env []string) (map[string]string, error) {
	top := fields(schema)
	set := map[string]string{}
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "FERRY_") {
			continue
		}
		segs := strings.Split(strings.TrimPrefix(name, "FERRY_"), "__")
		if matchKey(segs[0], top) == "" {
			continue // FERRY_CONFIG, FERRY_TEST_…: not configuration keys
		}
		path, err := setPath(raw, schema, segs, value, "")
		if err != nil {
			// An *Error as it is, so that Load can name the file in it.
			if ce, ok := err.(*Error); ok {
				ce.Msg += " (set by environment variable " + name + ")"
				return nil, ce
			}
			return nil, fmt.Errorf("environment variable %s: %w", name, err)
		}
		set[path] = name
	}
	return set, nil
}

func matchKey(seg string, known map[string]reflect.Type) string {
	for k := range known {
		if strings.EqualFold(k, seg) {
			return k
		}
	}
	return ""
}

// setPath sets value at the path segs inside node, guided by type t, and
// returns the key path it set.
func setPath(node map[string]any, t reflect.Type, segs []string, value, path string) (string, error) {
	t = deref(t)
	var key string
	var next reflect.Type
	switch t.Kind() {
	case reflect.Struct:
		known := fields(t)
		key = matchKey(segs[0], known)
		if key == "" {
			msg := "unknown key"
			if s := suggest(segs[0], known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			return "", errorf(join(path, strings.ToLower(segs[0])), "%s", msg)
		}
		next = known[key]
	case reflect.Map:
		key = strings.ToLower(segs[0])
		for k := range node {
			if strings.EqualFold(k, segs[0]) {
				key = k
			}
		}
		next = t.Elem()
	default:
		return "", errorf(path, "cannot set a key inside a value")
	}
	path = join(path, key)
	if len(segs) == 1 {
		nt := deref(next)
		if nt.Kind() == reflect.Slice && nt.Elem().Kind() != reflect.Struct {
			parts := []any{}
			for _, p := range strings.Split(value, ",") {
				parts = append(parts, strings.TrimSpace(p))
			}
			node[key] = parts
		} else {
			node[key] = value
		}
		return path, nil
	}
	child, ok := node[key].(map[string]any)
	if !ok {
		child = map[string]any{}
		node[key] = child
	}
	return setPath(child, next, segs[1:], value, path)
}

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
	queueErrs, _ := c.checkQueues()
	errs = append(errs, queueErrs...)
	return inFile(errors.Join(errs...), c.file)
}

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
