package distributor

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor/control"
	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

const (
	itInbox   = "sql://default/it-inbox"
	itControl = "sql://default/it-control"
	itErrors  = "sql://default/it-errors"
)

var itQuiet = slog.New(slog.DiscardHandler)

// eachStore runs fn on a fresh schema of every dialect.
func eachStore(t *testing.T, fn func(t *testing.T, conns *queue.Connections)) {
	for _, d := range testdb.Dialects() {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			conns := queue.NewConnections(map[string]string{"default": testdb.DSN(t, d)},
				queue.Options{AutoMigrate: true, MaxPoll: 50 * time.Millisecond, Logger: itQuiet})
			t.Cleanup(func() { conns.Close() })
			fn(t, conns)
		})
	}
}

// newIT builds (but does not start) a distributing distributor.
func newIT(t *testing.T, conns *queue.Connections, cfg Config) *Distributor {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "it"
	}
	cfg.Distribute = true
	cfg.Inbox = bus.InboxConfig{WorkQueue: itInbox, ErrorQueue: itErrors}
	cfg.ControlInbox = bus.InboxConfig{WorkQueue: itControl, ErrorQueue: itErrors}
	if cfg.Logger == nil {
		cfg.Logger = itQuiet
	}
	d, err := New(context.Background(), conns, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func startIT(t *testing.T, d *Distributor) {
	t.Helper()
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d.Stop(ctx)
	})
}

func enqueue(t *testing.T, conns *queue.Connections, uri string, n int) {
	t.Helper()
	q, err := conns.Queue(context.Background(), uri)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := q.Enqueue(context.Background(), queue.Message{MessageID: bus.NewID(), Type: "job", Body: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
}

// A worker's Stopping handled while a move to it is in flight, and its
// availabilities arriving after Stopping, must leave nothing in its queue.
func TestStoppingDuringMoveLeavesNothingInWorkerQueue(t *testing.T) {
	eachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		const wid, wq = "w1", "sql://default/it-w1-work"
		session := bus.NewID()
		stop := control.Stopping{WorkerID: wid, Session: session, Inbox: wq, SentAt: time.Now()}
		d := newIT(t, conns, Config{ReclaimAfter: time.Hour, DistributeSendCount: 5})
		stopped := make(chan struct{})
		d.hooks.beforeMove = func(w, s string) {
			if w == wid && s == session {
				select {
				case <-stopped:
				default:
					// Stopping is handled in full between the take and the move.
					d.onStopping(ctx, stop)
					close(stopped)
				}
			}
		}
		startIT(t, d)
		testkit.Eventually(t, 10*time.Second, "distributor active", d.Active)
		enqueue(t, conns, itInbox, 10)
		d.onStarted(ctx, control.Started{WorkerID: wid, Session: session, Inbox: wq, Threads: 1, SentAt: time.Now()})
		d.onAvailable(ctx, control.ThreadAvailable{WorkerID: wid, Session: session, Inbox: wq, Thread: 0, SentAt: time.Now(), ValidFor: time.Hour})
		testkit.Eventually(t, 10*time.Second, "a move to the stopping worker", func() bool { return d.Stats().Distributed > 0 })
		<-stopped
		testkit.Eventually(t, 10*time.Second, "the stopped worker's queue returned", func() bool {
			st := d.Stats()
			return st.Reclaimed == st.Distributed && testkit.Count(t, conns, wq).Total() == 0 && testkit.Count(t, conns, itInbox).Ready == 10
		})

		// Late announcements of the stopped session bring nothing back.
		d.onAvailable(ctx, control.ThreadAvailable{WorkerID: wid, Session: session, Inbox: wq, Thread: 1, SentAt: time.Now(), ValidFor: time.Hour})
		d.reg.heartbeat(control.Heartbeat{WorkerID: wid, Session: session, Inbox: wq, SentAt: time.Now()}, time.Now())
		if s := d.Registry(); s.Available[wid] != 0 || s.Workers[wid] != "" {
			t.Fatalf("stopped session came back: %+v", s)
		}
		// A new session of the same worker is welcome. Its availability is
		// renewed every second, as a worker renews an idle thread's: an
		// availability is soft state.
		next := bus.NewID()
		var renewed time.Time
		testkit.Eventually(t, 20*time.Second, "work for the new session", func() bool {
			if testkit.Count(t, conns, wq).Total() > 0 {
				return true
			}
			if time.Since(renewed) >= time.Second {
				if !renewed.IsZero() { // what a failure report needs
					t.Logf("still waiting: registry %+v, stats %+v, active %v, inbox %+v", d.Registry(), d.Stats(), d.Active(), testkit.Count(t, conns, itInbox))
				}
				renewed = time.Now()
				d.onAvailable(ctx, control.ThreadAvailable{WorkerID: wid, Session: next, Inbox: wq, Thread: 0, SentAt: renewed, ValidFor: time.Hour})
			}
			return false
		})
	})
}

// A message returned to the inbox by a reclaim keeps its delivery count on
// its way to the next worker, so its next delivery says it is a redelivery.
func TestReclaimedMessageKeepsItsDeliveryCount(t *testing.T) {
	eachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		const w1q, w2q = "sql://default/it-w1-work", "sql://default/it-w2-work"
		d := newIT(t, conns, Config{ReclaimAfter: time.Hour})
		startIT(t, d)
		testkit.Eventually(t, 10*time.Second, "distributor active", d.Active)
		enqueue(t, conns, w1q, 1)
		q1, err := conns.Queue(ctx, w1q)
		if err != nil {
			t.Fatal(err)
		}
		// w1 took it and died: its lease ends.
		if ds, err := q1.Receive(ctx, 1, time.Millisecond); err != nil || len(ds) != 1 {
			t.Fatalf("receive: %d, %v", len(ds), err)
		}
		testkit.Eventually(t, 10*time.Second, "the lease to end", func() bool { return testkit.Count(t, conns, w1q).Ready == 1 })
		s1 := bus.NewID()
		d.onStarted(ctx, control.Started{WorkerID: "w1", Session: s1, Inbox: w1q, Threads: 1, SentAt: time.Now()})
		d.onStopping(ctx, control.Stopping{WorkerID: "w1", Session: s1, Inbox: w1q, SentAt: time.Now()})
		testkit.Eventually(t, 10*time.Second, "the message back in the inbox", func() bool { return testkit.Count(t, conns, itInbox).Ready == 1 })
		peekAttempts := func(uri string) int {
			q, err := conns.Queue(ctx, uri)
			if err != nil {
				t.Fatal(err)
			}
			ds, err := q.Peek(ctx, 0, 10)
			if err != nil || len(ds) != 1 {
				t.Fatalf("peek %s: %d, %v", uri, len(ds), err)
			}
			return ds[0].Attempts
		}
		if a := peekAttempts(itInbox); a != 1 {
			t.Fatalf("reclaimed message has %d deliveries, want 1", a)
		}
		d.onAvailable(ctx, control.ThreadAvailable{WorkerID: "w2", Session: bus.NewID(), Inbox: w2q, SentAt: time.Now(), ValidFor: time.Hour})
		testkit.Eventually(t, 10*time.Second, "the message moved to w2", func() bool { return testkit.Count(t, conns, w2q).Total() == 1 })
		if a := peekAttempts(w2q); a != 1 {
			t.Fatalf("message moved to w2 has %d deliveries, want 1", a)
		}
	})
}

// Work handed over leased to a session (a handoff) that then stops is not
// left leased to nobody: whether the worker's Stopping arrives after the
// move landed, or while the move runs, the distributor releases what is
// leased with the session's token and returns the whole queue.
func TestStoppedHandoffSessionLeavesNothingLeased(t *testing.T) {
	for _, during := range []bool{false, true} {
		name := "after the move"
		if during {
			name = "during the move"
		}
		t.Run(name, func(t *testing.T) {
			eachStore(t, func(t *testing.T, conns *queue.Connections) {
				ctx := context.Background()
				const wid, wq = "w1", "sql://default/it-w1-work"
				const token = 4242
				session := bus.NewID()
				stop := control.Stopping{WorkerID: wid, Session: session, Inbox: wq, SentAt: time.Now()}
				d := newIT(t, conns, Config{ReclaimAfter: time.Hour, DistributeSendCount: 5})
				stopped := make(chan struct{})
				if during {
					d.hooks.beforeMove = func(w, s string) {
						if w == wid && s == session {
							select {
							case <-stopped:
							default:
								d.onStopping(ctx, stop)
								close(stopped)
							}
						}
					}
				}
				startIT(t, d)
				testkit.Eventually(t, 10*time.Second, "distributor active", d.Active)
				enqueue(t, conns, itInbox, 10)
				d.onStarted(ctx, control.Started{WorkerID: wid, Session: session, Inbox: wq, Threads: 1, SentAt: time.Now()})
				d.onAvailable(ctx, control.ThreadAvailable{WorkerID: wid, Session: session, Inbox: wq, Thread: 0, SentAt: time.Now(),
					ValidFor: time.Hour, Handoff: token, Lease: time.Hour})
				if during {
					testkit.Eventually(t, 10*time.Second, "a move to the stopping worker", func() bool { return d.Stats().Distributed > 0 })
				} else {
					testkit.Eventually(t, 10*time.Second, "a move to the worker, handed over leased", func() bool {
						return d.Stats().Distributed > 0 && testkit.Count(t, conns, wq).InFlight > 0
					})
					d.onStopping(ctx, stop)
				}
				testkit.Eventually(t, 10*time.Second, "the stopped session's queue returned, nothing leased", func() bool {
					return testkit.Count(t, conns, wq).Total() == 0 && testkit.Count(t, conns, itInbox).Ready == 10
				})
			})
		})
	}
}
