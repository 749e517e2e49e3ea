package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor"
	"github.com/ferrybus/ferry/metrics"
	"github.com/ferrybus/ferry/queue"
	"github.com/ferrybus/ferry/worker"
	"github.com/jmoiron/sqlx"
	"github.com/spf13/cobra"
)

// benchOptions configure one benchmark run.
type benchOptions struct {
	db        string
	mode      string
	drain     int
	rate      int
	duration  time.Duration
	workers   int
	threads   int
	sendCount int
	bodySize  int
	batch     int
	profile   string
	depth     int
	// checkpoint flushes the preload to disk before the timed part.
	checkpoint bool
	prefetch   int
	// handlerDelay is how long every handler takes; slowWorker multiplies
	// it for the last worker (or endpoint), to measure shares by speed.
	handlerDelay time.Duration
	slowWorker   float64
	// metrics registers what runs with a metrics.Metrics and scrapes it
	// once at the end, to measure what metrics cost.
	metrics bool
	// trace turns tracing on: every span recorded, none exported.
	trace bool
}

// BenchResult is what `ferry bench --json` prints.
type BenchResult struct {
	Mode       string  `json:"mode"`
	Store      string  `json:"store"`
	Workers    int     `json:"workers"`
	Threads    int     `json:"threads"`
	SendCount  int     `json:"distributeSendCount,omitempty"`
	Messages   int     `json:"messages"`
	Depth      int     `json:"depth,omitempty"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"messagesPerSecond"`
	LatencyP50 float64 `json:"latencyP50Ms"`
	LatencyP95 float64 `json:"latencyP95Ms"`
	LatencyP99 float64 `json:"latencyP99Ms"`
	LatencyMax float64 `json:"latencyMaxMs"`
	CPUSeconds float64 `json:"cpuSeconds"`
	PeakRSSMB  float64 `json:"peakRssMB"`
	RoundTrips float64 `json:"roundTripsPerMessage,omitempty"`
	// HandlerDelayMs is every handler's time; SlowWorker names the one
	// whose handler takes SlowFactor times as long.
	HandlerDelayMs float64 `json:"handlerDelayMs,omitempty"`
	SlowWorker     string  `json:"slowWorker,omitempty"`
	SlowFactor     float64 `json:"slowFactor,omitempty"`
	// Shares maps each worker (or direct endpoint) to its fraction of the
	// handled messages.
	Shares map[string]float64 `json:"shares,omitempty"`
	// MetricsBytes is the size of the scrape at the end (--metrics).
	MetricsBytes int `json:"metricsBytes,omitempty"`
	// Traced says every message was traced (--trace).
	Traced bool `json:"traced,omitempty"`
}

func (a *app) benchCmd() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure throughput and latency: raw SQL baseline, direct consumers, or distributor and workers",
		Long: `Measure ferry on PostgreSQL or SQLite with a no-op handler.

  --mode raw          the bare SQL baseline: INSERT, then DELETE … (FOR UPDATE SKIP LOCKED)
                      … RETURNING in batches of --batch, no ferry code in the path
  --mode direct       competing consumers: --workers endpoints of --threads threads on one inbox
  --mode distributed  one distributor and --workers workers of --threads threads

Load: --drain N preloads N messages and times until all are handled; --rate R
--duration D sends R messages per second for D. Latency is from enqueue (sentAt) to
handler start. Workers run in this process. --db defaults to a temporary SQLite
file; a postgres:// database gets a fresh schema, dropped afterwards.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch o.mode {
			case "raw", "direct", "distributed":
			default:
				return usagef("bench: --mode %q: want raw, direct or distributed", o.mode)
			}
			if (o.drain > 0) == (o.rate > 0) {
				return usagef("bench: give either --drain N or --rate R (with --duration)")
			}
			if o.rate > 0 && o.duration <= 0 {
				return usagef("bench: --rate needs --duration")
			}
			if o.rate > 0 && o.mode == "raw" {
				return usagef("bench: --mode raw measures --drain only")
			}
			if o.mode == "raw" && o.trace {
				return usagef("bench: --trace traces endpoints: not with --mode raw")
			}
			if o.slowWorker != 0 && (o.slowWorker < 1 || o.handlerDelay <= 0) {
				return usagef("bench: --slow-worker needs a factor of at least 1 and a --handler-delay")
			}
			if o.workers < 1 || o.threads < 1 || o.sendCount < 1 || o.batch < 1 || o.bodySize < 2 {
				return usagef("bench: --workers, --threads, --send-count, --batch must be at least 1 and --body-size at least 2")
			}
			if o.profile != "" {
				f, err := os.Create(o.profile)
				if err != nil {
					return usagef("bench: --cpuprofile: %v", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			res, err := a.bench(cmd.Context(), o)
			if err != nil {
				return err
			}
			return a.printBench(res)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.db, "db", "", "database: sqlite://PATH or postgres://… (default: a temporary SQLite file)")
	f.StringVar(&o.mode, "mode", "direct", "raw, direct or distributed")
	f.IntVar(&o.drain, "drain", 0, "preload N messages, then time until all are handled")
	f.IntVar(&o.rate, "rate", 0, "send R messages per second (with --duration)")
	f.DurationVar(&o.duration, "duration", 0, "how long to send at --rate")
	f.IntVar(&o.workers, "workers", 2, "endpoints (direct) or workers (distributed)")
	f.IntVar(&o.threads, "threads", 16, "threads per endpoint or worker (raw: consumer goroutines in all)")
	f.IntVar(&o.sendCount, "send-count", 10, "distributeSendCount (distributed)")
	f.IntVar(&o.bodySize, "body-size", 64, "body size in bytes")
	f.IntVar(&o.batch, "batch", 16, "raw: rows per DELETE")
	f.IntVar(&o.prefetch, "prefetch", 0, "inbox prefetch (default: as many as threads; -1: off)")
	f.IntVar(&o.depth, "depth", 0, "with --drain: queue this many more messages behind, and time only the first --drain (does depth slow it down?)")
	f.BoolVar(&o.checkpoint, "checkpoint", false, "with --drain: checkpoint the database after the preload (PostgreSQL CHECKPOINT, SQLite wal_checkpoint), so the timed part does not share the disk with writing the preload out")
	f.DurationVar(&o.handlerDelay, "handler-delay", 0, "how long each handler takes (sleeps)")
	f.Float64Var(&o.slowWorker, "slow-worker", 0, "the last worker's (or endpoint's) handler takes FACTOR times --handler-delay")
	f.BoolVar(&o.metrics, "metrics", false, "collect Prometheus metrics of the endpoints, distributor, workers and store, and scrape them once at the end (compare a run without it: what metrics cost)")
	f.BoolVar(&o.trace, "trace", false, "trace every message (OpenTelemetry, always sampled, exported nowhere), to measure what tracing costs")
	f.StringVar(&o.profile, "cpuprofile", "", "write a CPU profile of this process to FILE (go tool pprof)")
	f.BoolVar(&a.jsonOut, "json", false, "print JSON")
	return cmd
}

func (a *app) printBench(r *BenchResult) error {
	if a.jsonOut {
		return json.NewEncoder(a.stdout).Encode(r)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "mode\t%s\n", r.Mode)
	fmt.Fprintf(tw, "store\t%s\n", r.Store)
	if r.Mode != "raw" {
		fmt.Fprintf(tw, "workers x threads\t%d x %d\n", r.Workers, r.Threads)
	} else {
		fmt.Fprintf(tw, "consumers\t%d\n", r.Threads)
	}
	if r.SendCount > 0 {
		fmt.Fprintf(tw, "distributeSendCount\t%d\n", r.SendCount)
	}
	fmt.Fprintf(tw, "messages\t%d in %.3fs\n", r.Messages, r.Seconds)
	if r.Depth > 0 {
		fmt.Fprintf(tw, "queued behind them\t%d\n", r.Depth)
	}
	fmt.Fprintf(tw, "throughput\t%.0f msg/s\n", r.PerSecond)
	if r.Mode != "raw" {
		fmt.Fprintf(tw, "latency p50 / p95 / p99 / max\t%.2f / %.2f / %.2f / %.2f ms\n", r.LatencyP50, r.LatencyP95, r.LatencyP99, r.LatencyMax)
		fmt.Fprintf(tw, "round trips per message\t%.2f\n", r.RoundTrips)
	}
	if r.HandlerDelayMs > 0 {
		fmt.Fprintf(tw, "handler delay\t%.2f ms\n", r.HandlerDelayMs)
	}
	if r.SlowWorker != "" {
		fmt.Fprintf(tw, "slow worker\t%s (%.1fx)\n", r.SlowWorker, r.SlowFactor)
	}
	if r.Traced {
		fmt.Fprintf(tw, "tracing\ton: every message, always sampled, exported nowhere\n")
	}
	if len(r.Shares) > 0 {
		names := slices.Sorted(maps.Keys(r.Shares))
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = fmt.Sprintf("%s %.3f", n, r.Shares[n])
		}
		fmt.Fprintf(tw, "shares\t%s\n", strings.Join(parts, ", "))
	}
	if r.MetricsBytes > 0 {
		fmt.Fprintf(tw, "metrics scrape\t%d bytes\n", r.MetricsBytes)
	}
	fmt.Fprintf(tw, "CPU\t%.2fs\n", r.CPUSeconds)
	fmt.Fprintf(tw, "peak RSS\t%.1f MB\n", r.PeakRSSMB)
	return tw.Flush()
}

// benchDB prepares the database: a temporary SQLite file, or a fresh
// PostgreSQL schema. It returns the DSN to use and a cleanup.
func benchDB(o benchOptions) (dsn, store string, cleanup func(), err error) {
	switch {
	case o.db == "":
		dir, err := os.MkdirTemp("", "ferry-bench-")
		if err != nil {
			return "", "", nil, err
		}
		return "sqlite://" + filepath.Join(dir, "bench.db"), "sqlite (temporary file)", func() { os.RemoveAll(dir) }, nil
	case strings.HasPrefix(o.db, "sqlite://"):
		return o.db, "sqlite " + strings.TrimPrefix(o.db, "sqlite://"), func() {}, nil
	case strings.HasPrefix(o.db, "postgres://"), strings.HasPrefix(o.db, "postgresql://"):
		u, err := url.Parse(o.db)
		if err != nil {
			return "", "", nil, usagef("bench: --db: %v", err)
		}
		db, err := sql.Open("postgres", o.db)
		if err != nil {
			return "", "", nil, err
		}
		b := make([]byte, 4)
		rand.Read(b)
		schema := "ferry_bench_" + hex.EncodeToString(b)
		if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
			db.Close()
			return "", "", nil, fmt.Errorf("bench: create schema on %s: %w", queue.RedactDSN(o.db), err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String(), "postgres " + u.Host, func() {
			db.Exec("DROP SCHEMA " + schema + " CASCADE")
			db.Close()
		}, nil
	}
	return "", "", nil, usagef("bench: --db %q: want sqlite://PATH or postgres://…", queue.RedactDSN(o.db))
}

// latencies collects enqueue-to-handler-start times.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) percentile(p float64) float64 {
	if len(l.d) == 0 {
		return 0
	}
	i := int(p * float64(len(l.d)-1))
	return float64(l.d[i].Microseconds()) / 1000
}

func (a *app) bench(ctx context.Context, o benchOptions) (*BenchResult, error) {
	dsn, storeName, cleanup, err := benchDB(o)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	log := slog.New(slog.DiscardHandler)
	conns := queue.NewConnections(map[string]string{"default": dsn}, queue.Options{AutoMigrate: true, Logger: log, MaxConns: max(20, o.workers*4)})
	defer conns.Close()
	store, err := conns.Store(ctx, "default")
	if err != nil {
		return nil, err
	}
	inbox, err := store.Queue("bench-inbox")
	if err != nil {
		return nil, err
	}
	body := make([]byte, o.bodySize)
	body[0], body[len(body)-1] = '"', '"'
	for i := 1; i < len(body)-1; i++ {
		body[i] = 'x'
	}
	res := &BenchResult{Mode: o.mode, Store: storeName, Workers: o.workers, Threads: o.threads, Traced: o.trace}
	if o.mode == "raw" {
		return a.benchRaw(ctx, store, o, body, res)
	}
	tp, untrace := benchTracing(o.trace)
	defer untrace()

	var (
		handled atomic.Int64
		lat     latencies
		allDone = make(chan struct{})
		target  = int64(o.drain)
	)
	if o.rate > 0 {
		target = int64(o.rate) * int64(o.duration/time.Second)
		if target == 0 {
			target = int64(float64(o.rate) * o.duration.Seconds())
		}
	}
	var once sync.Once
	// Each worker (or endpoint) handles with its own mux, to count its share.
	names := make([]string, o.workers)
	counts := make([]atomic.Int64, o.workers)
	muxFor := func(i int) *bus.Mux {
		delay := o.handlerDelay
		if o.slowWorker > 0 && i == o.workers-1 {
			delay = time.Duration(float64(delay) * o.slowWorker)
		}
		m := bus.NewMux()
		m.HandleFunc("bench", func(ctx context.Context, m *bus.Message) error {
			lat.add(time.Since(m.SentAt))
			if delay > 0 {
				time.Sleep(delay)
			}
			if i >= 0 {
				counts[i].Add(1)
			}
			if handled.Add(1) == target {
				once.Do(func() { close(allDone) })
			}
			return nil
		})
		return m
	}
	mux := muxFor(-1)
	client, err := bus.New(ctx, conns, bus.Config{Name: "bench-client", Logger: log, TracerProvider: tp}, mux)
	if err != nil {
		return nil, err
	}
	raw := bus.Raw{Type: "bench", ContentType: "application/json", Body: body}
	sendN := func(n int) error {
		bodies := make([]any, n)
		for i := range bodies {
			bodies[i] = raw
		}
		return client.SendBatch(ctx, bodies, bus.To(inbox.URI()))
	}
	if o.drain > 0 {
		total := o.drain + o.depth
		for sent := 0; sent < total; sent += 1000 {
			if err := sendN(min(1000, total-sent)); err != nil {
				return nil, err
			}
		}
		if err := benchCheckpoint(ctx, store, o); err != nil {
			return nil, err
		}
	}

	var stops []func(context.Context) error
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, s := range stops {
			s(sctx)
		}
	}()
	var mets *metrics.Metrics
	if o.metrics {
		mets = metrics.New(nil)
		mets.AddStore(store)
		sctx, stopSampling := context.WithCancel(ctx)
		defer stopSampling()
		mets.SampleQueues(sctx, time.Second, inbox)
	}
	startRT := store.RoundTrips()
	cpu0 := cpuSeconds()
	start := time.Now()
	errq := "sql://default/bench-error"
	switch o.mode {
	case "direct":
		for i := range o.workers {
			names[i] = fmt.Sprintf("direct-%d", i)
			ep, err := bus.New(ctx, conns, bus.Config{Name: names[i], Logger: log, TracerProvider: tp,
				Inbox: &bus.InboxConfig{WorkQueue: inbox.URI(), ErrorQueue: errq, Threads: o.threads, Prefetch: o.prefetch}}, muxFor(i))
			if err != nil {
				return nil, err
			}
			if mets != nil {
				mets.AddEndpoint(ep)
			}
			if err := ep.Start(ctx); err != nil {
				return nil, err
			}
			stops = append(stops, ep.Stop)
		}
	case "distributed":
		res.SendCount = o.sendCount
		for i := range o.workers {
			id := fmt.Sprintf("w%d", i)
			names[i] = id
			w, err := worker.New(ctx, conns, bus.Config{Name: id, Logger: log, TracerProvider: tp,
				Inbox: &bus.InboxConfig{WorkQueue: "sql://default/bench-worker-" + id, ErrorQueue: errq, Threads: o.threads, Prefetch: o.prefetch}},
				muxFor(i), worker.Config{ID: id, DistributorControlQueue: "sql://default/bench-control", AvailabilityInterval: 5 * time.Second})
			if err != nil {
				return nil, err
			}
			if mets != nil {
				mets.AddWorker(w)
			}
			if err := w.Start(ctx); err != nil {
				return nil, err
			}
			stops = append(stops, w.Stop)
		}
		// The distributor starts last, with every worker's announcements
		// waiting in its control inbox: a drain then measures how it shares
		// the inbox, not which worker happened to start first.
		d, err := distributor.New(ctx, conns, distributor.Config{
			Name: "bench", Inbox: bus.InboxConfig{WorkQueue: inbox.URI(), ErrorQueue: errq},
			Distribute: true, DistributeSendCount: o.sendCount,
			ControlInbox: bus.InboxConfig{WorkQueue: "sql://default/bench-control", ErrorQueue: errq},
			Logger:       log, TracerProvider: tp,
		}, nil)
		if err != nil {
			return nil, err
		}
		if mets != nil {
			mets.AddDistributor(d)
		}
		if err := d.Start(ctx); err != nil {
			return nil, err
		}
		stops = append(stops, d.Stop)
	}
	if o.rate > 0 {
		// Steady load: send a small batch every tick so the rate is smooth.
		tick := 10 * time.Millisecond
		perTick := float64(o.rate) * tick.Seconds()
		t := time.NewTicker(tick)
		owed := 0.0
		sent := int64(0)
		start = time.Now()
		for sent < target {
			<-t.C
			owed += perTick
			n := int(owed)
			if n > 0 {
				n = int(min(int64(n), target-sent))
				if err := sendN(n); err != nil {
					t.Stop()
					return nil, err
				}
				owed -= float64(n)
				sent += int64(n)
			}
		}
		t.Stop()
	}
	select {
	case <-allDone:
	case <-time.After(30*time.Minute + o.duration):
		return nil, fmt.Errorf("bench: timed out with %d of %d handled", handled.Load(), target)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	elapsed := time.Since(start)
	res.Messages = int(target)
	res.Depth = o.depth
	res.Seconds = elapsed.Seconds()
	res.PerSecond = float64(target) / elapsed.Seconds()
	if mets != nil {
		// The scrape counts in the run's CPU, as a Prometheus scrape would.
		n, err := scrapeOnce(mets)
		if err != nil {
			return nil, fmt.Errorf("bench: --metrics: %w", err)
		}
		res.MetricsBytes = n
	}
	res.CPUSeconds = cpuSeconds() - cpu0
	res.RoundTrips = float64(store.RoundTrips()-startRT) / float64(target)
	lat.mu.Lock()
	slices.Sort(lat.d)
	res.LatencyP50, res.LatencyP95, res.LatencyP99 = lat.percentile(0.50), lat.percentile(0.95), lat.percentile(0.99)
	res.LatencyMax = lat.percentile(1)
	lat.mu.Unlock()
	res.PeakRSSMB = peakRSSMB()
	if o.handlerDelay > 0 {
		res.HandlerDelayMs = float64(o.handlerDelay.Microseconds()) / 1000
	}
	if o.slowWorker > 0 {
		res.SlowWorker, res.SlowFactor = names[o.workers-1], o.slowWorker
	}
	// Shares of what each handled by now: with --depth, and while the
	// last of the run is acked, that can be more than target.
	res.Shares = map[string]float64{}
	got := make([]int64, len(names))
	var sum int64
	for i := range names {
		got[i] = counts[i].Load()
		sum += got[i]
	}
	for i, n := range names {
		if sum > 0 {
			res.Shares[n] = math.Round(float64(got[i])/float64(sum)*1000) / 1000
		}
	}
	return res, nil
}

// scrapeOnce serves one scrape of m in memory and returns its size.
func scrapeOnce(m *metrics.Metrics) (int, error) {
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		return 0, fmt.Errorf("scrape: status %d: %s", rec.Code, rec.Body.String())
	}
	return rec.Body.Len(), nil
}

// benchCheckpoint writes the preload out to disk when --checkpoint is set.
func benchCheckpoint(ctx context.Context, store queue.Store, o benchOptions) error {
	if !o.checkpoint {
		return nil
	}
	stmt := "CHECKPOINT"
	if store.Dialect() == queue.SQLite {
		stmt = "PRAGMA wal_checkpoint(TRUNCATE)"
	}
	if _, err := store.DB().ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("bench: --checkpoint: %s: %w", stmt, err)
	}
	return nil
}

// benchRaw is the SQL baseline: bare INSERTs, then DELETE … RETURNING in
// batches from --threads goroutines, no ferry code in the path.
func (a *app) benchRaw(ctx context.Context, store queue.Store, o benchOptions, body []byte, res *BenchResult) (*BenchResult, error) {
	db := store.DB()
	rebind := func(q string) string { return sqlx.Rebind(sqlx.QUESTION, q) }
	if store.Dialect() == queue.Postgres {
		rebind = func(q string) string { return sqlx.Rebind(sqlx.DOLLAR, q) }
	}
	now := time.Now().UnixMicro()
	for sent := 0; sent < o.drain; {
		n := min(1000, o.drain-sent)
		var b strings.Builder
		args := make([]any, 0, n*4)
		b.WriteString("INSERT INTO ferry_messages (queue, message_id, visible_at, enqueued_at, body) VALUES ")
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?,?,?,?,?)")
			args = append(args, "raw", fmt.Sprint(sent+i), now, now, body)
		}
		if _, err := db.ExecContext(ctx, rebind(b.String()), args...); err != nil {
			return nil, fmt.Errorf("bench raw: insert: %w", err)
		}
		sent += n
	}
	if err := benchCheckpoint(ctx, store, o); err != nil {
		return nil, err
	}
	lock := ""
	if store.Dialect() == queue.Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	del := rebind(`DELETE FROM ferry_messages WHERE id IN (SELECT id FROM ferry_messages WHERE queue = ? AND visible_at <= ?
ORDER BY priority DESC, id LIMIT ?` + lock + `) RETURNING id, message_id, body`)
	var done atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	cpu0 := cpuSeconds()
	start := time.Now()
	for range o.threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done.Load() < int64(o.drain) {
				rows, err := db.QueryContext(ctx, del, "raw", time.Now().UnixMicro(), o.batch)
				if err != nil {
					if strings.Contains(err.Error(), "locked") || strings.Contains(err.Error(), "busy") {
						continue
					}
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n := 0
				for rows.Next() {
					var id int64
					var mid string
					var b []byte
					rows.Scan(&id, &mid, &b)
					n++
				}
				rows.Close()
				done.Add(int64(n))
				if n == 0 && done.Load() < int64(o.drain) {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return nil, fmt.Errorf("bench raw: delete: %w", err)
	}
	elapsed := time.Since(start)
	res.Workers = 0
	res.Messages = o.drain
	res.Seconds = elapsed.Seconds()
	res.PerSecond = float64(o.drain) / elapsed.Seconds()
	res.CPUSeconds = cpuSeconds() - cpu0
	res.PeakRSSMB = peakRSSMB()
	return res, nil
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func peakRSSMB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024 // kilobytes on Linux
}
