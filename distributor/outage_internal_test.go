package distributor

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor/control"
	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// cutProxy forwards TCP to a database until cut: then it drops every
// connection and refuses new ones until restored.
type cutProxy struct {
	ln       net.Listener
	upstream string
	down     atomic.Bool
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

func newCutProxy(t *testing.T, upstream string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	return p
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.down.Load() {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go func() { io.Copy(up, c); up.Close(); c.Close() }()
		go func() { io.Copy(c, up); up.Close(); c.Close() }()
	}
}

func (p *cutProxy) cut() {
	p.down.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *cutProxy) restore() { p.down.Store(false) }

// After an outage longer than ReclaimAfter, a worker that was alive before
// and speaks again after keeps its queue: the outage is not its silence,
// even when the distributor's first pass comes before the worker's first
// message.
func TestOutageDoesNotReclaimLiveWorkers(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.Postgres(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	direct := queue.NewConnections(map[string]string{"default": dsn}, queue.Options{AutoMigrate: true, Logger: itQuiet})
	t.Cleanup(func() { direct.Close() })
	viaProxy := queue.NewConnections(map[string]string{"default": u.String()}, queue.Options{AutoMigrate: true, MaxPoll: 50 * time.Millisecond, Logger: itQuiet})
	t.Cleanup(func() { viaProxy.Close() })

	const reclaimAfter = time.Second
	d := newIT(t, viaProxy, Config{ReclaimAfter: reclaimAfter})
	var failed, passes atomic.Int64
	d.hooks.probeFailed = func() { failed.Add(1) }
	d.hooks.afterPass = func() { passes.Add(1) }
	startIT(t, d)
	testkit.Eventually(t, 20*time.Second, "distributor active", d.Active)

	const wid, wq = "w1", "sql://default/it-w1-work"
	session := bus.NewID()
	enqueue(t, direct, wq, 3)
	d.onStarted(ctx, control.Started{WorkerID: wid, Session: session, Inbox: wq, Threads: 1, SentAt: time.Now()})
	testkit.Eventually(t, 20*time.Second, "a reclaim pass", func() bool { return passes.Load() > 0 })
	d.reg.heartbeat(control.Heartbeat{WorkerID: wid, Session: session, Inbox: wq, SentAt: time.Now()}, time.Now())

	proxy.cut()
	cutAt := time.Now()
	testkit.Eventually(t, 20*time.Second, "the distributor to notice the outage", func() bool { return failed.Load() > 0 })
	// The outage lasts well beyond ReclaimAfter.
	testkit.Eventually(t, 20*time.Second, "the outage to outlast reclaimAfter", func() bool { return time.Since(cutAt) > 3*reclaimAfter })
	proxy.restore()
	p := passes.Load()
	testkit.Eventually(t, 20*time.Second, "a pass after the outage", func() bool { return passes.Load() > p })
	// Only now does the worker's first message after the outage arrive.
	d.reg.heartbeat(control.Heartbeat{WorkerID: wid, Session: session, Inbox: wq, SentAt: time.Now()}, time.Now())
	p = passes.Load()
	testkit.Eventually(t, 20*time.Second, "another pass", func() bool { return passes.Load() > p })

	if n := d.Stats().Reclaimed; n != 0 {
		t.Fatalf("reclaimed %d messages of a live worker after an outage", n)
	}
	if c := testkit.Count(t, direct, wq); c.Total() != 3 {
		t.Fatalf("live worker's queue holds %d, want 3", c.Total())
	}
}

// A distributor that takes over (or restarts after an outage) counts a
// recorded worker's silence from when it started listening, not from the
// record: the worker may have been speaking all along to nobody.
func TestTakeoverCountsSilenceFromItsStart(t *testing.T) {
	eachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		const wid, wq = "w1", "sql://default/it-w1-work"
		enqueue(t, conns, wq, 2)
		control, err := conns.Queue(ctx, itControl)
		if err != nil {
			t.Fatal(err)
		}
		// Recorded by a previous distributor, an hour ago.
		if err := control.Store().RecordWorker(ctx, control.URI(), queue.WorkerRecord{ID: wid, Session: bus.NewID(), Inbox: wq, LastSeen: time.Now().Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
		d := newIT(t, conns, Config{ReclaimAfter: 20 * time.Second})
		var passes atomic.Int64
		d.hooks.afterPass = func() { passes.Add(1) }
		startIT(t, d)
		testkit.Eventually(t, 30*time.Second, "a reclaim pass", func() bool { return passes.Load() > 0 })
		if n := d.Stats().Reclaimed; n != 0 {
			t.Fatalf("reclaimed %d at the first pass after takeover", n)
		}
		if c := testkit.Count(t, conns, wq); c.Total() != 2 {
			t.Fatalf("worker queue holds %d, want 2", c.Total())
		}
	})
}
