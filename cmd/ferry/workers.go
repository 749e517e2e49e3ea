package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ferrybus/ferry/distributor"
	"github.com/ferrybus/ferry/internal/config"
	"github.com/ferrybus/ferry/internal/logging"
	"github.com/ferrybus/ferry/queue"
	"github.com/spf13/cobra"
)

// distributorView is one distributor endpoint of the configuration with
// what its instances recorded (`ferry workers --json`).
type distributorView struct {
	Endpoint     string           `json:"endpoint"`
	ControlQueue string           `json:"controlQueue"`
	Instances    []instanceView   `json:"instances"`
	Workers      []workerViewJSON `json:"workers"`
}

type instanceView struct {
	queue.DistributorInstance
	// State is active, standby, or stale (not updated for 3 intervals).
	State string `json:"state"`
}

type workerViewJSON struct {
	queue.WorkerView
	// State is ok, stopping, silent (not heard from for reclaimAfter) or
	// stale (the view was not updated for 3 intervals).
	State string `json:"state"`
}

func (a *app) workersCmd() *cobra.Command {
	var watch bool
	var interval time.Duration
	var only string
	cmd := &cobra.Command{
		Use:   "workers",
		Short: "Show each distributor's instances (active, standby) and the worker sessions it knows",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("interval") && !watch {
				return usagef("--interval: only with --watch")
			}
			if interval < 100*time.Millisecond {
				return usagef("--interval: %s is shorter than 100ms", interval)
			}
			cfg, err := a.load()
			if err != nil {
				return err
			}
			names := distributorEndpoints(cfg)
			if only != "" {
				if !slices.Contains(names, only) {
					return usagef("--endpoint: %q is not a distributor endpoint of %s (distributors: %s)", only, cfg.File(), listOrNone(names))
				}
				names = []string{only}
			}
			if len(names) == 0 {
				return usagef("%s configures no distributor endpoint (one with a controlInbox)", cfg.File())
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
			for {
				views, err := readViews(ctx, cfg, conns, names)
				if err != nil {
					return err
				}
				if watch && !a.jsonOut {
					fmt.Fprint(a.stdout, "\033[H\033[2J") // redraw in place
				}
				if err := a.printViews(views, time.Now()); err != nil {
					return err
				}
				if !watch {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil // SIGINT ends the watch; that is its normal end
				case <-time.After(interval):
				}
			}
		},
	}
	cmd.Flags().BoolVar(&a.jsonOut, "json", false, "print JSON (with --watch: one line per redraw)")
	cmd.Flags().BoolVar(&watch, "watch", false, "redraw every --interval until interrupted")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "redraw interval with --watch")
	cmd.Flags().StringVar(&only, "endpoint", "", "show only this distributor endpoint")
	return cmd
}

// distributorEndpoints are the configured endpoints with a control inbox.
func distributorEndpoints(cfg *config.Config) []string {
	var out []string
	for _, name := range cfg.EndpointNames() {
		if cfg.Endpoints[name].ControlInbox != nil {
			out = append(out, name)
		}
	}
	return out
}

func listOrNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return fmt.Sprint(xs)
}

// readViews reads what each distributor endpoint's instances recorded.
func readViews(ctx context.Context, cfg *config.Config, conns *queue.Connections, names []string) ([]distributorView, error) {
	out := make([]distributorView, 0, len(names))
	for _, name := range names {
		control := cfg.Endpoints[name].ControlInbox.WorkQueue
		q, err := openQueue(ctx, conns, "endpoints."+name+".controlInbox.workQueue", control)
		if err != nil {
			return nil, err
		}
		v, err := q.Store().DistributorView(ctx, q.URI())
		if err != nil {
			if queue.IsMissingTable(err) {
				return nil, fmt.Errorf("endpoint %q: %s lacks the distributor's view (migration 0008): run 'ferry migrate': %w", name, q.URI(), err)
			}
			return nil, fmt.Errorf("endpoint %q: %w", name, err)
		}
		out = append(out, judge(name, q.URI(), v, time.Now()))
	}
	return out, nil
}

// judge gives each instance and worker its state as of now
// (distributor.ViewStates).
func judge(endpoint, control string, v queue.DistributorView, now time.Time) distributorView {
	dv := distributorView{Endpoint: endpoint, ControlQueue: control, Instances: []instanceView{}, Workers: []workerViewJSON{}}
	insts, ws := distributor.ViewStates(v, now)
	for i, inst := range v.Instances {
		dv.Instances = append(dv.Instances, instanceView{inst, insts[i]})
	}
	for i, w := range v.Workers {
		dv.Workers = append(dv.Workers, workerViewJSON{w, ws[i]})
	}
	return dv
}

// printViews prints the views as tables, or as one JSON line.
func (a *app) printViews(views []distributorView, now time.Time) error {
	if a.jsonOut {
		return json.NewEncoder(a.stdout).Encode(views)
	}
	for i, v := range views {
		if i > 0 {
			fmt.Fprintln(a.stdout)
		}
		fmt.Fprintf(a.stdout, "DISTRIBUTOR %s  control %s\n", v.Endpoint, v.ControlQueue)
		if len(v.Instances) == 0 {
			fmt.Fprintln(a.stdout, "  no instance recorded (none running, or none since the database was migrated)")
		} else {
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  STATE\tNAME\tOWNER\tHOST\tPID\tUPDATED")
			for _, inst := range v.Instances {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%s\n", inst.State, logging.Escape(inst.Name), logging.Escape(inst.Owner),
					logging.Escape(inst.Host), inst.PID, ago(now, inst.Updated))
			}
			tw.Flush()
		}
		if len(v.Workers) == 0 {
			fmt.Fprintln(a.stdout, "  no worker sessions")
			continue
		}
		if err := printWorkers(a.stdout, v.Workers, now); err != nil {
			return err
		}
	}
	return nil
}

func printWorkers(out io.Writer, ws []workerViewJSON, now time.Time) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  WORKER\tSESSION\tIDLE/THREADS\tLAST SEEN\tDEPTH\tSTATE\tQUEUE")
	for _, w := range ws {
		threads := "?"
		if w.Threads > 0 {
			threads = fmt.Sprint(w.Threads)
		}
		depth := "?"
		if w.Depth >= 0 {
			depth = fmt.Sprint(w.Depth)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d/%s\t%s\t%s\t%s\t%s\n", logging.Escape(w.ID), logging.Escape(w.Session), w.Idle, threads,
			ago(now, w.LastSeen), depth, w.State, logging.Escape(w.Queue))
	}
	return tw.Flush()
}

// ago is how long before now t was, rounded for reading.
func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 0:
		d = 0
	case d >= time.Minute:
		return d.Round(time.Second).String() + " ago"
	}
	return d.Round(100*time.Millisecond).String() + " ago"
}
