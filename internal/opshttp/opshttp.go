// Package opshttp is a process's operations endpoint: one HTTP server
// serving /metrics (a handler it is given), /healthz (the process is
// alive), /readyz (every registered readiness check passes) and, only when
// enabled, /debug/pprof/.
//
// Readiness checks run concurrently, each under a short timeout, and their
// result is cached for at most CacheFor (1 s by default), so a flood of
// probes costs the databases one round of checks per second at most. A
// check that has not returned from an earlier round is not started again:
// it reports that it is still waiting, so a database that does not answer
// never piles up goroutines.
package opshttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"time"
)

// Check is a named readiness check: nil when ready, else why not. It must
// honour ctx, which ends at the check timeout.
type Check func(ctx context.Context) error

// Defaults and bounds.
const (
	// DefaultCheckTimeout bounds each readiness check.
	DefaultCheckTimeout = 2 * time.Second
	// MaxCacheFor is the longest a readiness result is served again.
	MaxCacheFor = time.Second
	// MaxChecks bounds the registered readiness checks.
	MaxChecks = 64
	// maxReasonBytes bounds a failing check's reason in the JSON body.
	maxReasonBytes = 512
)

// Config configures a Server.
type Config struct {
	// Addr is the address to listen on, as ListenAddr accepts it. Required.
	Addr string
	// Metrics serves /metrics; nil: /metrics answers 404.
	Metrics http.Handler
	// Pprof serves /debug/pprof/ when true; default off.
	Pprof bool
	// CheckTimeout bounds each readiness check. Default DefaultCheckTimeout.
	CheckTimeout time.Duration
	// CacheFor is how long a readiness result is served again, at most
	// MaxCacheFor. Default MaxCacheFor.
	CacheFor time.Duration
	// Logger receives the server's errors. Default slog.Default().
	Logger *slog.Logger
}

// Server is the operations HTTP server of a process.
type Server struct {
	cfg  Config
	log  *slog.Logger
	mux  *http.ServeMux
	srv  *http.Server
	ln   net.Listener
	done chan error

	mu     sync.Mutex
	checks []*check
	cached *Readiness
	at     time.Time
	round  chan struct{} // closed when the round under way ends; nil when none runs
}

type check struct {
	name    string
	fn      Check
	running bool // a call has not returned yet (guarded by Server.mu)
}

// CheckResult is one readiness check's outcome in /readyz's body.
type CheckResult struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Readiness is /readyz's body.
type Readiness struct {
	// Status is "ready" or "unready".
	Status string        `json:"status"`
	Checks []CheckResult `json:"checks"`
	// CheckedAt is when the checks ran (the result may be cached).
	CheckedAt time.Time `json:"checkedAt"`
}

// Ready reports whether every check passed.
func (r Readiness) Ready() bool { return r.Status == "ready" }

// ListenAddr validates an address for the server and returns the one to
// listen on: a host-less ":PORT" is loopback only ("127.0.0.1:PORT");
// another interface must be named ("0.0.0.0:9090", "[::]:9090",
// "10.0.0.5:9090"). The port is 0 (any free port) to 65535.
func ListenAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%q: want HOST:PORT or :PORT (e.g. \":9090\" for loopback, \"0.0.0.0:9090\" for every interface)", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("%q: port %q: want a number from 0 to 65535", addr, port)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// New returns a server for cfg, not listening yet; register checks with
// AddCheck, then Start.
func New(cfg Config) (*Server, error) {
	if _, err := ListenAddr(cfg.Addr); err != nil {
		return nil, fmt.Errorf("opshttp: address %w", err)
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = DefaultCheckTimeout
	}
	if cfg.CacheFor <= 0 || cfg.CacheFor > MaxCacheFor {
		cfg.CacheFor = MaxCacheFor
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	if cfg.Metrics != nil {
		s.mux.Handle("GET /metrics", cfg.Metrics)
	}
	if cfg.Pprof {
		// Registered on this mux only: never on http.DefaultServeMux.
		s.mux.HandleFunc("/debug/pprof/", pprof.Index)
		s.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		s.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		s.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		s.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return s, nil
}

// AddCheck registers a readiness check under name (unique, at most
// MaxChecks of them). It is safe at any time.
func (s *Server) AddCheck(name string, fn Check) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name == "" || fn == nil {
		return errors.New("opshttp: a readiness check needs a name and a func")
	}
	for _, c := range s.checks {
		if c.name == name {
			return fmt.Errorf("opshttp: readiness check %q registered twice", name)
		}
	}
	if len(s.checks) >= MaxChecks {
		return fmt.Errorf("opshttp: readiness check %q: at most %d checks", name, MaxChecks)
	}
	s.checks = append(s.checks, &check{name: name, fn: fn})
	s.cached = nil // the next probe runs the new set
	return nil
}

// Handler serves the server's routes, for tests and for embedding.
func (s *Server) Handler() http.Handler { return s.mux }

// Start listens on the configured address and serves in the background.
// A failure to listen (the port is taken) names the address.
func (s *Server) Start() error {
	addr, err := ListenAddr(s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("opshttp: address %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("opshttp: cannot listen on %s: %w", addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.done = make(chan error, 1)
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return nil
}

// Addr is the address the server listens on (with the port chosen when
// the configured one was 0); "" before Start.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown stops accepting connections and waits for requests under way
// until ctx ends, then closes the connections left.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
		err = fmt.Errorf("opshttp: shutdown of %s: %w", s.Addr(), err)
	}
	if serveErr := <-s.done; serveErr != nil && err == nil {
		err = fmt.Errorf("opshttp: serve on %s: %w", s.Addr(), serveErr)
	}
	return err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// healthz answers 200 while the process serves HTTP at all.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
}

// readyz answers 200 when every check passes, else 503; both with the checks.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	res := s.Readiness(r.Context())
	status := http.StatusOK
	if !res.Ready() {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, res)
}

// Readiness runs the checks, or returns the result of a round that ended
// less than CacheFor ago; concurrent callers share one round.
func (s *Server) Readiness(ctx context.Context) Readiness {
	for {
		s.mu.Lock()
		if s.cached != nil && time.Since(s.at) < s.cfg.CacheFor {
			res := *s.cached
			s.mu.Unlock()
			return res
		}
		if s.round == nil {
			round := make(chan struct{})
			s.round = round
			checks := append([]*check(nil), s.checks...)
			s.mu.Unlock()
			res := s.runChecks(checks)
			s.mu.Lock()
			s.cached, s.at, s.round = &res, time.Now(), nil
			s.mu.Unlock()
			close(round)
			return res
		}
		round := s.round
		s.mu.Unlock()
		select {
		case <-round:
		case <-ctx.Done():
			return Readiness{Status: "unready", Checks: []CheckResult{{Name: "request", Error: ctx.Err().Error()}}, CheckedAt: time.Now()}
		}
	}
}

// runChecks runs checks concurrently, each bounded by the check timeout;
// a check still running from an earlier round is reported, not run again.
func (s *Server) runChecks(checks []*check) Readiness {
	res := Readiness{Status: "ready", Checks: make([]CheckResult, len(checks)), CheckedAt: time.Now()}
	var wg sync.WaitGroup
	for i, c := range checks {
		res.Checks[i] = CheckResult{Name: c.name}
		s.mu.Lock()
		busy := c.running
		c.running = true
		s.mu.Unlock()
		if busy {
			res.Checks[i].Error = fmt.Sprintf("the previous check has not returned after %s", s.cfg.CheckTimeout)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res.Checks[i].Error = s.runOne(c)
		}()
	}
	wg.Wait()
	for i := range res.Checks {
		if res.Checks[i].Error == "" {
			res.Checks[i].OK = true
		} else {
			res.Status = "unready"
			if len(res.Checks[i].Error) > maxReasonBytes {
				res.Checks[i].Error = res.Checks[i].Error[:maxReasonBytes] + "…"
			}
		}
	}
	return res
}

// runOne runs one check and returns its failure ("" when it passed) by the
// check timeout, even if the check itself does not return by then.
func (s *Server) runOne(c *check) string {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CheckTimeout)
	defer cancel()
	out := make(chan error, 1)
	go func() {
		var err error
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("check panicked: %v", p)
			}
			s.mu.Lock()
			c.running = false
			s.mu.Unlock()
			out <- err
		}()
		err = c.fn(ctx)
	}()
	select {
	case err := <-out:
		if err != nil {
			return err.Error()
		}
		return ""
	case <-ctx.Done():
		return fmt.Sprintf("no answer within %s", s.cfg.CheckTimeout)
	}
}

// Pinger is what Ping checks: a *sql.DB, for one.
type Pinger interface {
	PingContext(ctx context.Context) error
}

// Ping is a readiness check that p answers a ping.
func Ping(p Pinger) Check {
	return func(ctx context.Context) error {
		if err := p.PingContext(ctx); err != nil {
			return fmt.Errorf("database not answering: %w", err)
		}
		return nil
	}
}
