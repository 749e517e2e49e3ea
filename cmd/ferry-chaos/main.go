// Command ferry-chaos is ferry's chaos suite. It builds the ferry binary (or
// uses --ferry), runs one distributor and N workers of it as real processes
// on real databases (a SQLite file, and a throwaway PostgreSQL cluster it
// creates with pg_createcluster on a free port from 55432 and drops at the
// end), offers a steady load, injects one fault per scenario, and prints a
// table: scenario, messages, lost, duplicates, time to drain, recovered
// without restart, and the scenario's figure (takeover time, resume time…).
//
// Every worker's handler is an HTTP target served by the suite, which
// records every call (message, worker, Ferry-Attempt). A message is lost
// when it was surely sent, never handled, and is in no queue at the end. A
// duplicate is an extra handling; it is explained when the earlier handling
// ran in a process the suite killed with kill -9 after it started.
//
// Run it from the module root: go run ./cmd/ferry-chaos [--short]. It exits 1
// when a message is lost, a duplicate is unexplained, a scenario does not
// drain or fails; timings are reported, not judged.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	var o options
	short := flag.Bool("short", false, "CI size: a few thousand messages per scenario, 20s held transaction")
	flag.StringVar(&o.ferry, "ferry", "", "ferry binary to run (default: go build ./cmd/ferry from --source)")
	flag.StringVar(&o.source, "source", ".", "module root to build ferry from")
	rate := flag.Int("rate", 0, "offered load of each scenario in msgs/s (default 1000, short 250)")
	window := flag.Duration("window", 0, "how long each scenario offers load and injects its fault (default 30s, short 10s)")
	heldFor := flag.Duration("held-for", 0, "how long the held transaction stays open (default 3m, short 20s)")
	heldRate := flag.Int("held-rate", 0, "offered load during the held transaction (default 1000, short 200)")
	workers := flag.Int("workers", 2, "worker processes")
	threads := flag.Int("threads", 8, "threads per worker")
	lease := flag.Duration("lease", 10*time.Second, "workers' inbox lease")
	drain := flag.Duration("drain-timeout", 0, "how long to wait for the queues to drain after the load (default 5m, short 90s)")
	flag.IntVar(&o.pgPort, "pg-port", 55432, "first port tried for the throwaway PostgreSQL cluster")
	flag.BoolVar(&o.requirePG, "require-postgres", os.Getenv("FERRY_REQUIRE_POSTGRES") == "1", "fail when no throwaway cluster can be made (default from FERRY_REQUIRE_POSTGRES=1)")
	flag.BoolVar(&o.noSQLite, "no-sqlite", false, "skip the SQLite variants")
	only := flag.String("only", "", "comma-separated scenarios to run: "+names())
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary folder (databases, configs, process logs)")
	flag.Parse()
	port := o.pgPort
	o.defaults(*short)
	o.pgPort = port
	setIf(&o.rate, *rate)
	setIf(&o.window, *window)
	setIf(&o.heldFor, *heldFor)
	setIf(&o.heldRate, *heldRate)
	setIf(&o.drainTimeout, *drain)
	o.workers, o.threads, o.lease = *workers, *threads, *lease
	if *only != "" {
		o.only = strings.Split(*only, ",")
	}
	if o.rate < 1 || o.heldRate < 1 || o.workers < 1 || o.threads < 1 || o.window < 2*time.Second || o.heldFor <= 0 || o.lease <= 0 {
		fmt.Fprintln(os.Stderr, "ferry-chaos: --rate, --held-rate, --workers, --threads must be at least 1, --window at least 2s, --held-for and --lease positive")
		os.Exit(2)
	}
	for _, n := range o.only {
		if !strings.Contains(","+names()+",", ","+n+",") {
			fmt.Fprintf(os.Stderr, "ferry-chaos: --only: unknown scenario %q (known: %s)\n", n, names())
			os.Exit(2)
		}
	}
	o.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	// An interrupt ends the scenario at hand; deferred cleanups stop every
	// process and drop the cluster.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	results, skipped, err := runSuite(ctx, &o)
	printTable(os.Stdout, results)
	for _, s := range skipped {
		fmt.Printf("skipped: %s\n", s)
	}
	fmt.Printf("total time %s\n", time.Since(start).Round(time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferry-chaos:", err)
		os.Exit(1)
	}
	if failed(results) {
		fmt.Fprintln(os.Stderr, "ferry-chaos: FAILED: a message was lost, a duplicate is unexplained, or a scenario failed to drain or errored")
		os.Exit(1)
	}
}

func names() string {
	var ns []string
	for _, s := range scenarios() {
		ns = append(ns, s.name)
	}
	return strings.Join(ns, ",")
}

func setIf[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}
