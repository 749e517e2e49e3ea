package bus_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/ferrybus/ferry/internal/testkit"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"database/sql"
	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/queue"
)

func TestSendRoutedAndExplicit(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		var got recorder[OrderPlaced]
		mux := bus.NewMux()
		record(mux, "orders.placed", &got)
		start(t, conns, bus.Config{Name: "orders", Inbox: inbox("orders", 2)}, mux)

		client, err := bus.New(ctx, conns, bus.Config{Name: "client",
			Routes: []bus.Route{{Types: []string{"orders.*"}, Queue: "sql://default/orders"}}}, mux)
		if err != nil {
			t.Fatal(err)
		}
		if err := client.Send(ctx, OrderPlaced{ID: "o-1", Total: 12.5}); err != nil {
			t.Fatal(err)
		}
		if err := client.Send(ctx, OrderPlaced{ID: "o-2"}, bus.To("sql://default/orders")); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 5*time.Second, "two orders handled", func() bool { return got.len() == 2 })
		seen := map[string]float64{}
		for i := range 2 {
			env, o := got.get(i)
			if env.Type != "orders.placed" || env.ContentType != "application/json" {
				t.Errorf("envelope type %q content type %q", env.Type, env.ContentType)
			}
			seen[o.ID] = o.Total
		}
		if seen["o-1"] != 12.5 {
			t.Errorf("order o-1 decoded as %v", seen)
		}
		if _, ok := seen["o-2"]; !ok {
			t.Errorf("order o-2 missing: %v", seen)
		}

		// A type with no route, and a type routed twice, are errors naming the type.
		bus.RegisterType[Ping](mux, "ping")
		err = client.Send(ctx, Ping{})
		if err == nil || !strings.Contains(err.Error(), `"ping"`) {
			t.Errorf("send of unrouted type: %v", err)
		}
		twice, err := bus.New(ctx, conns, bus.Config{Name: "twice", Routes: []bus.Route{
			{Types: []string{"ping"}, Queue: "sql://default/a"},
			{Types: []string{"*"}, Queue: "sql://default/b"},
		}}, mux)
		if err != nil {
			t.Fatal(err)
		}
		err = twice.Send(ctx, Ping{})
		if err == nil || !strings.Contains(err.Error(), `"ping"`) || !strings.Contains(err.Error(), "2 queues") {
			t.Errorf("send of doubly routed type: %v", err)
		}
		// An unnamed Go type is refused with its name.
		err = client.Send(ctx, struct{ X int }{1}, bus.To("sql://default/orders"))
		if err == nil || !strings.Contains(err.Error(), "no message type name") {
			t.Errorf("send of unnamed Go type: %v", err)
		}
	})
}

func TestPublishToSubscribers(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		var billing, shipping, late recorder[OrderAccepted]
		sub := func(name string, r *recorder[OrderAccepted]) {
			mux := bus.NewMux()
			record(mux, "orders.accepted", r)
			start(t, conns, bus.Config{Name: name, Inbox: inbox(name, 1), Subscribe: []string{"orders.accepted"}}, mux)
		}
		sub("billing", &billing)
		sub("shipping", &shipping)

		pubMux := bus.NewMux()
		bus.RegisterType[OrderAccepted](pubMux, "orders.accepted")
		pub, err := bus.New(ctx, conns, bus.Config{Name: "pub", SubscriptionRefresh: 50 * time.Millisecond}, pubMux)
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(ctx, OrderAccepted{ID: "a-1"}); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 5*time.Second, "both subscribers receive", func() bool { return billing.len() == 1 && shipping.len() == 1 })

		// A subscriber added while the publisher runs receives after the refresh interval.
		sub("audit", &late)
		testkit.Eventually(t, 5*time.Second, "the late subscriber receives", func() bool {
			if err := pub.Publish(ctx, OrderAccepted{ID: "a-2"}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
			return late.len() > 0
		})
		_, o := late.get(0)
		if o.ID != "a-2" {
			t.Errorf("late subscriber got %q", o.ID)
		}
		if billing.len() < 2 {
			testkit.Eventually(t, 5*time.Second, "billing gets later publishes too", func() bool { return billing.len() >= 2 })
		}
	})
}

func TestReplyAndCorrelation(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		server := bus.NewMux()
		bus.Handle(server, "ping", func(ctx context.Context, m *bus.Message, p Ping) error {
			return m.Reply(ctx, Pong{N: p.N + 1})
		})
		bus.RegisterType[Pong](server, "pong")
		start(t, conns, bus.Config{Name: "server", Inbox: inbox("server", 1)}, server)

		var pongs recorder[Pong]
		client := bus.NewMux()
		bus.RegisterType[Ping](client, "ping")
		record(client, "pong", &pongs)
		cep := start(t, conns, bus.Config{Name: "client", Inbox: inbox("client", 1),
			Routes: []bus.Route{{Types: []string{"ping"}, Queue: "sql://default/server"}}}, client)
		if err := cep.Send(ctx, Ping{N: 41}, bus.CorrelationID("conv-7"), bus.Header("tenant", "acme")); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 5*time.Second, "the reply", func() bool { return pongs.len() == 1 })
		env, p := pongs.get(0)
		if p.N != 42 {
			t.Errorf("reply body %d, want 42", p.N)
		}
		if env.CorrelationID != "conv-7" {
			t.Errorf("reply correlation id %q, want conv-7", env.CorrelationID)
		}
		if env.Headers["tenant"] != "acme" {
			t.Errorf("user header did not flow to the reply: %v", env.Headers)
		}
		if env.CausationID == "" || env.CausationID == env.ID {
			t.Errorf("reply causation id %q", env.CausationID)
		}
		if env.ReplyTo != "sql://default/server" {
			t.Errorf("reply's replyTo %q, want the server's inbox", env.ReplyTo)
		}
	})
}

func TestCausationChain(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		var first, second recorder[Ping]
		mux := bus.NewMux()
		bus.Handle(mux, "ping", func(ctx context.Context, m *bus.Message, p Ping) error {
			first.add(m, p)
			return m.Send(ctx, Pong{N: p.N}, bus.To("sql://default/chain"))
		})
		bus.Handle(mux, "pong", func(ctx context.Context, m *bus.Message, p Pong) error {
			second.add(m, Ping(p))
			return nil
		})
		ep := start(t, conns, bus.Config{Name: "chain", Inbox: inbox("chain", 2)}, mux)
		if err := ep.Send(ctx, Ping{N: 1}, bus.To("sql://default/chain"), bus.Header("trace", "t-1")); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 5*time.Second, "the chain", func() bool { return second.len() == 1 })
		a, _ := first.get(0)
		b, _ := second.get(0)
		if a.CorrelationID != a.ID {
			t.Errorf("an original message's correlation id is its own id: %q vs %q", a.CorrelationID, a.ID)
		}
		if b.CorrelationID != a.CorrelationID || b.CausationID != a.ID {
			t.Errorf("correlation %q causation %q; want %q and %q", b.CorrelationID, b.CausationID, a.CorrelationID, a.ID)
		}
		if b.Headers["trace"] != "t-1" {
			t.Errorf("headers did not flow: %v", b.Headers)
		}
	})
}

// TestReservedHeaderRefused: a user header named ferry.* is refused with
// ErrReservedHeader, naming it, and nothing is sent.
func TestReservedHeaderRefused(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := t.Context()
		ep := pingSender(t, conns, "client")
		err := ep.Send(ctx, Ping{N: 1}, bus.To("sql://default/reserved"), bus.Header("ferry.id", "x"))
		if !errors.Is(err, bus.ErrReservedHeader) || !strings.Contains(err.Error(), `"ferry.id"`) {
			t.Fatalf("Send with header ferry.id: %v; want ErrReservedHeader naming it", err)
		}
		q, err := conns.Queue(ctx, "sql://default/reserved")
		if err != nil {
			t.Fatal(err)
		}
		if c, err := q.Count(ctx); err != nil || c.Total() != 0 {
			t.Fatalf("queue holds %+v (%v) after a refused send", c, err)
		}
	})
}

func TestDeferAndExpiry(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		var got recorder[Ping]
		var handledAt atomic.Int64
		mux := bus.NewMux()
		bus.Handle(mux, "ping", func(ctx context.Context, m *bus.Message, p Ping) error {
			handledAt.Store(time.Now().UnixMicro())
			got.add(m, p)
			return nil
		})
		ep := start(t, conns, bus.Config{Name: "d", Inbox: inbox("d", 2)}, mux)
		events := watch(t, ep)
		at := time.Now().Add(400 * time.Millisecond)
		if err := ep.Send(ctx, Ping{N: 1}, bus.To("sql://default/d"), bus.DeliverAt(at)); err != nil {
			t.Fatal(err)
		}
		if c := testkit.Count(t, conns, "sql://default/d"); c.Deferred != 1 {
			t.Errorf("deferred message counted %+v", c)
		}
		// Expired messages are dropped, not handled, and counted.
		if err := ep.Send(ctx, Ping{N: 2}, bus.To("sql://default/d"), bus.ExpiresAt(time.Now().Add(-time.Second))); err != nil {
			t.Fatal(err)
		}
		events.waitFor(t, 5*time.Second, bus.EventExpired, 1) // the expired message dropped
		if s := ep.Stats(); s.Expired != 1 {
			t.Errorf("stats %+v, want one expired", s)
		}
		testkit.Eventually(t, 5*time.Second, "the deferred message", func() bool { return got.len() == 1 })
		if h := time.UnixMicro(handledAt.Load()); h.Before(at) {
			t.Errorf("deferred message handled at %v, before %v", h, at)
		}
		env, p := got.get(0)
		if p.N != 1 || env.DeliverAt.IsZero() {
			t.Errorf("handled %+v, deliverAt %v", p, env.DeliverAt)
		}
		// The handler has run; the ack follows it.
		testkit.Eventually(t, 5*time.Second, "the queue empty", func() bool { return testkit.Count(t, conns, "sql://default/d").Total() == 0 })
	})
}

func TestPriorityHonoured(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		sender := pingSender(t, conns, "s")
		for i := range 5 {
			mustSend(t, sender, Ping{N: i}, bus.To("sql://default/p"))
		}
		mustSend(t, sender, Ping{N: 99}, bus.To("sql://default/p"), bus.Priority(10))
		var got recorder[Ping]
		h := bus.NewMux()
		record(h, "ping", &got)
		start(t, conns, bus.Config{Name: "p", Inbox: inbox("p", 1)}, h)
		testkit.Eventually(t, 5*time.Second, "all handled", func() bool { return got.len() == 6 })
		if env, p := got.get(0); p.N != 99 || env.Priority != 10 {
			t.Errorf("first handled %+v priority %d, want the priority-10 message", p, env.Priority)
		}
		for i := 1; i < 6; i++ {
			if _, p := got.get(i); p.N != i-1 {
				t.Errorf("position %d: got %d, want %d (oldest first)", i, p.N, i-1)
			}
		}
	})
}

func TestTransactionalSend(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		ep := pingSender(t, conns, "tx")
		store, err := conns.Store(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		for _, commit := range []bool{true, false} {
			tx, err := store.DB().BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := ep.SendTx(ctx, tx, Ping{N: 1}, bus.To("sql://default/txq")); err != nil {
				t.Fatal(err)
			}
			if commit {
				err = tx.Commit()
			} else {
				err = tx.Rollback()
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if c := testkit.Count(t, conns, "sql://default/txq"); c.Ready != 1 {
			t.Errorf("after one commit and one rollback the queue holds %+v, want 1 ready", c)
		}
	})
}

func TestTransactionalHandler(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		store := effectsTable(t, conns)
		var calls atomic.Int32
		mux := bus.NewMux()
		bus.RegisterType[Pong](mux, "pong")
		bus.HandleTx(mux, "ping", func(ctx context.Context, m *bus.Message, tx *sql.Tx, p Ping) error {
			if err := insertEffect(ctx, store, tx, m); err != nil {
				return err
			}
			if err := m.Send(ctx, Pong{N: p.N}, bus.To("sql://default/out")); err != nil {
				return err
			}
			if calls.Add(1) == 1 {
				return errors.New("fail after the effect: both must roll back")
			}
			return nil
		})
		ep := start(t, conns, bus.Config{Name: "txh", Inbox: inbox("txh", 1)}, mux)
		events := watch(t, ep)
		mustSend(t, ep, Ping{N: 5}, bus.To("sql://default/txh"))
		events.waitFor(t, 5*time.Second, bus.EventHandled, 1)
		if s := ep.Stats(); s.Handled != 1 {
			t.Errorf("stats %+v, want one handled", s)
		}
		n := countEffects(t, store)
		if n != 1 || calls.Load() != 2 {
			t.Errorf("effects %d after %d calls; want exactly 1 after 2", n, calls.Load())
		}
		if c := testkit.Count(t, conns, "sql://default/out"); c.Ready != 1 {
			t.Errorf("outgoing queue %+v, want exactly 1 message", c)
		}
		if c := testkit.Count(t, conns, "sql://default/txh"); c.Total() != 0 {
			t.Errorf("inbox %+v, want empty", c)
		}
	})
}

func TestIdempotentReceive(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		var calls atomic.Int32
		cfg := inbox("idem", 1)
		cfg.Idempotent = true
		ep := start(t, conns, bus.Config{Name: "idem", Inbox: cfg}, countPings(&calls, nil))
		for range 3 {
			mustSend(t, ep, Ping{}, bus.To("sql://default/idem"), bus.MessageID("same-id"))
		}
		testkit.Eventually(t, 5*time.Second, "three deliveries settled", func() bool {
			s := ep.Stats()
			return s.Handled+s.Duplicates == 3
		})
		if calls.Load() != 1 || ep.Stats().Duplicates != 2 {
			t.Errorf("handler called %d times, %d duplicates; want 1 and 2", calls.Load(), ep.Stats().Duplicates)
		}
	})
}

func TestBadMessagesReachErrorQueue(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		var good atomic.Int32
		mux := bus.NewMux()
		bus.Handle(mux, "ping", func(ctx context.Context, m *bus.Message, p Ping) error {
			if p.N < 0 {
				panic(fmt.Sprintf("negative ping %d", p.N))
			}
			good.Add(1)
			return nil
		})
		ep := start(t, conns, bus.Config{Name: "bad", Inbox: inbox("bad", 2)}, mux)
		events := watch(t, ep)
		send := func(body any) {
			t.Helper()
			mustSend(t, ep, body, bus.To("sql://default/bad"))
		}
		send(Ping{N: -1})                                  // panics
		send(bus.Raw{Type: "ping", Body: []byte("{oops")}) // cannot decode
		send(bus.Raw{Type: "nobody.handles", Body: []byte("{}")})
		for i := range 20 {
			send(Ping{N: i})
		}
		testkit.Eventually(t, 10*time.Second, "three messages in the error queue", func() bool {
			return testkit.Count(t, conns, "sql://default/bad-error").Ready == 3
		})
		testkit.Eventually(t, 5*time.Second, "the good messages handled", func() bool { return good.Load() == 20 })

		errq, err := conns.Queue(ctx, "sql://default/bad-error")
		if err != nil {
			t.Fatal(err)
		}
		ds, err := errq.Peek(ctx, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]string{}
		for _, d := range ds {
			if d.Headers[bus.HeaderSourceQueue] != "sql://default/bad" {
				t.Errorf("message %s: source queue %q", d.MessageID, d.Headers[bus.HeaderSourceQueue])
			}
			var fs []bus.Failure
			if err := jsonUnmarshal(d.Headers[bus.HeaderFailures], &fs); err != nil {
				t.Fatalf("failures header: %v", err)
			}
			if len(fs) != 3 {
				t.Errorf("message %s (%s): %d failures recorded, want 3 (MaxAttempts)", d.MessageID, d.Type, len(fs))
			}
			last := fs[len(fs)-1]
			if last.Endpoint != "bad" || last.Error == "" || last.At.IsZero() {
				t.Errorf("failure record %+v", last)
			}
			kinds[last.Kind] = last.Error
			if last.Kind == "panic" && !strings.Contains(last.Stack, "goroutine") {
				t.Errorf("panic failure without a stack: %q", last.Stack)
			}
		}
		for kind, want := range map[string]string{"panic": "negative ping -1", "decode": "decode message", "no-handler": `no handler for message type "nobody.handles"`} {
			if !strings.Contains(kinds[kind], want) {
				t.Errorf("failure of kind %s: %q, want it to say %q", kind, kinds[kind], want)
			}
		}
		// The counters move just after the error queue does.
		events.waitFor(t, 5*time.Second, bus.EventErrorQueued, 3)
		events.waitFor(t, 5*time.Second, bus.EventRetried, 6)
		if s := ep.Stats(); s.Errored != 3 || s.Retried != 6 {
			t.Errorf("stats %+v, want 3 errored and 6 retried", s)
		}
	})
}

func TestPermanentErrorSkipsRetries(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		var calls atomic.Int32
		mux := countPings(&calls, func(ctx context.Context, m *bus.Message, p Ping) error {
			return bus.Permanent(errors.New("invalid order"))
		})
		ep := start(t, conns, bus.Config{Name: "perm", Inbox: inbox("perm", 1)}, mux)
		events := watch(t, ep)
		mustSend(t, ep, Ping{}, bus.To("sql://default/perm"))
		events.waitFor(t, 5*time.Second, bus.EventErrorQueued, 1)
		if s := ep.Stats(); s.Errored != 1 {
			t.Errorf("stats %+v, want one errored", s)
		}
		if calls.Load() != 1 {
			t.Errorf("a permanent error was retried: %d calls", calls.Load())
		}
	})
}

func TestStopReleasesWhatIsLeft(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		var busy atomic.Int32
		unblock := make(chan struct{})
		mux := countPings(&busy, func(ctx context.Context, m *bus.Message, p Ping) error {
			if p.N == 0 {
				<-unblock // ignores ctx: a handler that will not stop
				return nil
			}
			<-ctx.Done() // honours ctx
			return ctx.Err()
		})
		ep := launch(t, conns, bus.Config{Name: "stop", Inbox: inbox("stop", 4)}, mux)
		defer close(unblock)
		for i := range 6 {
			mustSend(t, ep, Ping{N: i}, bus.To("sql://default/stop"))
		}
		testkit.Eventually(t, 5*time.Second, "four busy handlers", func() bool { return busy.Load() == 4 })
		stopCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if err := ep.Stop(stopCtx); err == nil {
			t.Error("Stop with busy handlers past its deadline returned no error")
		}
		c := testkit.Count(t, conns, "sql://default/stop")
		if c.InFlight != 0 || c.Ready != 6 {
			t.Errorf("after Stop: %+v; want nothing leased and all 6 ready", c)
		}
		q, _ := conns.Queue(ctx, "sql://default/stop")
		ds, _ := q.Peek(ctx, 0, 10)
		for _, d := range ds {
			if d.Attempts != 0 || d.Headers[bus.HeaderFailures] != "" {
				t.Errorf("message %s released at stop has attempts %d failures %q; shutdown is not a failure", d.MessageID, d.Attempts, d.Headers[bus.HeaderFailures])
			}
		}
	})
}

func TestStopWaitsForHandlers(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		var started atomic.Int32
		release := make(chan struct{})
		mux := countPings(&started, func(ctx context.Context, m *bus.Message, p Ping) error {
			<-release
			return nil
		})
		ep := launch(t, conns, bus.Config{Name: "wait", Inbox: inbox("wait", 2)}, mux)
		for i := range 2 {
			mustSend(t, ep, Ping{N: i}, bus.To("sql://default/wait"))
		}
		testkit.Eventually(t, 5*time.Second, "two busy handlers", func() bool { return started.Load() == 2 })
		time.AfterFunc(100*time.Millisecond, func() { close(release) })
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := ep.Stop(stopCtx); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if s := ep.Stats(); s.Handled != 2 {
			t.Errorf("handled %d, want 2", s.Handled)
		}
		if c := testkit.Count(t, conns, "sql://default/wait"); c.Total() != 0 {
			t.Errorf("queue after graceful stop: %+v", c)
		}
	})
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	conns := queue.NewConnections(map[string]string{}, queue.Options{})
	defer conns.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		cfg  bus.Config
		want string
	}{
		{bus.Config{}, "endpoint name"},
		{bus.Config{Name: "x", Inbox: &bus.InboxConfig{ErrorQueue: "sql://a/b"}}, "inbox.workQueue: required"},
		{bus.Config{Name: "x", Inbox: &bus.InboxConfig{WorkQueue: "sql://a/b"}}, "inbox.errorQueue: required"},
		{bus.Config{Name: "x", Inbox: &bus.InboxConfig{WorkQueue: "nope", ErrorQueue: "sql://a/b"}}, `inbox.workQueue: queue: invalid queue URI "nope"`},
		{bus.Config{Name: "x", Inbox: &bus.InboxConfig{WorkQueue: "sql://missing/q", ErrorQueue: "sql://a/b"}}, `unknown connection "missing"`},
		{bus.Config{Name: "x", Routes: []bus.Route{{Types: []string{"a"}, Queue: "sql://d/Bad"}}}, "routes[0].queue"},
		{bus.Config{Name: "x", Routes: []bus.Route{{Queue: "sql://d/q"}}}, "routes[0].types: empty"},
	} {
		_, err := bus.New(ctx, conns, tc.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %+v: error %v, want it to contain %q", tc.cfg, err, tc.want)
		}
	}
}

// Messages prefetched behind a stuck handler are given back for other
// consumers, instead of waiting under a renewed lease for as long as it hangs.
func TestPrefetchedMessagesBehindStuckHandlerAreGivenBack(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		stuck := make(chan struct{})
		defer close(stuck)
		var first atomic.Int32
		mux := countPings(&first, func(ctx context.Context, m *bus.Message, p Ping) error {
			select { // hangs, ignoring its context, as a broken handler would
			case <-stuck:
			}
			return nil
		})
		in := inbox("stuckq", 1)
		in.Lease, in.Prefetch = 600*time.Millisecond, 4
		ep := start(t, conns, bus.Config{Name: "stuck", Inbox: in}, mux)
		for i := range 5 {
			mustSend(t, ep, Ping{N: i}, bus.To("sql://default/stuckq"))
		}
		testkit.Eventually(t, 5*time.Second, "the first message in the stuck handler", func() bool { return first.Load() == 1 })

		var others atomic.Int32
		start(t, conns, bus.Config{Name: "helper", Inbox: inbox("stuckq", 2)}, countPings(&others, nil))
		testkit.Eventually(t, 10*time.Second, "the four buffered messages handled by the other endpoint", func() bool { return others.Load() == 4 })
		if first.Load() != 1 {
			t.Errorf("the stuck endpoint started %d handlers, want 1", first.Load())
		}
	})
}
