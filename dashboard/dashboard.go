// Package dashboard is ferry's web dashboard: an http.Handler that shows
// the queues, the distributors and their workers, the error queues and
// single messages of a set of connections, and acts on them (retry,
// discard, purge, pause, resume). It reads the databases; it needs no
// running endpoint. Mount it at the root or under a prefix:
//
//	h, err := dashboard.New(conns, dashboard.Config{Prefix: "/ferry", ErrorQueues: []string{"sql://default/error"}})
//	if err != nil { … }
//	defer h.Close()
//	mux.Handle("/ferry/", h)
//
// Pages are server-rendered (html/template) with their CSS and a little
// JavaScript embedded in the binary: it works offline. State-changing
// actions are POST only, each carries a CSRF token, and each asks for
// confirmation before it acts and says how many messages it affected.
package dashboard

import (
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ferrybus/ferry/queue"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/*
var assetFS embed.FS

// Bounds of what a page shows or an action touches.
const (
	// DefaultPageSize is the rows of an error-queue list or a peek page.
	DefaultPageSize = 50
	// MaxPageSize bounds the rows a page asks for with ?limit=.
	MaxPageSize = 500
	// MaxBodyPreview is the largest part of a body a page shows.
	MaxBodyPreview = 64 << 10
	// MaxGroups bounds the failure groups shown; the rest is one "other" line.
	MaxGroups = 50
	// MaxGroupScan bounds the messages read to form the failure groups
	// and to select a group's messages for an action.
	MaxGroupScan = 10_000
	// MaxQueues bounds the queues the overview lists and a search visits.
	MaxQueues = 1000
	// MaxSelected bounds the message ids one action names.
	MaxSelected = 1000
	// requestTimeout bounds the database work of one request.
	requestTimeout = 30 * time.Second
)

// Distributor names a distributor endpoint and its control queue, whose
// recorded view (queue.Store.DistributorView) the workers page shows.
type Distributor struct {
	// Endpoint is the distributor endpoint's name.
	Endpoint string
	// ControlQueue is the URI of its control inbox's work queue.
	ControlQueue string
}

// Config says what the dashboard shows and who may use it.
type Config struct {
	// Queues are the configured queue URIs with their roles
	// ("orders.inbox", "route"…): the overview lists them even when empty.
	// A URI with {id} is a pattern: its queues are those the distributors
	// recorded for their workers.
	Queues map[string][]string
	// ErrorQueues are the configured error queue URIs, listed on the
	// overview with their sizes and offered on the error-queue page.
	ErrorQueues []string
	// Distributors are the distributor endpoints of the workers page.
	Distributors []Distributor
	// Token, when set, is required on every request: as the bearer token
	// of an Authorization header, or once in the login form (a cookie
	// then). Empty: no authentication (bind to loopback only).
	Token string
	// Prefix is the path the handler is mounted at ("/ferry"), without a
	// trailing slash; "" for the root. Links and forms carry it.
	Prefix string
	// Hosts, when not empty, are the only Host header values served (with
	// or without port): a defence against DNS rebinding for a dashboard
	// on loopback without a token.
	Hosts []string
	// SampleInterval is how often the background sampler counts the
	// queues for the throughput charts. Zero: DefaultSampleInterval.
	SampleInterval time.Duration
	// Logger receives the dashboard's errors and the actions taken. Nil:
	// nothing is logged.
	Logger *slog.Logger
}

// DefaultSampleInterval is the sampler's interval when Config leaves it zero.
const DefaultSampleInterval = 5 * time.Second

// Handler serves the dashboard. It is safe for concurrent use; Close stops
// its background sampler.
type Handler struct {
	conns   *queue.Connections
	cfg     Config
	log     *slog.Logger
	secret  []byte
	mux     *http.ServeMux
	pages   map[string]*template.Template
	sampler *sampler
	groups  groupCache
	stop    context.CancelFunc
	done    chan struct{}
}

// New returns the dashboard over conns, its sampler started.
func New(conns *queue.Connections, cfg Config) (*Handler, error) {
	if conns == nil {
		return nil, errors.New("dashboard: no connections")
	}
	if cfg.Prefix != "" && (!strings.HasPrefix(cfg.Prefix, "/") || strings.HasSuffix(cfg.Prefix, "/")) {
		return nil, fmt.Errorf("dashboard: prefix %q: want a path such as \"/ferry\" (leading slash, no trailing slash) or \"\"", cfg.Prefix)
	}
	for uri := range cfg.Queues {
		if strings.Contains(uri, "{id}") {
			continue
		}
		if _, err := queue.ParseURI(uri); err != nil {
			return nil, fmt.Errorf("dashboard: queue %q: %w", uri, err)
		}
	}
	for _, uri := range cfg.ErrorQueues {
		if _, err := queue.ParseURI(uri); err != nil && !strings.Contains(uri, "{id}") {
			return nil, fmt.Errorf("dashboard: error queue %q: %w", uri, err)
		}
	}
	for _, d := range cfg.Distributors {
		if _, err := queue.ParseURI(d.ControlQueue); err != nil {
			return nil, fmt.Errorf("dashboard: distributor %q: control queue %q: %w", d.Endpoint, d.ControlQueue, err)
		}
	}
	if cfg.SampleInterval < 0 {
		return nil, fmt.Errorf("dashboard: sample interval %s is negative", cfg.SampleInterval)
	}
	if cfg.SampleInterval == 0 {
		cfg.SampleInterval = DefaultSampleInterval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("dashboard: CSRF secret: %w", err)
	}
	h := &Handler{conns: conns, cfg: cfg, log: log, secret: secret, done: make(chan struct{})}
	if err := h.parseTemplates(); err != nil {
		return nil, err
	}
	h.routes()
	h.sampler = newSampler(conns, cfg.SampleInterval, log)
	ctx, stop := context.WithCancel(context.Background())
	h.stop = stop
	go func() {
		defer close(h.done)
		h.sampler.run(ctx)
	}()
	return h, nil
}

// Close stops the background sampler and waits for it. It closes no
// connection: they are the caller's.
func (h *Handler) Close() error {
	h.stop()
	<-h.done
	return nil
}

// routes registers every page and action. Actions are POST only
// (postOnly answers any other method with 405); pages are GET.
func (h *Handler) routes() {
	m := http.NewServeMux()
	assets, _ := fs.Sub(assetFS, "assets")
	m.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(assets)))
	m.HandleFunc("GET /login", h.loginPage)
	m.HandleFunc("POST /login", h.login)
	m.HandleFunc("/logout", h.postOnly(h.logout))
	m.HandleFunc("GET /{$}", h.overview)
	m.HandleFunc("GET /fragment/overview", h.overviewFragment)
	m.HandleFunc("GET /workers", h.workers)
	m.HandleFunc("GET /fragment/workers", h.workersFragment)
	m.HandleFunc("GET /errors", h.errorList)
	m.HandleFunc("GET /errors/message", h.errorMessage)
	m.HandleFunc("/errors/retry", h.postOnly(h.errorAction))
	m.HandleFunc("/errors/discard", h.postOnly(h.errorAction))
	m.HandleFunc("GET /message", h.message)
	m.HandleFunc("GET /queue", h.queuePage)
	m.HandleFunc("/queue/purge", h.postOnly(h.queueAction))
	m.HandleFunc("/queue/pause", h.postOnly(h.queueAction))
	m.HandleFunc("/queue/resume", h.postOnly(h.queueAction))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, http.StatusNotFound, fmt.Sprintf("no page %q", r.URL.Path))
	})
	h.mux = m
}

// postOnly answers any method but POST with 405 (the catch-all page
// would otherwise take a GET of an action).
func (h *Handler) postOnly(fn http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			h.fail(w, r, http.StatusMethodNotAllowed, r.Method+" "+r.URL.Path+": actions are POST only (use the page's form)")
			return
		}
		fn(w, r)
	}
}

// ServeHTTP serves a dashboard request: security headers, host and token
// checks, then the page or action.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cache-Control", "no-store")
	if !h.hostAllowed(r.Host) {
		http.Error(w, "dashboard: host "+sanitizeLine(r.Host)+" is not served here", http.StatusMisdirectedRequest)
		return
	}
	path := r.URL.Path
	if h.cfg.Prefix != "" {
		rest, ok := strings.CutPrefix(path, h.cfg.Prefix)
		if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
			h.fail(w, r, http.StatusNotFound, fmt.Sprintf("no page %q (the dashboard is at %s/)", path, h.cfg.Prefix))
			return
		}
		if rest == "" {
			http.Redirect(w, r, h.cfg.Prefix+"/", http.StatusFound)
			return
		}
		r2 := new(http.Request)
		*r2 = *r
		u := *r.URL
		u.Path, u.RawPath = rest, ""
		r2.URL = &u
		r = r2
	}
	if !strings.HasPrefix(r.URL.Path, "/assets/") && r.URL.Path != "/login" && !h.authorized(r) {
		if r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/fragment/") && r.Header.Get("Authorization") == "" {
			http.Redirect(w, r, h.cfg.Prefix+"/login", http.StatusSeeOther)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="ferry dashboard"`)
		h.fail(w, r, http.StatusUnauthorized, "a token is required: log in, or send Authorization: Bearer TOKEN")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	h.mux.ServeHTTP(w, r.WithContext(ctx))
}

// hostAllowed checks the Host header against Config.Hosts.
func (h *Handler) hostAllowed(host string) bool {
	if len(h.cfg.Hosts) == 0 {
		return true
	}
	name := host
	if i := strings.LastIndex(host, ":"); i >= 0 && !strings.HasSuffix(host, "]") {
		name = host[:i]
	}
	name = strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
	return slices.Contains(h.cfg.Hosts, name) || slices.Contains(h.cfg.Hosts, host)
}

// queueKnown reports whether uri is a queue the dashboard may show: one
// the configuration names, or one holding messages or paused in its
// database. The error names what is wrong for a 404.
func (h *Handler) queueKnown(ctx context.Context, uri string) (queue.Queue, error) {
	u, err := queue.ParseURI(uri)
	if err != nil {
		return nil, notFound{fmt.Sprintf("queue %q: %v", uri, err)}
	}
	if !slices.Contains(h.conns.Names(), u.Connection) {
		return nil, notFound{fmt.Sprintf("queue %q: no connection %q (configured: %s)", uri, u.Connection, strings.Join(h.conns.Names(), ", "))}
	}
	q, err := h.conns.Queue(ctx, uri)
	if err != nil {
		return nil, err
	}
	if _, ok := h.cfg.Queues[uri]; ok || slices.Contains(h.cfg.ErrorQueues, uri) {
		return q, nil
	}
	for _, d := range h.cfg.Distributors {
		if d.ControlQueue == uri {
			return q, nil
		}
	}
	c, err := q.Count(ctx)
	if err != nil {
		return nil, fmt.Errorf("count %s: %w", uri, err)
	}
	if c.Total() > 0 {
		return q, nil
	}
	ps, err := q.Store().Paused(ctx)
	if err != nil {
		return nil, fmt.Errorf("paused queues of %s: %w", u.Connection, err)
	}
	for _, p := range ps {
		if p.Name == u.Queue {
			return q, nil
		}
	}
	return nil, notFound{fmt.Sprintf("no queue %s: the configuration does not name it and it holds no messages", uri)}
}

// notFound is an error shown with status 404.
type notFound struct{ msg string }

func (e notFound) Error() string { return e.msg }

// badRequest is an error shown with status 400.
type badRequest struct{ msg string }

func (e badRequest) Error() string { return e.msg }

// failErr shows err with the status its kind says: 404, 400, else 500
// (logged, since it is the dashboard's or the database's fault).
func (h *Handler) failErr(w http.ResponseWriter, r *http.Request, err error) {
	var nf notFound
	var br badRequest
	switch {
	case errors.As(err, &nf):
		h.fail(w, r, http.StatusNotFound, nf.msg)
	case errors.As(err, &br):
		h.fail(w, r, http.StatusBadRequest, br.msg)
	default:
		h.log.Error("dashboard request failed", "path", r.URL.Path, "err", err)
		h.fail(w, r, http.StatusInternalServerError, err.Error())
	}
}
