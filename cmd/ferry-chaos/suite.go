package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ferrybus/ferry/internal/testkit"
)

// options size and select the suite.
type options struct {
	ferry        string        // the ferry binary; built from source when empty
	source       string        // module root to build it from
	rate         int           // offered load of every scenario, msgs/s
	window       time.Duration // how long load is offered (and faults injected)
	heldFor      time.Duration // how long the held transaction stays open
	heldRate     int           // offered load during the held transaction
	workers      int
	threads      int
	lease        time.Duration
	drainTimeout time.Duration
	pgPort       int      // first port tried for the throwaway cluster
	requirePG    bool     // fail instead of skipping when no cluster can be made
	noSQLite     bool     // skip the SQLite variants
	only         []string // scenario names to run (all when empty)
	keep         bool     // keep the temporary folder
	log          *slog.Logger
}

// defaults fill the sizes: full (at least 20,000 messages per scenario) or short (CI).
func (o *options) defaults(short bool) {
	if short {
		o.rate, o.window, o.heldFor, o.heldRate = 250, 10*time.Second, 20*time.Second, 200
		o.drainTimeout = 90 * time.Second
	} else {
		o.rate, o.window, o.heldFor, o.heldRate = 1000, 30*time.Second, 3*time.Minute, 1000
		o.drainTimeout = 5 * time.Minute
	}
	o.workers, o.threads, o.lease, o.pgPort = 2, 8, 10*time.Second, 55432
}

// result is one row of the table.
type result struct {
	Scenario, Store string
	Messages        int // surely sent
	Uncertain       int // sends that failed (their commit is unknown)
	Handled         int
	Lost            int // sent, never handled, not in any queue
	Stuck           int // sent, never handled, still in a queue at the deadline
	Duplicates      int // extra handlings
	Explained       int // of which the earlier handling ran in a process killed later
	Outage          int // of which the earlier handling ran just before or while the database was down (its ack failed)
	Unexplained     int
	Drain           time.Duration // from the end of the load to the last message handled
	Drained         bool
	Recovered       string // "yes", "no" or "n/a (restarted by design)"
	Figure          string
	Err             error
	ByWorker        map[string]int // handlings per worker
	Redelivered     int            // handlings with Ferry-Attempt above 1
}

// scenario is one fault pattern on one store.
type scenario struct {
	name     string
	pgOnly   bool
	byDesign bool // the scenario restarts every process itself
	window   func(o *options) time.Duration
	rate     func(o *options) int
	fault    func(ctx context.Context, e *env) (string, error)
}

func scenarios() []scenario {
	win := func(o *options) time.Duration { return o.window }
	rate := func(o *options) int { return o.rate }
	return []scenario{
		{name: "worker-kill9", window: win, rate: rate, fault: faultWorkerKill},
		{name: "distributor-kill9", window: win, rate: rate, fault: faultDistributorKill},
		{name: "standby-takeover", window: win, rate: rate, fault: faultStandby},
		{name: "pg-restart", pgOnly: true, window: win, rate: rate, fault: faultPGRestart},
		// The load goes on for a window after the 10 s outage too.
		{name: "pg-stop-10s", pgOnly: true, window: func(o *options) time.Duration { return o.window + 15*time.Second }, rate: rate, fault: faultPGStop},
		{name: "pg-terminate-1s", pgOnly: true, window: win, rate: rate, fault: faultTerminate},
		{name: "sigterm-all", byDesign: true, window: win, rate: rate, fault: faultSigterm},
		{name: "held-transaction", pgOnly: true,
			window: func(o *options) time.Duration { return o.heldFor + 10*time.Second },
			rate:   func(o *options) int { return o.heldRate }, fault: faultHeldTx},
	}
}

// runSuite builds the binary if needed, makes the throwaway cluster, runs
// every selected scenario and returns the table rows. skipped names
// scenarios that could not run here, with why.
func runSuite(ctx context.Context, o *options) (results []result, skipped []string, err error) {
	dir, err := os.MkdirTemp("", "ferry-chaos-")
	if err != nil {
		return nil, nil, err
	}
	if o.keep {
		o.log.Info("chaos folder kept", "dir", dir)
	} else {
		defer func() {
			if err == nil && !failed(results) {
				os.RemoveAll(dir)
			} else {
				o.log.Warn("chaos folder kept for its logs", "dir", dir)
			}
		}()
	}
	if o.ferry == "" {
		o.ferry = filepath.Join(dir, "ferry")
		build := exec.CommandContext(ctx, "go", "build", "-o", o.ferry, "./cmd/ferry")
		build.Dir = o.source
		if out, err := build.CombinedOutput(); err != nil {
			return nil, nil, fmt.Errorf("go build ./cmd/ferry in %s: %w: %s", o.source, err, out)
		}
	}
	var cl *cluster
	needPG := false
	for _, s := range scenarios() {
		if selected(o, s.name) {
			needPG = true
		}
	}
	if needPG {
		if why := clusterAvailable(); why != "" {
			if o.requirePG {
				return nil, nil, fmt.Errorf("PostgreSQL scenarios required but %s", why)
			}
			skipped = append(skipped, "PostgreSQL scenarios: "+why)
		} else {
			cl, err = createCluster(ctx, o.pgPort, o.log)
			if err != nil {
				return nil, nil, err
			}
			defer cl.drop()
		}
	}
	for i, s := range scenarios() {
		if !selected(o, s.name) {
			continue
		}
		stores := []string{"postgres", "sqlite"}
		if s.pgOnly || o.noSQLite {
			stores = stores[:1]
		}
		for _, store := range stores {
			if store == "postgres" && cl == nil {
				continue
			}
			if ctx.Err() != nil {
				return results, skipped, ctx.Err()
			}
			sdir := filepath.Join(dir, fmt.Sprintf("%02d-%s-%s", i+1, s.name, store))
			if err := os.MkdirAll(sdir, 0o755); err != nil {
				return results, skipped, err
			}
			o.log.Info("scenario", "name", s.name, "store", store, "messages", int(float64(s.rate(o))*s.window(o).Seconds()))
			r := runScenario(ctx, o, s, store, cl, sdir, fmt.Sprintf("chaos_%d_%s", i+1, strings.ReplaceAll(s.name, "-", "_")))
			o.log.Info("scenario done", "name", s.name, "store", store, "lost", r.Lost, "duplicates", r.Duplicates,
				"unexplained", r.Unexplained, "handled", r.Handled, "byWorker", r.ByWorker, "redelivered", r.Redelivered, "drain", r.Drain.Round(time.Millisecond), "figure", r.Figure, "err", r.Err)
			results = append(results, r)
		}
	}
	return results, skipped, nil
}

func selected(o *options, name string) bool {
	if len(o.only) == 0 {
		return true
	}
	for _, n := range o.only {
		if n == name {
			return true
		}
	}
	return false
}

func failed(rs []result) bool {
	for _, r := range rs {
		if r.Err != nil || r.Lost > 0 || r.Unexplained > 0 || !r.Drained {
			return true
		}
	}
	return false
}

// runScenario runs one scenario: a cluster of processes under a steady
// load, the fault during the load, a drain, then the count.
func runScenario(ctx context.Context, o *options, s scenario, store string, cl *cluster, dir, db string) (r result) {
	r = result{Scenario: s.name, Store: store, Recovered: "no"}
	e := &env{opts: o, log: o.log, dir: dir, pg: store == "postgres", cl: cl,
		target: newTarget(5 * time.Millisecond), sender: &sender{}, procs: map[string]*proc{}}
	defer e.teardown()
	// Nothing of a scenario may run unbounded.
	ctx, cancel := context.WithTimeout(ctx, s.window(o)+o.drainTimeout+3*time.Minute)
	defer cancel()
	if err := e.setup(ctx, db); err != nil {
		r.Err = err
		return r
	}
	if err := e.startCluster(); err != nil {
		r.Err = err
		return r
	}
	window := s.window(o)
	e.win = window
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		e.sender.run(ctx, e.client, s.rate(o), window)
	}()
	figure, ferr := s.fault(ctx, e)
	<-sendDone
	e.sender.mu.Lock()
	loadEnd := e.sender.stopped
	e.sender.mu.Unlock()
	r.Figure = figure
	if ferr != nil {
		r.Err = fmt.Errorf("fault: %w", ferr)
	}
	r.Drained = e.waitDrained(ctx, o.drainTimeout)

	sent := e.sender.sent()
	seen := e.target.snapshot()
	rows, err := e.rows(ctx)
	if err != nil {
		r.Err = errors.Join(r.Err, err)
	}
	e.sender.mu.Lock()
	r.Uncertain = len(e.sender.uncertain)
	e.sender.mu.Unlock()
	var last time.Time
	for n, at := range sent {
		if at.IsZero() {
			continue
		}
		r.Messages++
		hs := seen[n]
		if len(hs) == 0 {
			if _, ok := rows[n]; ok {
				r.Stuck++
			} else {
				r.Lost++
			}
			continue
		}
		r.Handled++
		if hs[0].at.After(last) {
			last = hs[0].at
		}
	}
	if last.After(loadEnd) {
		r.Drain = last.Sub(loadEnd)
	}
	e.mu.Lock()
	kills := append([]event(nil), e.kills...)
	outages := append([][2]time.Time(nil), e.faults...)
	e.mu.Unlock()
	r.ByWorker = map[string]int{}
	for n, hs := range seen {
		for _, h := range hs {
			r.ByWorker[h.worker]++
			if h.attempt > 1 {
				r.Redelivered++
			}
		}
		for i := 0; i < len(hs)-1; i++ {
			r.Duplicates++
			switch {
			case killedAfter(kills, hs[i]):
				r.Explained++
			case inOutage(outages, hs[i]):
				r.Outage++
			default:
				r.Unexplained++
				if r.Unexplained <= 5 {
					o.log.Warn("unexplained duplicate", "scenario", s.name, "store", store, "n", n,
						"sentAt", sent[n].Format(time.StampMilli), "handlings", fmtHandlings(hs))
				}
			}
		}
	}
	if ux := e.unexpectedExits(); len(ux) > 0 {
		r.Err = errors.Join(r.Err, fmt.Errorf("processes exited on their own: %s", strings.Join(ux, "; ")))
	}
	switch {
	case s.byDesign:
		r.Recovered = "n/a (restarted by design)"
	case r.Drained && len(e.unexpectedExits()) == 0:
		r.Recovered = "yes"
	}
	if !r.Drained {
		r.Err = errors.Join(r.Err, fmt.Errorf("not drained within %s: %d sent messages unhandled (%d still queued); logs in %s",
			o.drainTimeout, r.Lost+r.Stuck, r.Stuck, dir))
	}
	return r
}

func fmtHandlings(hs []handling) string {
	var parts []string
	for _, h := range hs {
		parts = append(parts, fmt.Sprintf("%s attempt %d at %s", h.worker, h.attempt, h.at.Format(time.StampMilli)))
	}
	return strings.Join(parts, "; ")
}

// inOutage says whether handling h started while the database was down, or
// in the 2 s before: its ack (committed a moment after the handler) then
// fails, and ferry delivers the message again.
func inOutage(outages [][2]time.Time, h handling) bool {
	for _, o := range outages {
		if !h.at.Before(o[0].Add(-2*time.Second)) && !h.at.After(o[1]) {
			return true
		}
	}
	return false
}

// killedAfter says whether the process that made handling h was killed with
// kill -9 soon after h started (within 2 s: its ack, committed a moment
// after the handler returns, may never have happened). The target may
// record a request a little after the signal (it was on its way), so the
// kill counts until the process was seen dead.
func killedAfter(kills []event, h handling) bool {
	for _, k := range kills {
		if k.proc == h.worker && !k.dead.Before(h.at) {
			// The first kill after h is the incarnation that ran it.
			return k.at.Sub(h.at) <= 2*time.Second
		}
	}
	return false
}

// printTable writes the results as a Markdown table.
func printTable(w io.Writer, rs []result) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| scenario\t store\t messages\t lost\t duplicates (kill -9 / db outage / unexplained)\t time to drain\t recovered without restart\t figure\t")
	fmt.Fprintln(tw, "|---\t---\t---\t---\t---\t---\t---\t---\t")
	for _, r := range rs {
		msgs := fmt.Sprint(r.Messages)
		if r.Uncertain > 0 {
			msgs += fmt.Sprintf(" (+%d in failed sends)", r.Uncertain)
		}
		lost := fmt.Sprint(r.Lost)
		if r.Stuck > 0 {
			lost += fmt.Sprintf(" (+%d stuck in a queue)", r.Stuck)
		}
		drain := r.Drain.Round(10 * time.Millisecond).String()
		if !r.Drained {
			drain = "NOT DRAINED"
		}
		fig := r.Figure
		if r.Err != nil {
			fig += " ERROR: " + strings.ReplaceAll(r.Err.Error(), "\n", "; ")
		}
		fmt.Fprintf(tw, "| %s\t %s\t %s\t %s\t %d (%d / %d / %d)\t %s\t %s\t %s\t\n",
			r.Scenario, r.Store, msgs, lost, r.Duplicates, r.Explained, r.Outage, r.Unexplained, drain, r.Recovered, fig)
	}
	tw.Flush()
}

// The faults. Each runs during the load window and returns its figure.

func faultWorkerKill(ctx context.Context, e *env) (string, error) {
	end := time.Now().Add(e.win)
	kills := 0
	for {
		if err := sleep(ctx, 2*time.Second); err != nil {
			return "", err
		}
		if time.Now().After(end) {
			break
		}
		// Take turns: the distributor may give all the work to one
		// worker when the load is light.
		w := fmt.Sprintf("w%d", 1+kills%e.opts.workers)
		if err := e.kill9(w); err != nil {
			return "", err
		}
		if err := e.start(w, "worker", "--id", w); err != nil {
			return "", err
		}
		kills++
	}
	return fmt.Sprintf("%d kill -9 + restarts, every 2s, of the workers in turn", kills), nil
}

func faultDistributorKill(ctx context.Context, e *env) (string, error) {
	if err := sleep(ctx, e.win/3); err != nil {
		return "", err
	}
	if err := e.kill9("d1"); err != nil {
		return "", err
	}
	if err := e.start("d1", "distributor", "--id", "d1"); err != nil {
		return "", err
	}
	restarted := time.Now()
	if err := sleep(ctx, time.Until(restarted.Add(2*e.win/3))); err != nil {
		return "", err
	}
	if d, ok := e.waitFirstHandledSentAfter(ctx, restarted); ok {
		return fmt.Sprintf("distributing again %s after the restart", d.Round(10*time.Millisecond)), nil
	}
	return "not distributing again before the drain timeout", nil
}

func faultStandby(ctx context.Context, e *env) (string, error) {
	start := time.Now()
	// d1 is alone, so it is the active one once messages flow.
	if err := testkit.Poll(ctx, 30*time.Second, 50*time.Millisecond, func() bool { _, ok := e.firstHandledSentAfter(start); return ok }); err != nil {
		return "", fmt.Errorf("no message handled before the standby started: %w", err)
	}
	if err := e.start("d2", "distributor", "--id", "d2"); err != nil {
		return "", err
	}
	if err := sleep(ctx, time.Until(start.Add(e.win/3))); err != nil {
		return "", err
	}
	if err := e.kill9("d1"); err != nil {
		return "", err
	}
	killed := time.Now()
	if err := sleep(ctx, time.Until(start.Add(e.win))); err != nil {
		return "", err
	}
	if d, ok := e.waitFirstHandledSentAfter(ctx, killed); ok {
		return fmt.Sprintf("standby distributing %s after the kill", d.Round(10*time.Millisecond)), nil
	}
	return "standby not distributing before the drain timeout", nil
}

// pgOutage runs outage (a restart, or a stop and a start) after a third of
// the window and reports when handling resumed after the database answered.
func pgOutage(ctx context.Context, e *env, what string, outage func(ctx context.Context) error) (string, error) {
	start := time.Now()
	if err := sleep(ctx, e.win/3); err != nil {
		return "", err
	}
	down := time.Now()
	if err := outage(ctx); err != nil {
		return "", err
	}
	up, err := waitAnswering(ctx, e.dsn, time.Minute)
	if err != nil {
		return "", err
	}
	e.mu.Lock()
	e.faults = append(e.faults, [2]time.Time{down, up})
	e.mu.Unlock()
	// Wait for the load to end, or for long enough after it.
	if err := sleep(ctx, time.Until(start.Add(max(e.win, up.Sub(start)+5*time.Second)))); err != nil {
		return "", err
	}
	if d, ok := e.waitFirstHandledSentAfter(ctx, up); ok {
		return fmt.Sprintf("%s (down %s); handling resumed %s after the database answered", what,
			up.Sub(down).Round(10*time.Millisecond), d.Round(10*time.Millisecond)), nil
	}
	return fmt.Sprintf("%s; handling not resumed before the drain timeout", what), nil
}

func faultPGRestart(ctx context.Context, e *env) (string, error) {
	return pgOutage(ctx, e, "pg_ctlcluster restart -m fast", e.cl.restart)
}

func faultPGStop(ctx context.Context, e *env) (string, error) {
	return pgOutage(ctx, e, "stopped 10s", func(ctx context.Context) error {
		if err := e.cl.stop(ctx); err != nil {
			return err
		}
		if err := sleep(ctx, 10*time.Second); err != nil {
			return err
		}
		return e.cl.start(ctx)
	})
}

func faultTerminate(ctx context.Context, e *env) (string, error) {
	db, err := sql.Open("postgres", e.dsn)
	if err != nil {
		return "", err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	end := time.Now().Add(e.win)
	total, rounds := 0, 0
	for time.Now().Before(end) {
		if err := sleep(ctx, time.Second); err != nil {
			return "", err
		}
		var n int
		err := db.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n)
		if err != nil {
			return "", fmt.Errorf("pg_terminate_backend: %w", err)
		}
		total += n
		rounds++
	}
	return fmt.Sprintf("%d backends terminated in %d rounds, one per second", total, rounds), nil
}

func faultSigterm(ctx context.Context, e *env) (string, error) {
	start := time.Now()
	if err := sleep(ctx, e.win/2); err != nil {
		return "", err
	}
	took, termErr := e.termAll()
	rows, err := e.rows(ctx)
	if err != nil {
		return "", err
	}
	leased := 0
	for _, r := range rows {
		if r.leased {
			leased++
		}
	}
	fig := fmt.Sprintf("all stopped in %s; %d rows with a live lease after the stop", took.Round(10*time.Millisecond), leased)
	if err := e.startCluster(); err != nil {
		return fig, err
	}
	if err := sleep(ctx, time.Until(start.Add(e.win))); err != nil {
		return fig, err
	}
	var errs []error
	if termErr != nil {
		errs = append(errs, termErr)
	}
	if leased > 0 {
		errs = append(errs, fmt.Errorf("%d messages still leased after every process stopped", leased))
	}
	return fig, errors.Join(errs...)
}

func faultHeldTx(ctx context.Context, e *env) (string, error) {
	o := e.opts
	if err := sleep(ctx, 5*time.Second); err != nil {
		return "", err
	}
	db, err := sql.Open("postgres", e.dsn)
	if err != nil {
		return "", err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("begin the held transaction: %w", err)
	}
	var xid int64
	if err := tx.QueryRowContext(ctx, "SELECT txid_current()").Scan(&xid); err != nil {
		tx.Rollback()
		return "", fmt.Errorf("txid_current: %w", err)
	}
	from := time.Now()
	err = sleep(ctx, o.heldFor)
	to := time.Now()
	tx.Rollback()
	if err != nil {
		return "", err
	}
	// Let the backlog of the window be handled before counting.
	e.waitDrained(ctx, 30*time.Second)
	offered, handled := e.rates(from, to)
	lastFrom := to.Add(-(to.Sub(from)) / 4)
	lOffered, lHandled := e.rates(lastFrom, to)
	return fmt.Sprintf("transaction held %s: offered %.0f/s, handled %.0f/s (%.0f%%); last quarter %.0f/s of %.0f/s (%.0f%%)",
		o.heldFor, offered, handled, pct(handled, offered), lHandled, lOffered, pct(lHandled, lOffered)), nil
}

// rates are the offered load (messages sent) and the handled rate (first
// handlings) between from and to, in msgs/s.
func (e *env) rates(from, to time.Time) (offered, handled float64) {
	secs := to.Sub(from).Seconds()
	for _, at := range e.sender.sent() {
		if !at.Before(from) && at.Before(to) {
			offered++
		}
	}
	for _, hs := range e.target.snapshot() {
		if at := hs[0].at; !at.Before(from) && at.Before(to) {
			handled++
		}
	}
	return offered / secs, handled / secs
}

func pct(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * a / b
}

// waitFirstHandledSentAfter waits (up to the drain timeout) for a message
// sent after t to be handled, and says how long after t it was.
func (e *env) waitFirstHandledSentAfter(ctx context.Context, t time.Time) (time.Duration, bool) {
	var d time.Duration
	var ok bool
	_ = testkit.Poll(ctx, e.opts.drainTimeout, 50*time.Millisecond, func() bool { d, ok = e.firstHandledSentAfter(t); return ok })
	return d, ok
}
