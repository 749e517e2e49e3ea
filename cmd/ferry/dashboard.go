package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/ferrybus/ferry/dashboard"
	"github.com/ferrybus/ferry/internal/config"
	"github.com/spf13/cobra"
)

// defaultDashboardAddr is where `ferry dashboard` listens without --addr
// or dashboard.addr.
const defaultDashboardAddr = "127.0.0.1:8089"

// dashboardTokenEnv sets the dashboard's token beside dashboard.token.
const dashboardTokenEnv = "FERRY_DASHBOARD_TOKEN"

func (a *app) dashboardCmd() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the web dashboard: queues, workers, error queues, messages",
		Long: "Serve the web dashboard over the configuration's databases (no endpoint needs to run).\n" +
			"It listens on 127.0.0.1:8089 by default; another interface needs a token: dashboard.token or " + dashboardTokenEnv + ".",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.load()
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("addr") && cfg.Dashboard.Addr != "" {
				addr = cfg.Dashboard.Addr
			}
			key := "--addr"
			if !cmd.Flags().Changed("addr") && cfg.Dashboard.Addr != "" {
				key = "dashboard.addr"
			}
			token, err := a.dashboardToken(cfg)
			if err != nil {
				return err
			}
			loopback, err := isLoopback(addr)
			if err != nil {
				return usagef("%s %q: %v", key, addr, err)
			}
			if !loopback && token == "" {
				return usagef("%s %q is not a loopback address: set dashboard.token in %s (or %s) so that every request needs the token, or listen on 127.0.0.1",
					key, addr, cfg.File(), dashboardTokenEnv)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log, err := a.logger(cfg)
			if err != nil {
				return err
			}
			conns, err := a.connections(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer conns.Close()
			dcfg := dashboardConfig(cfg)
			dcfg.Token, dcfg.Logger = token, log
			if loopback && token == "" {
				// Without a token only loopback names are served: a page of
				// another site cannot reach it by DNS rebinding.
				dcfg.Hosts = []string{"127.0.0.1", "::1", "localhost"}
			}
			h, err := dashboard.New(conns, dcfg)
			if err != nil {
				return err
			}
			defer h.Close()
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("dashboard: listen on %s: %w", addr, err)
			}
			srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			log.Info("dashboard listening", "url", "http://"+displayAddr(ln.Addr()), "token", token != "")
			select {
			case err := <-served:
				return fmt.Errorf("dashboard: serve on %s: %w", addr, err)
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("dashboard: stop: %w", err)
			}
			log.Info("dashboard stopped")
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", defaultDashboardAddr, "listen address (HOST:PORT); beyond loopback a token is required")
	return cmd
}

// dashboardToken is dashboard.token or FERRY_DASHBOARD_TOKEN; both set to
// different values is a configuration error.
func (a *app) dashboardToken(cfg *config.Config) (string, error) {
	env := ""
	for _, kv := range a.env {
		if v, ok := strings.CutPrefix(kv, dashboardTokenEnv+"="); ok {
			env = v
		}
	}
	tok := cfg.Dashboard.Token
	switch {
	case env != "" && tok != "" && env != tok:
		return "", usagef("dashboard.token in %s and %s differ: set one of them", cfg.File(), dashboardTokenEnv)
	case env != "":
		return env, nil
	}
	return tok, nil
}

// isLoopback reports whether addr (HOST:PORT) listens on loopback only. An
// empty host listens on every interface.
func isLoopback(addr string) (bool, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false, errors.New("want HOST:PORT, such as 127.0.0.1:8089")
	}
	if port == "" {
		return false, errors.New("no port: want HOST:PORT, such as 127.0.0.1:8089")
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

// displayAddr is a listener's address as a URL host with a trailing slash.
func displayAddr(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return net.JoinHostPort(ta.IP.String(), fmt.Sprint(ta.Port)) + "/"
	}
	return a.String() + "/"
}

// dashboardConfig is what the dashboard shows of the configuration: its
// queues by role (as `ferry queue ls`), error queues and distributors.
func dashboardConfig(cfg *config.Config) dashboard.Config {
	dc := dashboard.Config{Queues: configuredQueues(cfg)}
	seen := map[string]bool{}
	for _, name := range cfg.EndpointNames() {
		ep := cfg.Endpoints[name]
		if ep.Inbox != nil && ep.Inbox.ErrorQueue != "" {
			seen[ep.Inbox.ErrorQueue] = true
		}
		if ep.ControlInbox != nil && ep.ControlInbox.ErrorQueue != "" {
			seen[ep.ControlInbox.ErrorQueue] = true
		}
	}
	for uri := range seen {
		if !strings.Contains(uri, "{id}") {
			dc.ErrorQueues = append(dc.ErrorQueues, uri)
		}
	}
	sort.Strings(dc.ErrorQueues)
	for _, name := range distributorEndpoints(cfg) {
		dc.Distributors = append(dc.Distributors, dashboard.Distributor{Endpoint: name, ControlQueue: cfg.Endpoints[name].ControlInbox.WorkQueue})
	}
	return dc
}
