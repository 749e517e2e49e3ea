// Package bus is ferry's service bus: endpoints that send, publish, reply
// and defer typed messages over SQL queues, and handle them with retries,
// an error queue and graceful shutdown.
//
// An Endpoint has an optional inbox (work queue, error queue, threads) and a
// Mux of handlers registered by message type name:
//
//	mux := bus.NewMux()
//	bus.Handle(mux, "orders.placed", func(ctx context.Context, m *bus.Message, o OrderPlaced) error {
//		return m.Publish(ctx, OrderAccepted{ID: o.ID})
//	})
//	ep, err := bus.New(ctx, conns, bus.Config{Name: "orders", Inbox: &bus.InboxConfig{...}}, mux)
//	ep.Start(ctx)
//	defer ep.Stop(ctx)
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrybus/ferry/internal/role"
	"github.com/ferrybus/ferry/queue"
	"go.opentelemetry.io/otel/trace"
)

// InboxConfig configures an endpoint's inbox.
type InboxConfig struct {
	// WorkQueue is the URI messages are received from. Required.
	WorkQueue string `json:"workQueue" koanf:"workQueue"`
	// ErrorQueue is the URI failed messages are moved to. Required.
	ErrorQueue string `json:"errorQueue" koanf:"errorQueue"`
	// Threads is how many messages are handled at once. Default 4.
	Threads int `json:"threads" koanf:"threads"`
	// Lease is how long a received message stays invisible to others; it
	// is renewed while the handler runs. Default 30s.
	Lease time.Duration `json:"lease" koanf:"lease"`
	// Retry is the retry policy. Default: DefaultRetryPolicy.
	Retry *RetryPolicy `json:"retry" koanf:"retry"`
	// Idempotent acks, without handling again, a message whose id this
	// endpoint has already handled. The handled record is the gate: with a
	// transactional handler (HandleTx) it is inserted in the handler's
	// transaction, so of several copies handled at once exactly one commits
	// its effects and the others are acked as duplicates. A plain handler
	// cannot be undone: a copy received once another was handled is
	// skipped, but copies in flight at the same time may each run the
	// handler (at least once); only one of them is counted as handled.
	Idempotent bool `json:"idempotent" koanf:"idempotent"`
	// Prefetch is how many received messages may wait in memory for a free
	// thread, so that receives carry many rows under load. One that waits
	// longer than half its lease is given back for other consumers, and Stop
	// gives back the rest. Default: as many as Threads; -1 turns prefetching off.
	Prefetch int `json:"prefetch" koanf:"prefetch"`
	// Rules decide, first match wins, whether a failed message is retried,
	// discarded or parked in the error queue. With none matching, the
	// defaults below apply by kind of failure: handler errors and panics
	// are retried, permanent errors and poison messages parked.
	Rules []Rule `json:"rules" koanf:"rules"`
	// OnDecodeError is the default action for a message whose headers or
	// body cannot be decoded. Default retry. A message whose stored headers
	// cannot be read at all is never retried (a retry cannot mend them): it
	// is parked, its raw headers kept in HeaderRawHeaders.
	OnDecodeError Action `json:"onDecodeError" koanf:"onDecodeError"`
	// OnNoHandler is the default action for a message of a type with no
	// handler. Default retry.
	OnNoHandler Action `json:"onNoHandler" koanf:"onNoHandler"`
	// OnExpired is the default action for a message received after its
	// ExpiresAt. Default discard.
	OnExpired Action `json:"onExpired" koanf:"onExpired"`
	// OnOversize is the default action for a message whose body is over
	// MaxBodyBytes. Default park.
	OnOversize Action `json:"onOversize" koanf:"onOversize"`
	// MaxBodyBytes, when positive, is the largest body handled: a larger
	// one fails with kind "oversize" without reaching a handler.
	MaxBodyBytes int `json:"maxBodyBytes" koanf:"maxBodyBytes"`
	// ErrorRetention, when positive, deletes the error queue's messages
	// that have been there longer (counted from when they entered it),
	// every minute while the endpoint runs, in bounded batches. Default 0:
	// kept until retried or discarded.
	ErrorRetention time.Duration `json:"errorRetention" koanf:"errorRetention"`
	// HandledRetention is how long an idempotent inbox remembers handled
	// message ids: older records are deleted every minute. Default 7 days
	// (DefaultHandledRetention). The records of one database are deleted
	// together, whichever endpoint made them: give the idempotent endpoints
	// of a database the same retention.
	HandledRetention time.Duration `json:"handledRetention" koanf:"handledRetention"`
}

// Config configures an Endpoint.
type Config struct {
	// Name identifies the endpoint in failure records and idempotence keys. Required.
	Name string
	// Inbox, when set, makes the endpoint receive and handle messages.
	Inbox *InboxConfig
	// Routes map message types to the queues Send delivers them to.
	Routes []Route
	// Subscribe lists the types (or patterns) the inbox subscribes to at Start.
	Subscribe []string
	// SubscriptionConnection names the connection that stores subscriptions.
	// Default: the inbox's connection, else "default".
	SubscriptionConnection string
	// SubscriptionRefresh is how long publishers cache subscriptions. Default 5s.
	SubscriptionRefresh time.Duration
	// Serializer encodes bodies. Default JSON.
	Serializer Serializer
	// Logger receives the endpoint's events. Default slog.Default().
	Logger *slog.Logger
	// MaxSendBodyBytes is the largest body the endpoint sends (Send,
	// Publish, Reply, their Tx forms, SendBatch): a larger one is refused
	// with ErrBodyTooLarge before anything is stored. Default
	// DefaultMaxSendBodyBytes; negative is an error.
	MaxSendBodyBytes int
	// SummaryInterval, when positive, logs a summary line at info every
	// interval with what the inbox handled, failed, retried and moved to
	// the error queue since the last line, its rate and its totals; an idle
	// inbox logs one every 10 intervals only. Default 0: no summary.
	SummaryInterval time.Duration
	// Role is for ferry's own roles built on an endpoint (its worker and
	// distributor): their hooks into its threads. Its type is internal to
	// ferry, so other code leaves it nil.
	Role *role.Hooks
	// TracerProvider, when set, traces every message the endpoint sends and
	// handles (OpenTelemetry; see trace.go). Nil: no tracing, at no cost.
	TracerProvider trace.TracerProvider
}

// Stats counts what an endpoint's inbox did since it started.
type Stats struct {
	Received   int64 `json:"received"`
	Handled    int64 `json:"handled"`
	Failed     int64 `json:"failed"`     // failed attempts
	Retried    int64 `json:"retried"`    // released for another attempt
	Errored    int64 `json:"errored"`    // moved to the error queue
	Expired    int64 `json:"expired"`    // found past ExpiresAt (then discarded by default)
	Duplicates int64 `json:"duplicates"` // acked unhandled: already handled
	Discarded  int64 `json:"discarded"`  // acked unhandled by a discard action, expired ones included
	// Expunged counts error-queue messages deleted by ErrorRetention.
	Expunged int64 `json:"expunged"`
	// ForgottenHandled counts handled-id records deleted by HandledRetention
	// (those of every endpoint of the database, see InboxConfig).
	ForgottenHandled int64 `json:"forgottenHandled"`
}

type counters struct {
	received, handled, failed, retried, errored, expired, duplicates, discarded atomic.Int64
	expunged, forgotten                                                         atomic.Int64
}

// Endpoint sends messages and, with an inbox, handles them.
type Endpoint struct {
	cfg   Config
	conns *queue.Connections
	mux   *Mux
	ser   Serializer
	log   *slog.Logger
	rec   atomic.Pointer[recovery] // rules, retry policy and defaults for failed messages; swapped live (reconfigure.go)
	lease time.Duration

	inbox      queue.Queue
	errorQueue queue.Queue
	subs       *subscriptions

	qmu    sync.Mutex
	queues map[string]queue.Queue

	stats counters

	// running state, set by Start
	runMu     sync.Mutex
	started   bool
	stopped   bool
	recvStop  context.CancelFunc    // stops receiving
	beatStop  context.CancelFunc    // stops the heartbeat, once no handler runs
	hctx      context.Context       // handlers' context
	hcancel   context.CancelFunc    // cancels handlers at the end of Stop
	free      chan int              // idle thread numbers
	threads   []chan queue.Delivery // work for each thread
	loops     sync.WaitGroup        // receive loop
	sideStop  context.CancelFunc    // stops the summary and retention loops
	sides     sync.WaitGroup        // summary and retention loops
	beats     sync.WaitGroup        // heartbeat: outlives the receive loop during Stop
	workers   sync.WaitGroup        // threads
	acks      *acker                // batches the threads' acks
	abandoned atomic.Bool           // Abandon: leave buffered messages leased, as a crash would
	released  atomic.Int64          // messages given back unhandled by the current Stop
	// paused is set while the receive loop finds its inbox paused;
	// pausedPolls counts its waits then (tests follow it).
	paused      atomic.Bool
	pausedPolls atomic.Int64
	// cancelReleased counts messages whose handler returned on the stop's
	// cancel and gave them back itself.
	cancelReleased atomic.Int64
	stopping       atomic.Bool // Stop has begun: what the heartbeat gives back counts in released
	inflight       sync.Map    // delivery id -> *inflight
	handoff        int64       // role.Hooks.Handoff as of Start: read what is handed over to it first
	acking         sync.Map    // with a handoff: delivery id -> struct{} while its async ack has not committed
	hooks          *role.Hooks // never nil
	take           bool        // hooks.Take: the inbox is soft state, taken instead of leased (take.go)
	checks         []precheck  // run before each handler, in order
	settler        settler     // acks what handlers handled
	events         eventHub    // subscribers of Events
	obs            observers   // AddObserver
	live           liveInbox   // settings changed while running (reconfigure.go)
	tr             *tracing    // nil: tracing off
}

type inflight struct {
	mu       sync.Mutex
	d        queue.Delivery
	received time.Time // when it was leased
	renewed  time.Time
	started  bool // a handler has it; until then it waits in the prefetch buffer
	released bool // settled or given back: nobody may handle it any more

	span trace.Span // the handle span while traced
}

// New validates cfg, resolves its queues and returns an endpoint ready to Start.
func New(ctx context.Context, conns *queue.Connections, cfg Config, mux *Mux) (*Endpoint, error) {
	if cfg.Name == "" {
		return nil, errors.New("bus: endpoint name: required")
	}
	if mux == nil {
		mux = NewMux()
	}
	e := &Endpoint{cfg: cfg, conns: conns, mux: mux, ser: cfg.Serializer, log: cfg.Logger, queues: map[string]queue.Queue{}, tr: newTracing(cfg.TracerProvider)}
	if e.ser == nil {
		e.ser = JSON{}
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	e.log = e.log.With("endpoint", cfg.Name)
	e.hooks = cfg.Role
	if e.hooks == nil {
		e.hooks = &role.Hooks{}
	}
	e.hooks.Abandon = e.abandon
	e.take = e.hooks.Take
	if err := validateRoutes(cfg.Routes); err != nil {
		return nil, fmt.Errorf("bus: endpoint %q: %w", cfg.Name, err)
	}
	if e.cfg.MaxSendBodyBytes < 0 {
		return nil, fmt.Errorf("bus: endpoint %q: maxSendBodyBytes: %d is negative", cfg.Name, cfg.MaxSendBodyBytes)
	}
	if e.cfg.MaxSendBodyBytes == 0 {
		e.cfg.MaxSendBodyBytes = DefaultMaxSendBodyBytes
	}
	subConn := cfg.SubscriptionConnection
	if in := cfg.Inbox; in != nil {
		if in.WorkQueue == "" {
			return nil, fmt.Errorf("bus: endpoint %q: inbox.workQueue: required", cfg.Name)
		}
		if in.ErrorQueue == "" {
			return nil, fmt.Errorf("bus: endpoint %q: inbox.errorQueue: required", cfg.Name)
		}
		var err error
		if e.inbox, err = e.queue(ctx, in.WorkQueue); err != nil {
			return nil, fmt.Errorf("bus: endpoint %q: inbox.workQueue: %w", cfg.Name, err)
		}
		if e.errorQueue, err = e.queue(ctx, in.ErrorQueue); err != nil {
			return nil, fmt.Errorf("bus: endpoint %q: inbox.errorQueue: %w", cfg.Name, err)
		}
		if e.take && in.Idempotent {
			return nil, fmt.Errorf("bus: endpoint %q: inbox.idempotent: not with an inbox that takes its messages", cfg.Name)
		}
		if in.Threads < 0 {
			return nil, fmt.Errorf("bus: endpoint %q: inbox.threads: %d is negative", cfg.Name, in.Threads)
		}
		if in.ErrorRetention < 0 {
			return nil, fmt.Errorf("bus: endpoint %q: inbox.errorRetention: %s is negative", cfg.Name, in.ErrorRetention)
		}
		if in.HandledRetention < 0 {
			return nil, fmt.Errorf("bus: endpoint %q: inbox.handledRetention: %s is negative", cfg.Name, in.HandledRetention)
		}
		if cfg.SummaryInterval < 0 {
			return nil, fmt.Errorf("bus: endpoint %q: summaryInterval: %s is negative", cfg.Name, cfg.SummaryInterval)
		}
		rec, err := newRecovery(in)
		if err != nil {
			return nil, fmt.Errorf("bus: endpoint %q: %w", cfg.Name, err)
		}
		e.rec.Store(rec)
		e.live.init(in)
		e.lease = in.Lease
		if e.lease <= 0 {
			e.lease = 30 * time.Second
		}
		e.hooks.Lease = e.lease
		if subConn == "" {
			subConn = e.inbox.Store().Name()
		}
	}
	if subConn == "" {
		subConn = "default"
	}
	if e.tr != nil && e.inbox != nil {
		e.tr.prepareHandle(e.inbox.URI(), cfg.Name)
	}
	if store, err := conns.Store(ctx, subConn); err == nil {
		refresh := cfg.SubscriptionRefresh
		if refresh <= 0 {
			refresh = 5 * time.Second
		}
		e.subs = &subscriptions{store: store, refresh: refresh}
	} else if cfg.SubscriptionConnection != "" || len(cfg.Subscribe) > 0 {
		return nil, fmt.Errorf("bus: endpoint %q: subscription connection: %w", cfg.Name, err)
	}
	return e, nil
}

// queue resolves and caches a queue URI.
func (e *Endpoint) queue(ctx context.Context, uri string) (queue.Queue, error) {
	e.qmu.Lock()
	defer e.qmu.Unlock()
	if q, ok := e.queues[uri]; ok {
		return q, nil
	}
	q, err := e.conns.Queue(ctx, uri)
	if err != nil {
		return nil, err
	}
	e.queues[uri] = q
	return q, nil
}

// Name is the endpoint's name.
func (e *Endpoint) Name() string { return e.cfg.Name }

// Inbox is the inbox work queue, or nil for a send-only endpoint.
func (e *Endpoint) Inbox() queue.Queue { return e.inbox }

// ErrorQueueURI is the URI of the inbox's error queue, "" without an inbox;
// OpenErrorQueue opens it for inspection and retries.
func (e *Endpoint) ErrorQueueURI() string {
	if e.errorQueue == nil {
		return ""
	}
	return e.errorQueue.URI()
}

// Mux is the endpoint's handler registry.
func (e *Endpoint) Mux() *Mux { return e.mux }

// Threads is the number of inbox threads.
func (e *Endpoint) Threads() int {
	if e.cfg.Inbox == nil {
		return 0
	}
	// The live settings: SetThreads may have changed them (reconfigure.go).
	if n := e.live.cfg.Load().Threads; n != 0 {
		return n
	}
	return 4
}

// Stats returns the inbox counters.
func (e *Endpoint) Stats() Stats {
	c := &e.stats
	return Stats{
		Received: c.received.Load(), Handled: c.handled.Load(), Failed: c.failed.Load(),
		Retried: c.retried.Load(), Errored: c.errored.Load(), Expired: c.expired.Load(),
		Duplicates: c.duplicates.Load(), Discarded: c.discarded.Load(),
		Expunged: c.expunged.Load(), ForgottenHandled: c.forgotten.Load(),
	}
}

// Start subscribes the inbox to its configured types and starts handling
// messages. A send-only endpoint has nothing to start.
func (e *Endpoint) Start(ctx context.Context) error {
	e.runMu.Lock()
	defer e.runMu.Unlock()
	if e.started && !e.stopped {
		return fmt.Errorf("bus: endpoint %q: already started", e.cfg.Name)
	}
	e.stopped = false // a stopped endpoint may start again
	e.abandoned.Store(false)
	e.released.Store(0)
	e.cancelReleased.Store(0)
	e.stopping.Store(false)
	if e.inbox == nil {
		e.started = true
		return nil
	}
	if len(e.cfg.Subscribe) > 0 {
		if err := e.Subscribe(ctx, e.cfg.Subscribe...); err != nil {
			return fmt.Errorf("bus: endpoint %q: subscribe: %w", e.cfg.Name, err)
		}
	}
	e.checks = e.prechecks()
	e.settler = e.newSettler()
	e.handoff = e.hooks.Handoff
	n := e.Threads()
	recvCtx, recvStop := context.WithCancel(context.Background())
	e.recvStop = recvStop
	e.hctx, e.hcancel = context.WithCancel(context.Background())
	// free holds every idle thread's id at most once, plus one wake-up
	// (reconfigure.go): sized for the most threads SetThreads may grow to.
	e.free = make(chan int, max(n, MaxLiveThreads)+1)
	e.startThreads(n) // reconfigure.go
	// A failed ack is tried again for two leases (at least ackRetryFloor):
	// a database that comes back in that time sees the message acked instead
	// of delivering it again. Each try checks the lease token, so a late
	// one acks only what this endpoint still holds.
	e.acks = newAcker(e.inbox, max(2*e.lease, ackRetryFloor), e.log)
	// The heartbeat has its own context: during Stop it keeps renewing the
	// leases of running handlers after receiving has stopped.
	beatCtx, beatStop := context.WithCancel(context.Background())
	e.beatStop = beatStop
	e.loops.Add(1)
	e.beats.Add(1)
	go e.receiveLoop(recvCtx)
	go e.heartbeat(beatCtx)
	e.startSideLoops()
	e.started = true
	e.log.Info("endpoint started", "inbox", e.inbox.URI(), "threads", n)
	return nil
}

// Stop stops receiving, gives back the messages waiting in the prefetch
// buffer, lets in-flight handlers finish until ctx ends (renewing their
// leases meanwhile, so that no other consumer takes them), then cancels the
// handlers' context and releases what is left unhandled, so no message of
// the endpoint stays leased. It returns ctx's error when it had to release
// messages whose handlers had started.
//
// Stop returns by ctx's deadline plus stopGrace whatever the database does:
// when a frozen database holds a receive, a release or an ack, it returns an
// error and the stop goes on in the background; what is still leased then
// comes back when its lease ends.
func (e *Endpoint) Stop(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- e.stop(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		e.log.Warn("stop not finished after its deadline; leaving it to finish in the background (is the database answering?)", "grace", stopGrace)
		return fmt.Errorf("bus: endpoint %q: stop: not finished %s after its deadline (is the database answering?); messages still leased come back when their leases end: %w",
			e.cfg.Name, stopGrace, ctx.Err())
	}
}

// stopGrace is how long Stop waits past its deadline for the releases it
// makes then.
const stopGrace = 5 * time.Second

func (e *Endpoint) stop(ctx context.Context) error {
	e.runMu.Lock()
	defer e.runMu.Unlock()
	if !e.started || e.stopped || e.inbox == nil {
		e.stopped = true
		return nil
	}
	e.stopped = true
	e.stopping.Store(true)
	e.stopSideLoops()
	e.recvStop()
	e.loops.Wait() // the receive loop has handed every received message to a thread
	// Each thread finishes what it was given and returns (reconfigure.go).
	e.closeThreads()
	done := make(chan struct{})
	go func() { e.workers.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		e.hcancel()
		unfinished := e.releaseInflight()
		// A handler that returned on the cancel gave its message back itself
		// (failHandler), perhaps before releaseInflight came to it: wait a
		// moment for the threads, to count those too.
		t := time.NewTimer(time.Second)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
		unfinished += int(e.cancelReleased.Swap(0))
		e.released.Add(int64(unfinished))
		err = fmt.Errorf("bus: endpoint %q: stop: %d message(s) released unhandled, %d of them with a handler running: %w",
			e.cfg.Name, e.released.Load(), unfinished, ctx.Err())
		e.log.Warn("stop deadline passed; released unfinished messages", "released", unfinished)
	}
	// Only now may leases lapse: every handler has returned or been given up.
	e.beatStop()
	e.beats.Wait()
	e.hcancel()
	e.acks.close(ctx)
	if e.handoff != 0 {
		e.releaseGiven()
	}
	e.log.Info("endpoint stopped", "released", e.released.Load(), "stats", e.Stats())
	return err
}

// Released is how many messages the last Stop gave back unhandled: those
// waiting in the prefetch buffer and those whose handlers were still
// running at its deadline.
func (e *Endpoint) Released() int64 { return e.released.Load() }

// abandon stops the endpoint as a crash would, for failure tests: it stops
// receiving and cancels the handlers' context at once, and leaves every
// message it holds leased, to come back only when its lease ends. Roles
// reach it through role.Hooks.Abandon.
func (e *Endpoint) abandon() {
	e.runMu.Lock()
	defer e.runMu.Unlock()
	if !e.started || e.stopped || e.inbox == nil {
		return
	}
	e.stopped = true
	e.abandoned.Store(true)
	e.stopSideLoops()
	e.recvStop()
	e.loops.Wait()
	e.beatStop() // a crash renews nothing
	e.beats.Wait()
	e.inflight.Range(func(_, v any) bool {
		f := v.(*inflight)
		f.mu.Lock()
		f.released = true // no ack, release or move will follow
		f.mu.Unlock()
		return true
	})
	e.hcancel()
	crashed, cancel := context.WithCancel(context.Background())
	cancel() // a crash tries nothing again
	e.acks.close(crashed)
	e.closeThreads() // reconfigure.go
}

// releaseInflight gives back every message still being handled.
func (e *Endpoint) releaseInflight() int {
	n := 0
	if e.take {
		return n // taken messages are gone: there is nothing to give back
	}
	e.inflight.Range(func(_, v any) bool {
		f := v.(*inflight)
		f.mu.Lock()
		if !f.released {
			f.released = true
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := e.inbox.Release(ctx, f.d, queue.ReleaseOptions{Uncount: true}); err != nil {
				e.log.Warn("release at stop failed; the lease will expire", "message", f.d.MessageID, "err", err)
			} else {
				n++
				e.emit(EventReleased, f.d, "", "")
			}
			cancel()
		}
		f.mu.Unlock()
		return true
	})
	return n
}
