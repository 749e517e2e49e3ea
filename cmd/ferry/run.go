package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor"
	"github.com/ferrybus/ferry/internal/config"
	"github.com/ferrybus/ferry/internal/handlers"
	"github.com/ferrybus/ferry/queue"
	"github.com/ferrybus/ferry/worker"
	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/trace"
)

func (a *app) runCmd() *cobra.Command {
	var id string
	var stopTimeout time.Duration
	var httpFlag string
	cmd := &cobra.Command{
		Use:   "run ENDPOINT",
		Short: "Run an endpoint of the configuration (a distributor, a worker or a plain endpoint) until SIGINT/SIGTERM",
		Long: `Run an endpoint of the configuration until SIGINT or SIGTERM, then stop gracefully:
in-flight messages finish within --stop-timeout or are released, and a worker
tells its distributor it is stopping. A second SIGINT or SIGTERM during the stop
exits at once (code 130 or 143); messages still in flight are delivered again
when their leases end.

An endpoint with a controlInbox is a distributor; one with a worker section is a
worker; any other endpoint handles its inbox itself. {id} in a queue URI is
replaced by --id, which is then required.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if stopTimeout < 0 {
				return usagef("run: --stop-timeout %s is negative: want 0 (release in-flight messages at once) or more", stopTimeout)
			}
			return a.run(cmd.Context(), args[0], id, stopTimeout, httpFlag, cmd.Flags().Changed("http"))
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "instance id: fills {id} in queue URIs; a worker's id (default: the endpoint name)")
	cmd.Flags().DurationVar(&stopTimeout, "stop-timeout", 30*time.Second, "how long a stop may take after a stop signal: in-flight handlers may run until shortly before it")
	cmd.Flags().StringVar(&httpFlag, "http", "", `serve /metrics, /healthz and /readyz at ADDR, overriding http.addr (":9090" is 127.0.0.1 only; "0.0.0.0:9090" every interface)`)
	return cmd
}

// runner is a started endpoint of any role.
type runner interface {
	Stop(ctx context.Context) error
}

func (a *app) run(ctx context.Context, name, id string, stopTimeout time.Duration, httpFlag string, httpSet bool) error {
	cfg, err := a.load()
	if err != nil {
		return err
	}
	ep, err := cfg.WithID(name, id)
	if err != nil {
		return err
	}
	log, err := a.logger(cfg)
	if err != nil {
		return err
	}
	if id == "" {
		id = name
	}
	log = log.With("config", name)
	for _, w := range cfg.WarningsFor(name) {
		log.Warn("doubtful configuration", "file", cfg.File(), "key", w.Key, "problem", w.Msg)
	}
	tr, err := a.tracing(ctx, name, id, log)
	if err != nil {
		return err
	}
	defer closeTracing(tr, log)
	addr, err := httpAddr(cfg, httpFlag, httpSet)
	if err != nil {
		return err
	}
	o, err := startOps(cfg, addr, log)
	if err != nil {
		return err
	}
	defer o.shutdown()
	// Until here nothing needs stopping: a signal ends the process as usual.
	ctx, release := onStopSignals(ctx, log)
	defer release()
	hup, releaseHup := onReloadSignal() // from here on SIGHUP reloads, never kills (reload.go)
	defer releaseHup()
	r, conns, err := a.startRetrying(ctx, cfg, &ep, name, id, log, tr.Provider())
	if err != nil {
		return err
	}
	if r == nil {
		log.Info("stop signal received before the endpoint could start; exiting")
		return nil
	}
	o.started(r, conns)
	eng, err := startAlerts(ctx, cfg, name, id, r, conns, log)
	if err != nil {
		_ = stopWithin(r, stopTimeout)
		closeWithin(conns, closeTimeout)
		return err
	}
	stopReload := a.reloadOnChange(cfg, name, id, r.(running), hup, log) // reload.go
	<-ctx.Done()
	stopReload()
	o.stopping()
	log.Info("stop signal received; stopping (a second signal exits without waiting)", "timeout", stopTimeout)
	stopAlerts(eng)
	if err := stopWithin(r, stopTimeout); err != nil {
		log.Error("stop did not finish cleanly", "err", err)
		go conns.Close() // may wait on a database that does not answer: do not
		return fmt.Errorf("stop %s: %w", name, err)
	}
	closeWithin(conns, closeTimeout)
	log.Info("stopped cleanly")
	return nil
}

// Start-up retries of a long-running endpoint whose database cannot be
// reached: the first waits startRetryMin, each next one twice as long, up
// to startRetryMax.
const (
	startRetryMin = 500 * time.Millisecond
	startRetryMax = 5 * time.Second
)

// closeTimeout bounds closing the connections at the end of a clean stop.
const closeTimeout = 5 * time.Second

// startRetrying starts the endpoint, retrying with a backoff while its
// databases cannot be reached (a long-running process outlives an outage
// at start as it does one later). It returns a nil runner when ctx ended
// first (a stop signal). Errors that are not about reaching a database
// (configuration, schema) end it at once.
func (a *app) startRetrying(ctx context.Context, cfg *config.Config, ep *config.Endpoint, name, id string, log *slog.Logger, tp trace.TracerProvider) (runner, *queue.Connections, error) {
	wait := startRetryMin
	for attempt := 1; ; attempt++ {
		r, conns, err := a.start(ctx, cfg, ep, name, id, log, tp)
		if err == nil {
			if attempt > 1 {
				log.Info("database reachable; endpoint started", "attempts", attempt)
			}
			return r, conns, nil
		}
		if ctx.Err() != nil {
			return nil, nil, nil
		}
		if !queue.IsTransient(err) {
			return nil, nil, err
		}
		log.Warn("cannot start: database not reachable; retrying", "attempt", attempt, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return nil, nil, nil
		case <-time.After(wait):
		}
		wait = min(2*wait, startRetryMax)
	}
}

// start opens the connections and builds and starts the endpoint of its
// role, traced with tp (nil: not traced).
func (a *app) start(ctx context.Context, cfg *config.Config, ep *config.Endpoint, name, id string, log *slog.Logger, tp trace.TracerProvider) (_ runner, _ *queue.Connections, err error) {
	conns, err := a.connections(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			closeWithin(conns, closeTimeout)
		}
	}()
	mux, https := buildMuxLive(ep.Handlers, id, log) // reload.go: the http handlers change live
	switch {
	case ep.ControlInbox != nil:
		dcfg := distributorConfig(cfg, ep, name, log)
		dcfg.TracerProvider = tp
		d, err := distributor.New(ctx, conns, dcfg, mux)
		if err != nil {
			return nil, nil, endpointErr(cfg, name, err)
		}
		if err := d.Start(ctx); err != nil {
			return nil, nil, err
		}
		return running{d, https}, conns, nil
	case ep.Worker != nil:
		bcfg := busConfig(cfg, ep, id, log)
		bcfg.TracerProvider = tp
		w, err := worker.New(ctx, conns, bcfg, mux, ep.WorkerConfig(id))
		if err != nil {
			return nil, nil, endpointErr(cfg, name, err)
		}
		if err := w.Start(ctx); err != nil {
			return nil, nil, err
		}
		return running{w, https}, conns, nil
	default:
		bcfg := busConfig(cfg, ep, id, log)
		bcfg.TracerProvider = tp
		e, err := bus.New(ctx, conns, bcfg, mux)
		if err != nil {
			return nil, nil, endpointErr(cfg, name, err)
		}
		if err := e.Start(ctx); err != nil {
			return nil, nil, err
		}
		return running{e, https}, conns, nil
	}
}

// stopWithin stops r and returns by timeout whatever the database does:
// handlers get the timeout less a share kept for giving back what is
// unfinished, and a stop still waiting on a database that does not answer
// is abandoned at the timeout (its messages come back when their leases
// end, as after a crash: nothing is lost).
func stopWithin(r runner, timeout time.Duration) error {
	handlers := timeout - min(2*time.Second, timeout/4)
	ctx, cancel := context.WithTimeout(context.Background(), handlers)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Stop(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("not finished after --stop-timeout %s (is the database answering?); messages still leased are delivered again when their leases end", timeout)
	}
}

// closeWithin closes conns, waiting at most timeout.
func closeWithin(conns *queue.Connections, timeout time.Duration) {
	done := make(chan struct{})
	go func() { conns.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

// configErr reports construction errors of the command line's own endpoint
// (bad route patterns…) as configuration errors of cfg's file, unless they
// are about reaching a database.
func configErr(cfg *config.Config, name string, err error) error {
	var ce *config.Error
	if errors.As(err, &ce) || errors.Is(err, queue.ErrConnect) {
		return err
	}
	// The endpoint is the command's, not one of the file: do not name it.
	msg := strings.TrimPrefix(err.Error(), fmt.Sprintf("bus: endpoint %q: ", name))
	return &config.Error{File: cfg.File(), Msg: msg}
}

// endpointErr reports construction errors of the endpoint name (bad rules,
// actions, retry policies…) as configuration errors under its key in cfg's
// file, unless they are about reaching a database.
func endpointErr(cfg *config.Config, name string, err error) error {
	var ce *config.Error
	if errors.As(err, &ce) || errors.Is(err, queue.ErrConnect) {
		return err
	}
	return &config.Error{File: cfg.File(), Key: "endpoints." + name, Msg: err.Error()}
}

// buildMuxLive registers the configured no-code handlers; it returns the
// http handlers by their index in hs (nil for the others), for reloads.
func buildMuxLive(hs []config.Handler, id string, log *slog.Logger) (*bus.Mux, []*handlers.HTTP) {
	mux := bus.NewMux()
	https := make([]*handlers.HTTP, len(hs))
	for i, h := range hs {
		switch {
		case h.HTTP != nil:
			https[i] = handlers.NewHTTP(h.HTTP.URLs, h.HTTP.Timeout, id)
			mux.Handle(h.Type, https[i])
		case h.Log != nil:
			mux.Handle(h.Type, handlers.Log{Logger: log})
		case h.Noop != nil:
			mux.Handle(h.Type, handlers.Noop{})
		}
	}
	return mux, https
}

// openQueue resolves a queue URI given on the command line.
func openQueue(ctx context.Context, conns *queue.Connections, flag, uri string) (queue.Queue, error) {
	if _, err := queue.ParseURI(uri); err != nil {
		return nil, usagef("%s: %v", flag, err)
	}
	q, err := conns.Queue(ctx, uri)
	if err != nil {
		if errors.Is(err, queue.ErrUnknownConnection) {
			return nil, usagef("%s: %v", flag, err)
		}
		return nil, err
	}
	return q, nil
}
