package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
	_ "github.com/mattn/go-sqlite3" // the SQLite driver for the suite's own checks
)

// handling is one call of the target's handler for a message.
type handling struct {
	worker  string
	attempt int
	at      time.Time
}

// target is the HTTP handler every worker posts to. It records every call:
// which message (the n in its body), which worker, which Ferry-Attempt, when.
type target struct {
	mu    sync.Mutex
	seen  map[int][]handling
	delay time.Duration
}

func newTarget(delay time.Duration) *target { return &target{seen: map[int][]handling{}, delay: delay} }

// ServeHTTP records the call as soon as it arrives (the handler has started),
// then answers 204 after a short delay, so that a kill -9 can catch handlers
// in flight.
func (t *target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		N *int `json:"n"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.N == nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	attempt, _ := strconv.Atoi(r.Header.Get("Ferry-Attempt"))
	h := handling{worker: r.Header.Get("Ferry-Endpoint"), attempt: attempt, at: time.Now()}
	t.mu.Lock()
	t.seen[*body.N] = append(t.seen[*body.N], h)
	t.mu.Unlock()
	if t.delay > 0 {
		time.Sleep(t.delay)
	}
	w.WriteHeader(http.StatusNoContent)
}

// snapshot copies the record.
func (t *target) snapshot() map[int][]handling {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[int][]handling, len(t.seen))
	for n, hs := range t.seen {
		out[n] = append([]handling(nil), hs...)
	}
	return out
}

// firstAt is when message n was first handled.
func (t *target) firstAt(n int) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	hs := t.seen[n]
	if len(hs) == 0 {
		return time.Time{}, false
	}
	return hs[0].at, true
}

// sender offers messages at a steady rate. Each message's body carries its
// number n; sentAt[n] is taken before the batch's INSERT. A batch whose send
// failed is "uncertain" (its commit may or may not have happened): it is
// not counted as sent, and not as lost either.
type sender struct {
	mu        sync.Mutex
	sentAt    []time.Time // by n; zero: not sent (or uncertain)
	uncertain map[int]bool
	failures  int
	lastErr   error
	stopped   time.Time
}

// run sends at rate msgs/s for d, in batches every 50 ms. Slots of a failed
// batch are not made up later, so an outage does not end in a burst.
func (s *sender) run(ctx context.Context, client *bus.Endpoint, rate int, d time.Duration) {
	s.mu.Lock()
	if s.uncertain == nil {
		s.uncertain = map[int]bool{}
	}
	s.mu.Unlock()
	start := time.Now()
	attempted := 0
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		elapsed := time.Since(start)
		if elapsed > d {
			elapsed = d
		}
		due := int(float64(rate)*elapsed.Seconds()) - attempted
		for due > 0 && ctx.Err() == nil {
			n := min(due, 500)
			s.sendBatch(ctx, client, attempted, n)
			attempted += n
			due -= n
		}
		if elapsed >= d || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	s.mu.Lock()
	s.stopped = time.Now()
	s.mu.Unlock()
}

func (s *sender) sendBatch(ctx context.Context, client *bus.Endpoint, from, n int) {
	bodies := make([]any, n)
	for i := range bodies {
		bodies[i] = bus.Raw{Type: "chaos.msg", ContentType: "application/json", Body: fmt.Appendf(nil, `{"n":%d}`, from+i)}
	}
	at := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := client.SendBatch(sctx, bodies)
	cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.sentAt) < from+n {
		s.sentAt = append(s.sentAt, time.Time{})
	}
	for i := from; i < from+n; i++ {
		if err != nil {
			s.uncertain[i] = true
		} else {
			s.sentAt[i] = at
		}
	}
	if err != nil {
		s.failures++
		s.lastErr = err
	}
}

// sent lists the numbers of the messages surely sent, with their send times.
func (s *sender) sent() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.sentAt...)
}

// proc is one incarnation of a ferry process.
type proc struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
	stopped bool // the suite signalled it
}

// event is a kill -9 the suite made, for explaining duplicates: from the
// signal to the moment the process was seen dead.
type event struct {
	proc     string
	at, dead time.Time
}

// env is one scenario's running cluster of ferry processes.
type env struct {
	opts    *options
	log     *slog.Logger
	dir     string
	cfgPath string
	dsn     string
	pg      bool
	cl      *cluster // the throwaway cluster, nil on SQLite
	target  *target
	sender  *sender
	conns   *queue.Connections
	client  *bus.Endpoint
	srv     *http.Server
	win     time.Duration // the load window

	mu     sync.Mutex
	procs  map[string]*proc // current incarnation per name
	all    []*proc
	kills  []event // kill -9
	faults [][2]time.Time
}

// start runs "ferry run" with args under the name; its output goes to
// name.log in the scenario's folder.
func (e *env) start(name string, args ...string) error {
	logf, err := os.OpenFile(filepath.Join(e.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(e.opts.ferry, append([]string{"run", "-c", e.cfgPath, "--stop-timeout", "10s"}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A suite killed with SIGKILL cannot stop its processes: the kernel does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	e.mu.Lock()
	e.procs[name] = p
	e.all = append(e.all, p)
	e.mu.Unlock()
	return nil
}

func (e *env) proc(name string) *proc {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.procs[name]
}

// kill9 kills the current incarnation of name with SIGKILL and waits for it.
func (e *env) kill9(name string) error {
	p := e.proc(name)
	if p == nil {
		return fmt.Errorf("kill %s: not started", name)
	}
	e.markStopped(p)
	at := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill -9 %s (pid %d): %w", name, p.cmd.Process.Pid, err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("kill -9 %s (pid %d): still running after 10s", name, p.cmd.Process.Pid)
	}
	e.mu.Lock()
	e.kills = append(e.kills, event{proc: name, at: at, dead: time.Now()})
	e.mu.Unlock()
	return nil
}

// term stops every running process with SIGTERM at once and waits for them
// (up to their stop timeout and a margin); one still running is killed.
func (e *env) termAll() (time.Duration, error) {
	e.mu.Lock()
	var ps []*proc
	for _, p := range e.procs {
		select {
		case <-p.done:
		default:
			ps = append(ps, p)
		}
	}
	e.mu.Unlock()
	start := time.Now()
	for _, p := range ps {
		e.markStopped(p)
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	var errs []error
	for _, p := range ps {
		select {
		case <-p.done:
			if p.err != nil {
				errs = append(errs, fmt.Errorf("%s (pid %d) exited after SIGTERM: %v", p.name, p.cmd.Process.Pid, p.err))
			}
		case <-time.After(25*time.Second - time.Since(start)):
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
			errs = append(errs, fmt.Errorf("%s (pid %d) still running 25s after SIGTERM; killed", p.name, p.cmd.Process.Pid))
		}
	}
	return time.Since(start), errors.Join(errs...)
}

func (e *env) markStopped(p *proc) {
	e.mu.Lock()
	p.stopped = true
	e.mu.Unlock()
}

// killAll ends every process the scenario started (cleanup).
func (e *env) killAll() {
	e.mu.Lock()
	ps := append([]*proc(nil), e.all...)
	e.mu.Unlock()
	for _, p := range ps {
		select {
		case <-p.done:
			continue
		default:
		}
		e.markStopped(p)
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			e.log.Error("process did not exit after SIGKILL", "name", p.name, "pid", p.cmd.Process.Pid)
		}
	}
}

// unexpectedExits lists processes that exited without the suite asking.
func (e *env) unexpectedExits() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, p := range e.all {
		select {
		case <-p.done:
			if !p.stopped {
				out = append(out, fmt.Sprintf("%s (pid %d): %v", p.name, p.cmd.Process.Pid, p.err))
			}
		default:
		}
	}
	return out
}

// writeConfig writes the scenario's configuration: one distributor endpoint
// (run once, or twice for a standby) and a worker endpoint run as w1..wN.
func (e *env) writeConfig(url string) error {
	o := e.opts
	cfg := map[string]any{
		"connections": map[string]string{"default": e.dsn},
		"endpoints": map[string]any{
			"distributor": map[string]any{
				"inbox": map[string]any{"workQueue": "sql://default/server-inbox-work", "errorQueue": "sql://default/error",
					"distribute": true, "distributeSendCount": 10},
				"controlInbox": map[string]any{"workQueue": "sql://default/control-inbox-work", "errorQueue": "sql://default/error"},
				"reclaimAfter": "10s",
			},
			"worker": map[string]any{
				"inbox": map[string]any{"workQueue": "sql://default/worker-{id}-work", "errorQueue": "sql://default/error",
					"threads": o.threads, "lease": o.lease.String(),
					"retry": map[string]any{"maxAttempts": 20, "backoff": []string{"100ms", "1s"}}},
				"worker":   map[string]any{"distributorControlQueue": "sql://default/control-inbox-work", "availabilityInterval": "2s"},
				"handlers": []any{map[string]any{"type": "*", "http": map[string]any{"urls": []string{url}, "timeout": "10s"}}},
			},
		},
		"routes": []any{map[string]any{"types": []string{"*"}, "queue": "sql://default/server-inbox-work"}},
		"log":    map[string]any{"level": "info", "format": "json"},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(e.cfgPath, b, 0o644)
}

// setup creates the database, migrates it, serves the target and opens the
// sending client. The caller runs teardown.
func (e *env) setup(ctx context.Context, dbName string) error {
	if e.pg {
		if err := e.cl.createDB(ctx, dbName); err != nil {
			return err
		}
		e.dsn = e.cl.dsn(dbName)
	} else {
		e.dsn = "sqlite://" + filepath.Join(e.dir, "ferry.db")
	}
	e.cfgPath = filepath.Join(e.dir, "config.json")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	e.srv = &http.Server{Handler: e.target, ReadHeaderTimeout: 5 * time.Second}
	go e.srv.Serve(ln)
	if err := e.writeConfig("http://" + ln.Addr().String() + "/handle"); err != nil {
		return err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	// Migrate once before the processes start, so they do not race to.
	e.conns = queue.NewConnections(map[string]string{"default": e.dsn}, queue.Options{AutoMigrate: true, Logger: quiet})
	inbox, err := e.conns.Queue(ctx, "sql://default/server-inbox-work")
	if err != nil {
		return fmt.Errorf("open inbox: %w", err)
	}
	e.client, err = bus.New(ctx, e.conns, bus.Config{Name: "chaos-sender", Logger: quiet,
		Routes: []bus.Route{{Types: []string{"*"}, Queue: inbox.URI()}}}, bus.NewMux())
	if err != nil {
		return fmt.Errorf("sending client: %w", err)
	}
	return nil
}

func (e *env) teardown() {
	e.killAll()
	if e.srv != nil {
		e.srv.Close()
	}
	if e.conns != nil {
		e.conns.Close()
	}
}

// startCluster starts the distributor and the workers.
func (e *env) startCluster() error {
	if err := e.start("d1", "distributor", "--id", "d1"); err != nil {
		return err
	}
	for i := 1; i <= e.opts.workers; i++ {
		id := fmt.Sprintf("w%d", i)
		if err := e.start(id, "worker", "--id", id); err != nil {
			return err
		}
	}
	return nil
}

// row is a message still stored at the end, by the n in its body.
type row struct {
	queue  string
	leased bool // a live lease: lease token set and visible_at ahead
}

// rows reads every chaos message still in a queue (any queue: work queues,
// inboxes, the error queue), with a fresh connection of the suite's own.
func (e *env) rows(ctx context.Context) (map[int]row, error) {
	var db *sql.DB
	var err error
	if e.pg {
		db, err = sql.Open("postgres", e.dsn)
	} else {
		db, err = sql.Open("sqlite3", "file:"+filepath.Join(e.dir, "ferry.db")+"?_busy_timeout=10000")
	}
	if err != nil {
		return nil, err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rs, err := db.QueryContext(ctx, `SELECT queue, body, lease_token, visible_at FROM ferry_messages`)
	if err != nil {
		return nil, fmt.Errorf("read ferry_messages: %w", err)
	}
	defer rs.Close()
	now := time.Now().UnixMicro()
	out := map[int]row{}
	for rs.Next() {
		var q string
		var body []byte
		var token, visible int64
		if err := rs.Scan(&q, &body, &token, &visible); err != nil {
			return nil, fmt.Errorf("scan ferry_messages: %w", err)
		}
		var b struct {
			N *int `json:"n"`
		}
		if json.Unmarshal(body, &b) != nil || b.N == nil {
			continue // a control message
		}
		out[*b.N] = row{queue: q, leased: token != 0 && visible > now}
	}
	return out, rs.Err()
}

// waitDrained waits until every message surely sent has been handled, up to
// the deadline, and says whether it happened.
func (e *env) waitDrained(ctx context.Context, timeout time.Duration) bool {
	next := 0
	return testkit.Poll(ctx, timeout, 100*time.Millisecond, func() bool {
		sent := e.sender.sent()
		for next < len(sent) {
			if sent[next].IsZero() {
				next++
				continue
			}
			if _, ok := e.target.firstAt(next); !ok {
				break
			}
			next++
		}
		return next >= len(sent)
	}) == nil
}

// firstHandledSentAfter is how long after t the first message sent after t
// was handled.
func (e *env) firstHandledSentAfter(t time.Time) (time.Duration, bool) {
	sent := e.sender.sent()
	seen := e.target.snapshot()
	var best time.Time
	for n, at := range sent {
		if at.IsZero() || !at.After(t) {
			continue
		}
		if hs := seen[n]; len(hs) > 0 && (best.IsZero() || hs[0].at.Before(best)) {
			best = hs[0].at
		}
	}
	if best.IsZero() {
		return 0, false
	}
	return best.Sub(t), true
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
