package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/logging"
	"github.com/ferrybus/ferry/queue"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

// demoOptions size the demo.
type demoOptions struct {
	messages, workers, threads, sendCount int
	keep                                  bool
}

func (a *app) demoCmd() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a distributor and three workers as processes on a temporary SQLite file, send 10,000 messages, show the result",
		Long: `Run a whole cluster with no setup: one distributor and --workers worker processes of
this binary on a SQLite file in a temporary folder, with http handlers posting to a
target served by the demo itself. The target fails some first attempts (to show
retries) and rejects a few messages (to show the error queue). When every message
is handled or parked the demo prints a summary and stops every process with SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.messages < 1 || o.workers < 1 || o.threads < 1 || o.sendCount < 1 {
				return usagef("demo: --messages, --workers, --threads and --send-count must be at least 1")
			}
			return a.demo(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.messages, "messages", 10000, "messages to send")
	f.IntVar(&o.workers, "workers", 3, "worker processes")
	f.IntVar(&o.threads, "threads", 8, "threads per worker")
	f.IntVar(&o.sendCount, "send-count", 10, "distributeSendCount")
	f.BoolVar(&o.keep, "keep", false, "keep the temporary folder (database, config, logs)")
	return cmd
}

// demoTarget is the HTTP target of the demo's workers.
type demoTarget struct {
	mu        sync.Mutex
	handled   map[string]bool // message id -> handled (2xx)
	byWorker  map[string]int
	retried   int // requests after a first attempt
	rejected  map[string]bool
	firstSeen time.Time
	lastDone  time.Time
}

// ServeHTTP fails the first attempt of every 500th message and rejects every
// 2,000th (by the n in its body), so retries and the error queue show.
func (t *demoTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		N int `json:"n"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	attempt, _ := strconv.Atoi(r.Header.Get("Ferry-Attempt"))
	id := r.Header.Get("Ferry-Message-Id")
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if t.firstSeen.IsZero() {
		t.firstSeen = now
	}
	if attempt > 1 {
		t.retried++
	}
	switch {
	case body.N%2000 == 1999:
		t.rejected[id] = true
		t.lastDone = now
		http.Error(w, fmt.Sprintf("order %d rejected: customer unknown", body.N), http.StatusUnprocessableEntity)
	case body.N%500 == 7 && attempt <= 1:
		http.Error(w, "inventory service briefly unavailable", http.StatusServiceUnavailable)
	default:
		if !t.handled[id] {
			t.handled[id] = true
			t.byWorker[r.Header.Get("Ferry-Endpoint")]++
		}
		t.lastDone = now
		w.WriteHeader(http.StatusNoContent)
	}
}

func (t *demoTarget) progress() (handled, rejected int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.handled), len(t.rejected)
}

func (a *app) demo(ctx context.Context, o demoOptions) error {
	dir, err := os.MkdirTemp("", "ferry-demo-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintf(a.stdout, "demo folder: %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if err := a.checkLogFlags(); err != nil {
		return err
	}
	log, err := logging.New(a.stderr, "warn", a.logFormat)
	if err != nil {
		return usageError{err}
	}

	target := &demoTarget{handled: map[string]bool{}, byWorker: map[string]int{}, rejected: map[string]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: listen: %w", err)
	}
	srv := &http.Server{Handler: target, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	cfgPath := filepath.Join(dir, "config.json")
	dbPath := filepath.Join(dir, "ferry.db")
	cfg := map[string]any{
		"connections": map[string]string{"default": "sqlite://" + dbPath},
		"endpoints": map[string]any{
			"distributor": map[string]any{
				"inbox": map[string]any{"workQueue": "sql://default/server-inbox-work", "errorQueue": "sql://default/error",
					"distribute": true, "distributeSendCount": o.sendCount},
				"controlInbox": map[string]any{"workQueue": "sql://default/control-inbox-work", "errorQueue": "sql://default/error"},
				"reclaimAfter": "10s",
			},
			"worker": map[string]any{
				"inbox": map[string]any{"workQueue": "sql://default/worker-{id}-work", "errorQueue": "sql://default/error",
					"threads": o.threads, "retry": map[string]any{"maxAttempts": 3, "backoff": []string{"200ms", "1s"}}},
				"worker":   map[string]any{"distributorControlQueue": "sql://default/control-inbox-work", "availabilityInterval": "2s"},
				"handlers": []any{map[string]any{"type": "*", "http": map[string]any{"urls": []string{"http://" + ln.Addr().String() + "/orders"}, "timeout": "10s"}}},
			},
		},
		"routes": []any{map[string]any{"types": []string{"*"}, "queue": "sql://default/server-inbox-work"}},
		"log":    map[string]any{"level": "info", "format": "json"},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		return err
	}

	// Migrate once before the processes start, so they do not race to.
	conns := queue.NewConnections(map[string]string{"default": "sqlite://" + dbPath}, queue.Options{AutoMigrate: true, Logger: log})
	defer conns.Close()
	inbox, err := conns.Queue(ctx, "sql://default/server-inbox-work")
	if err != nil {
		return err
	}

	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("demo: find own binary: %w", err)
	}
	var procs []*demoProc
	defer func() {
		for _, p := range procs {
			p.kill()
		}
	}()
	start := func(name string, args ...string) error {
		logf, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			return err
		}
		cmd := exec.Command(self, append([]string{"run", "-c", cfgPath}, args...)...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return fmt.Errorf("demo: start %s: %w", name, err)
		}
		p := &demoProc{name: name, cmd: cmd, log: logf, done: make(chan error, 1)}
		go func() { p.done <- cmd.Wait() }()
		procs = append(procs, p)
		return nil
	}
	if err := start("distributor", "distributor"); err != nil {
		return err
	}
	for i := 1; i <= o.workers; i++ {
		id := fmt.Sprintf("w%d", i)
		if err := start(id, "worker", "--id", id); err != nil {
			return err
		}
	}
	fmt.Fprintf(a.stdout, "started 1 distributor and %d workers (%d threads each) on %s\n", o.workers, o.threads, dbPath)

	// Send the orders in batches.
	mux := bus.NewMux()
	client, err := bus.New(ctx, conns, bus.Config{Name: "demo", Logger: log, Routes: []bus.Route{{Types: []string{"*"}, Queue: inbox.URI()}}}, mux)
	if err != nil {
		return err
	}
	sendStart := time.Now()
	for sent := 0; sent < o.messages; {
		n := min(1000, o.messages-sent)
		bodies := make([]any, n)
		for i := range bodies {
			bodies[i] = bus.Raw{Type: "orders.placed", ContentType: "application/json",
				Body: fmt.Appendf(nil, `{"n":%d,"sku":"SKU-%03d","qty":%d}`, sent+i, (sent+i)%997, 1+(sent+i)%5)}
		}
		if err := client.SendBatch(ctx, bodies); err != nil {
			return err
		}
		sent += n
	}
	fmt.Fprintf(a.stdout, "sent %d messages in %s\n", o.messages, time.Since(sendStart).Round(time.Millisecond))

	bar := progressbar.NewOptions(o.messages,
		progressbar.OptionSetWriter(a.stderr),
		progressbar.OptionSetDescription("handling"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("msg"),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetVisibility(isTerminal(a.stderr)),
	)
	deadline := time.Now().Add(5 * time.Minute)
	lastLine := time.Now()
	for {
		handled, rejected := target.progress()
		_ = bar.Set(handled + rejected)
		if handled+rejected >= o.messages {
			break
		}
		for _, p := range procs {
			select {
			case err := <-p.done:
				p.exited = true
				return fmt.Errorf("demo: %s exited early (%v); see %s", p.name, err, p.log.Name())
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: timed out with %d of %d messages done; logs in %s (kept)", handled+rejected, o.messages, dir)
		}
		if !isTerminal(a.stderr) && time.Since(lastLine) >= 2*time.Second {
			fmt.Fprintf(a.stderr, "handling: %d/%d\n", handled+rejected, o.messages)
			lastLine = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	_ = bar.Finish()
	fmt.Fprintln(a.stderr)

	// Wait until the rejected messages have reached the error queue.
	errq, err := conns.Queue(ctx, "sql://default/error")
	if err != nil {
		return err
	}
	_, rejected := target.progress()
	var parked queue.Counts
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if parked, err = errq.Count(ctx); err == nil && parked.Total() >= int64(rejected) {
			break
		}
	}

	// Stop everything with SIGTERM, as an operator would.
	stopStart := time.Now()
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	var stopErrs []error
	for _, p := range procs {
		select {
		case err := <-p.done:
			p.exited = true
			if err != nil {
				stopErrs = append(stopErrs, fmt.Errorf("%s: %v (see %s)", p.name, err, p.log.Name()))
			}
		case <-time.After(30 * time.Second):
			stopErrs = append(stopErrs, fmt.Errorf("%s did not stop within 30s", p.name))
		}
	}
	a.demoSummary(ctx, target, conns, o, parked)
	fmt.Fprintf(a.stdout, "stopped %d processes with SIGTERM in %s\n", len(procs), time.Since(stopStart).Round(time.Millisecond))
	return errors.Join(stopErrs...)
}

func (a *app) demoSummary(ctx context.Context, t *demoTarget, conns *queue.Connections, o demoOptions, parked queue.Counts) {
	t.mu.Lock()
	defer t.mu.Unlock()
	elapsed := t.lastDone.Sub(t.firstSeen)
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\nWORKER\tHANDLED\tSHARE\t")
	var ids []string
	for id := range t.byWorker {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Fprintf(tw, "%s\t%d\t%.1f%%\t\n", id, t.byWorker[id], 100*float64(t.byWorker[id])/float64(len(t.handled)))
	}
	tw.Flush()
	fmt.Fprintf(a.stdout, "\nhandled      %d of %d messages in %s (%.0f msg/s)\n", len(t.handled), o.messages, elapsed.Round(time.Millisecond), float64(len(t.handled)+len(t.rejected))/elapsed.Seconds())
	fmt.Fprintf(a.stdout, "retried      %d attempts (first attempts failed with 503, handled on retry)\n", t.retried)
	fmt.Fprintf(a.stdout, "error queue  %d messages (rejected with 422: permanent; see 'ferry errors ls')\n", parked.Total())
	if s, err := conns.Store(ctx, "default"); err == nil {
		if qs, err := s.Queues(ctx); err == nil {
			left := int64(0)
			for _, q := range qs {
				if q.Name != "error" && q.Name != "control-inbox-work" {
					left += q.Total()
				}
			}
			fmt.Fprintf(a.stdout, "left queued  %d messages outside the error queue\n", left)
		}
	}
}

// demoProc is a child process of the demo.
type demoProc struct {
	name   string
	cmd    *exec.Cmd
	log    *os.File
	done   chan error
	exited bool
}

func (p *demoProc) kill() {
	if !p.exited {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.log.Close()
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
