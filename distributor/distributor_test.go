package distributor_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor"
	"github.com/ferrybus/ferry/internal/role"
	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
	"github.com/ferrybus/ferry/worker"
)

const (
	inboxURI   = "sql://default/server-inbox-work"
	controlURI = "sql://default/control-inbox-work"
	errorURI   = "sql://default/error"
)

type Job struct {
	N int `json:"n"`
}

var quiet = slog.New(slog.DiscardHandler)

func forEachStore(t *testing.T, fn func(t *testing.T, conns *queue.Connections)) {
	for _, d := range testdb.Dialects() {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			conns := queue.NewConnections(map[string]string{"default": testdb.DSN(t, d)},
				queue.Options{AutoMigrate: true, MaxPoll: 50 * time.Millisecond, Logger: quiet})
			t.Cleanup(func() { conns.Close() })
			fn(t, conns)
		})
	}
}

// tally records which worker handled which job, and how often.
type tally struct {
	mu       sync.Mutex
	byJob    map[int]int
	byWorker map[string]int
}

func newTally() *tally { return &tally{byJob: map[int]int{}, byWorker: map[string]int{}} }

func (t *tally) add(workerID string, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.byJob[n]++
	t.byWorker[workerID]++
}

func (t *tally) distinct() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byJob)
}

func (t *tally) snapshot() (map[int]int, map[string]int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a, b := map[int]int{}, map[string]int{}
	for k, v := range t.byJob {
		a[k] = v
	}
	for k, v := range t.byWorker {
		b[k] = v
	}
	return a, b
}

type cluster struct {
	t     *testing.T
	conns *queue.Connections
	dist  *distributor.Distributor
}

func newDistributor(t *testing.T, conns *queue.Connections, cfg distributor.Config, mux *bus.Mux) *distributor.Distributor {
	t.Helper()
	ctx := context.Background()
	if cfg.Name == "" {
		cfg.Name = "server"
	}
	if cfg.Inbox.WorkQueue == "" {
		cfg.Inbox = bus.InboxConfig{WorkQueue: inboxURI, ErrorQueue: errorURI, Threads: 2}
	}
	cfg.ControlInbox = bus.InboxConfig{WorkQueue: controlURI, ErrorQueue: errorURI}
	if cfg.LockTTL == 0 {
		cfg.LockTTL = 3 * time.Second
	}
	cfg.Logger = quiet
	d, err := distributor.New(ctx, conns, cfg, mux)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d.Stop(ctx)
	})
	return d
}

type workerOpts struct {
	threads  int
	interval time.Duration
	lease    time.Duration
	work     func(ctx context.Context, id string, j Job) error
	// attempt, when set, sees each job's delivery count.
	attempt func(n, attempt int)
}

// testWorker is a started worker that a test can crash.
type testWorker struct {
	*worker.Worker
	hooks *role.Hooks
}

// Abandon crashes the worker: no Stopping, its messages stay leased.
func (w testWorker) Abandon() { w.hooks.Abandon() }

func startWorker(t *testing.T, conns *queue.Connections, id string, o workerOpts) testWorker {
	t.Helper()
	ctx := context.Background()
	mux := bus.NewMux()
	bus.Handle(mux, "job", func(ctx context.Context, m *bus.Message, j Job) error {
		if o.attempt != nil {
			o.attempt(j.N, m.Attempt)
		}
		return o.work(ctx, id, j)
	})
	if o.interval == 0 {
		o.interval = 200 * time.Millisecond
	}
	hooks := &role.Hooks{}
	w, err := worker.New(ctx, conns, bus.Config{
		Name:   id,
		Logger: quiet,
		Role:   hooks,
		Inbox: &bus.InboxConfig{WorkQueue: "sql://default/worker-" + id + "-work", ErrorQueue: errorURI,
			Threads: o.threads, Lease: o.lease},
	}, mux, worker.Config{ID: id, DistributorControlQueue: controlURI, AvailabilityInterval: o.interval})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		w.Stop(ctx)
	})
	return testWorker{w, hooks}
}

func sendJobs(t *testing.T, conns *queue.Connections, from, to int) {
	t.Helper()
	ctx := context.Background()
	mux := bus.NewMux()
	bus.RegisterType[Job](mux, "job")
	client, err := bus.New(ctx, conns, bus.Config{Name: "client", Logger: quiet,
		Routes: []bus.Route{{Types: []string{"job"}, Queue: inboxURI}}}, mux)
	if err != nil {
		t.Fatal(err)
	}
	for n := from; n < to; n++ {
		if err := client.Send(ctx, Job{N: n}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEveryMessageOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		d := newDistributor(t, conns, distributor.Config{Distribute: true, DistributeSendCount: 5}, nil)
		got := newTally()
		work := func(ctx context.Context, id string, j Job) error {
			time.Sleep(5 * time.Millisecond) // equal workers: each thread takes the same time per job
			got.add(id, j.N)
			return nil
		}
		ids := []string{"w1", "w2", "w3"}
		for _, id := range ids {
			startWorker(t, conns, id, workerOpts{threads: 4, work: work})
		}
		const total = 1800
		sendJobs(t, conns, 0, total)
		testkit.Eventually(t, 60*time.Second, "every job handled", func() bool { return got.distinct() == total })
		testkit.Eventually(t, 5*time.Second, "queues drained", func() bool {
			return testkit.Count(t, conns, inboxURI).Total() == 0
		})
		byJob, _ := got.snapshot()
		for n, c := range byJob {
			if c != 1 {
				t.Errorf("job %d handled %d times", n, c)
			}
		}
		// Shares are not asserted: timing does not guarantee them (a loaded
		// machine can starve one worker's threads for a while). ferry bench
		// measures them; BENCHMARKS.md has the figures.
		// The counter moves just after the messages do.
		testkit.Eventually(t, 5*time.Second, fmt.Sprintf("%d counted as distributed", total), func() bool {
			return d.Stats().Distributed == total
		})
		// At rest the registry holds exactly one availability per idle thread.
		testkit.Eventually(t, 5*time.Second, "one availability per idle thread", func() bool {
			r := d.Registry()
			return r.Available["w1"] == 4 && r.Available["w2"] == 4 && r.Available["w3"] == 4
		})
		for id, threads := range d.Registry().Threads {
			seen := map[int]bool{}
			for _, th := range threads {
				if seen[th] {
					t.Errorf("worker %s thread %d registered twice: %v", id, th, threads)
				}
				seen[th] = true
			}
		}
	})
}

func TestDeadWorkerIsReclaimed(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		d := newDistributor(t, conns, distributor.Config{Distribute: true, DistributeSendCount: 5, ReclaimAfter: 500 * time.Millisecond}, nil)
		got := newTally()
		hang := make(chan struct{})
		defer close(hang)
		work := func(ctx context.Context, id string, j Job) error {
			if id == "dead" {
				select { // a worker that stops making progress, then dies
				case <-hang:
				case <-ctx.Done():
				}
				return ctx.Err()
			}
			got.add(id, j.N)
			return nil
		}
		const total = 40
		sendJobs(t, conns, 0, total) // all queued before any availability: each takes a full 5
		dead := startWorker(t, conns, "dead", workerOpts{threads: 2, lease: time.Second, work: work})
		// Its two threads take 5 jobs each: 2 in its hands, 8 waiting in its queue.
		testkit.Eventually(t, 5*time.Second, "jobs stranded in the doomed worker's queue", func() bool {
			return testkit.Count(t, conns, "sql://default/worker-dead-work").Total() == 10
		})
		dead.Abandon() // dies without WorkerStopping
		startWorker(t, conns, "w1", workerOpts{threads: 2, work: work})
		startWorker(t, conns, "w2", workerOpts{threads: 2, work: work})

		testkit.Eventually(t, 20*time.Second, "every job handled by the live workers", func() bool { return got.distinct() == total })
		_, byWorker := got.snapshot()
		if byWorker["dead"] != 0 {
			t.Errorf("the dead worker handled %d", byWorker["dead"])
		}
		if r := d.Registry(); r.Available["dead"] != 0 {
			t.Errorf("the dead worker still has %d availabilities", r.Available["dead"])
		}
		// The counter moves just after the messages do.
		testkit.Eventually(t, 5*time.Second, "at least the 10 stranded messages counted as reclaimed", func() bool {
			return d.Stats().Reclaimed >= 10
		})
		testkit.Eventually(t, 5*time.Second, "the dead worker's queue emptied", func() bool {
			return testkit.Count(t, conns, "sql://default/worker-dead-work").Total() == 0
		})
	})
}

func TestNewSessionReplacesOldAvailability(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		d := newDistributor(t, conns, distributor.Config{Distribute: true}, nil)
		noop := func(context.Context, string, Job) error { return nil }
		// A long interval: expiry cannot explain what follows.
		first := startWorker(t, conns, "w1", workerOpts{threads: 4, interval: time.Minute, work: noop})
		testkit.Eventually(t, 5*time.Second, "four availabilities", func() bool { return d.Registry().Available["w1"] == 4 })
		first.Abandon() // crash: its four availabilities are still registered
		second := startWorker(t, conns, "w1", workerOpts{threads: 2, interval: time.Minute, work: noop})
		testkit.Eventually(t, 5*time.Second, "the new session's two availabilities only", func() bool {
			r := d.Registry()
			return r.Workers["w1"] == second.Session() && r.Available["w1"] == 2
		})
		if first.Session() >= second.Session() {
			t.Errorf("sessions do not sort by start: %s then %s", first.Session(), second.Session())
		}
	})
}

func TestAvailabilityExpires(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		d := newDistributor(t, conns, distributor.Config{Distribute: true}, nil)
		noop := func(context.Context, string, Job) error { return nil }
		w := startWorker(t, conns, "w1", workerOpts{threads: 3, interval: 100 * time.Millisecond, work: noop})
		testkit.Eventually(t, 5*time.Second, "three availabilities", func() bool { return d.Registry().Available["w1"] == 3 })
		w.Abandon()
		abandoned := time.Now()
		// Not renewed, they lapse after ValidFor (3 intervals of 100ms). The
		// registry may also read 0 while the loop holds them, so wait for
		// the time to pass too.
		testkit.Eventually(t, 5*time.Second, "availabilities expired", func() bool {
			return d.Registry().Available["w1"] == 0 && time.Since(abandoned) > 400*time.Millisecond
		})
		sendJobs(t, conns, 0, 3)
		time.Sleep(200 * time.Millisecond) // give a wrong distributor the chance to send
		if c := testkit.Count(t, conns, "sql://default/worker-w1-work"); c.Total() != 0 {
			t.Errorf("a dead worker received %d messages", c.Total())
		}
	})
}

func TestLocalHandlingWithoutWorkers(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		got := newTally()
		mux := bus.NewMux()
		bus.Handle(mux, "job", func(ctx context.Context, m *bus.Message, j Job) error {
			got.add("local", j.N)
			return nil
		})
		d := newDistributor(t, conns, distributor.Config{Distribute: false}, mux)
		testkit.Eventually(t, 5*time.Second, "the distributor active", d.Active)
		sendJobs(t, conns, 0, 10)
		testkit.Eventually(t, 5*time.Second, "local handling", func() bool { return got.distinct() == 10 })

		work := func(ctx context.Context, id string, j Job) error { got.add(id, j.N); return nil }
		startWorker(t, conns, "w1", workerOpts{threads: 2, work: work})
		testkit.Eventually(t, 5*time.Second, "the worker's availability", func() bool { return d.Registry().Available["w1"] > 0 })
		sendJobs(t, conns, 10, 20)
		testkit.Eventually(t, 5*time.Second, "all handled", func() bool { return got.distinct() == 20 })
		_, byWorker := got.snapshot()
		if byWorker["w1"] == 0 {
			t.Errorf("with a worker available nothing was distributed: %v", byWorker)
		}
		if byWorker["local"] < 10 {
			t.Errorf("local handling %d, want the first 10", byWorker["local"])
		}
	})
}

func TestDistributedHeaderAndStoppingReturnsQueue(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		newDistributor(t, conns, distributor.Config{Distribute: true, DistributeSendCount: 10}, nil)
		release := make(chan struct{})
		var mu sync.Mutex
		headers := map[string]string{}
		work := func(ctx context.Context, id string, j Job) error {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
			return nil
		}
		mux := bus.NewMux()
		bus.Handle(mux, "job", func(ctx context.Context, m *bus.Message, j Job) error {
			mu.Lock()
			headers[fmt.Sprint(j.N)] = m.Headers[distributor.HeaderDistributedTo]
			mu.Unlock()
			return work(ctx, "w1", j)
		})
		ctx := context.Background()
		sendJobs(t, conns, 0, 10) // queued before the availability: it takes all ten
		w, err := worker.New(ctx, conns, bus.Config{Name: "w1", Logger: quiet,
			Inbox: &bus.InboxConfig{WorkQueue: "sql://default/worker-w1-work", ErrorQueue: errorURI, Threads: 1}},
			mux, worker.Config{ID: "w1", DistributorControlQueue: controlURI, AvailabilityInterval: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Start(ctx); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 5*time.Second, "ten jobs at the worker", func() bool {
			return testkit.Count(t, conns, "sql://default/worker-w1-work").Total() == 10
		})
		testkit.Eventually(t, 5*time.Second, "a job in the handler", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(headers) > 0
		})
		stopCtx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		w.Stop(stopCtx) // the busy handler is cut short; WorkerStopping follows
		testkit.Eventually(t, 5*time.Second, "the stopped worker's queue returned", func() bool {
			return testkit.Count(t, conns, "sql://default/worker-w1-work").Total() == 0 && testkit.Count(t, conns, inboxURI).Total() == 10
		})
		close(release)
		mu.Lock()
		defer mu.Unlock()
		for n, h := range headers {
			if h != "sql://default/worker-w1-work" {
				t.Errorf("job %s: %s = %q", n, distributor.HeaderDistributedTo, h)
			}
		}
		if len(headers) == 0 {
			t.Error("no job reached the handler")
		}
	})
}

func TestStandbyDistributor(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		a := newDistributor(t, conns, distributor.Config{Name: "a", Distribute: true, LockTTL: 300 * time.Millisecond}, nil)
		testkit.Eventually(t, 5*time.Second, "a active", a.Active)
		b := newDistributor(t, conns, distributor.Config{Name: "b", Distribute: true, LockTTL: 300 * time.Millisecond}, nil)
		time.Sleep(400 * time.Millisecond) // longer than the lock TTL: b must still wait
		if b.Active() {
			t.Fatal("two distributors active on one control inbox")
		}
		if err := a.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 5*time.Second, "the standby takes over", b.Active)
		got := newTally()
		startWorker(t, conns, "w1", workerOpts{threads: 2, work: func(ctx context.Context, id string, j Job) error { got.add(id, j.N); return nil }})
		sendJobs(t, conns, 0, 20)
		testkit.Eventually(t, 10*time.Second, "jobs handled through the standby", func() bool { return got.distinct() == 20 })
	})
}

func TestFailedDistributedMessageReturnsToDistributor(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		newDistributor(t, conns, distributor.Config{Distribute: true}, nil)
		startWorker(t, conns, "w1", workerOpts{threads: 1, work: func(context.Context, string, Job) error {
			return bus.Permanent(errors.New("no such customer"))
		}})
		sendJobs(t, conns, 0, 1)
		testkit.Eventually(t, 10*time.Second, "the failed job in the error queue", func() bool { return testkit.Count(t, conns, errorURI).Total() == 1 })
		eq, err := bus.OpenErrorQueue(ctx, conns, errorURI)
		if err != nil {
			t.Fatal(err)
		}
		page, err := eq.List(ctx, bus.ListOptions{})
		if err != nil || len(page.Messages) != 1 {
			t.Fatalf("list: %v %+v", err, page)
		}
		if src := page.Messages[0].SourceQueue; src != inboxURI {
			t.Errorf("source queue %q, want the distributor's inbox %q (the worker's queue may be gone when it is retried)", src, inboxURI)
		}
		if n, err := eq.Retry(ctx, bus.Filter{}, bus.RetryOptions{}); err != nil || n != 1 {
			t.Fatalf("retry: %d %v", n, err)
		}
		testkit.Eventually(t, 10*time.Second, "the retried job parked again after going round", func() bool {
			return testkit.Count(t, conns, errorURI).Total() == 1 && testkit.Count(t, conns, inboxURI).Total() == 0
		})
	})
}

// A worker that dies while its distributor is down is reclaimed by the next
// distributor, which never heard from it: the session is recorded in SQL.
func TestNewDistributorReclaimsWorkerItNeverSaw(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		first := newDistributor(t, conns, distributor.Config{Name: "first", Distribute: true, DistributeSendCount: 5, ReclaimAfter: time.Hour}, nil)
		got := newTally()
		hang := make(chan struct{})
		defer close(hang)
		work := func(ctx context.Context, id string, j Job) error {
			if id == "doomed" {
				select {
				case <-hang:
				case <-ctx.Done():
				}
				return ctx.Err()
			}
			got.add(id, j.N)
			return nil
		}
		const total = 20
		sendJobs(t, conns, 0, total)
		doomed := startWorker(t, conns, "doomed", workerOpts{threads: 2, lease: time.Second, work: work})
		testkit.Eventually(t, 5*time.Second, "jobs in the doomed worker's queue", func() bool {
			return testkit.Count(t, conns, "sql://default/worker-doomed-work").Total() == 10
		})
		if err := first.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		doomed.Abandon() // dies while no distributor runs
		second := newDistributor(t, conns, distributor.Config{Name: "second", Distribute: true, DistributeSendCount: 5, ReclaimAfter: 500 * time.Millisecond}, nil)
		testkit.Eventually(t, 5*time.Second, "the second distributor active", second.Active)
		startWorker(t, conns, "w1", workerOpts{threads: 2, work: work})
		testkit.Eventually(t, 20*time.Second, "every job handled by the live worker", func() bool { return got.distinct() == total })
		testkit.Eventually(t, 5*time.Second, "the new distributor counting the 10 stranded as reclaimed", func() bool {
			return second.Stats().Reclaimed >= 10
		})
	})
}
