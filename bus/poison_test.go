package bus_test

import (
	"context"
	"encoding/json"
	"github.com/ferrybus/ferry/internal/testkit"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/queue"
)

// TestInnocentBufferedMessageNotPoison: a poison message crashes its
// process again and again while an innocent one waits behind it in the
// prefetch buffer, collecting deliveries without a handler ever starting it.
// The poison message is parked as "poison"; the innocent one is handled.
func TestInnocentBufferedMessageNotPoison(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		const (
			work      = "sql://default/crashy"
			errorsURI = "sql://default/crashy-error"
		)
		mux := bus.NewMux()
		bus.RegisterType[Ping](mux, "ping")
		sender, err := bus.New(ctx, conns, bus.Config{Name: "sender"}, mux)
		if err != nil {
			t.Fatal(err)
		}
		// Sent in this order, they are received in this order: the poison
		// one goes to the only thread, the innocent one to the buffer.
		if err := sender.Send(ctx, Ping{N: 1}, bus.To(work), bus.MessageID("poison")); err != nil {
			t.Fatal(err)
		}
		if err := sender.Send(ctx, Ping{N: 2}, bus.To(work), bus.MessageID("innocent")); err != nil {
			t.Fatal(err)
		}
		var poisonStarts, innocentStarts atomic.Int32
		entered := make(chan struct{}, 16)
		handled := make(chan struct{}, 1)
		mux = bus.NewMux()
		bus.Handle(mux, "ping", func(ctx context.Context, m *bus.Message, p Ping) error {
			if m.ID == "poison" {
				poisonStarts.Add(1)
				entered <- struct{}{}
				<-ctx.Done() // "crashes the process": the test abandons the endpoint
				return ctx.Err()
			}
			innocentStarts.Add(1)
			handled <- struct{}{}
			return nil
		})
		cfg := inbox("crashy", 1)
		cfg.Prefetch = 1
		// Long enough that the heartbeat does not give the buffered message
		// back (after half a lease) before the "crash".
		cfg.Lease = 3 * time.Second
		const maxAttempts = 3 // inbox() sets MaxAttempts 3
		var ep *bus.Endpoint
		parked := func() bool { return testkit.Count(t, conns, errorsURI).Total() > 0 }
		for round := 1; ; round++ {
			if round > maxAttempts+3 {
				t.Fatalf("the poison message was not parked after %d crashes", round-1)
			}
			// Both visible again (their leases ended), so one receive takes both.
			testkit.Eventually(t, 20*time.Second, "both messages visible", func() bool {
				return testkit.Count(t, conns, work).Ready == 2
			})
			ep, err = bus.New(ctx, conns, bus.Config{Name: "crashy", Inbox: cfg}, mux)
			if err != nil {
				t.Fatal(err)
			}
			if err := ep.Start(ctx); err != nil {
				t.Fatal(err)
			}
			crashed := false
			testkit.Eventually(t, 20*time.Second, "the poison handler started or the message parked", func() bool {
				select {
				case <-entered:
					crashed = true
					return true
				default:
					return parked()
				}
			})
			if !crashed {
				break
			}
			// The innocent message waits in the buffer (two leased) as the process dies.
			if c := testkit.Count(t, conns, work); c.InFlight != 2 {
				t.Fatalf("round %d: inbox %+v, want both messages leased", round, c)
			}
			bus.Abandon(ep)
		}
		t.Cleanup(func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ep.Stop(sctx)
		})
		select {
		case <-handled:
		case <-time.After(20 * time.Second):
			t.Fatalf("the innocent message was not handled; error queue %+v", testkit.Count(t, conns, errorsURI))
		}
		testkit.Eventually(t, 10*time.Second, "the inbox empty", func() bool { return testkit.Count(t, conns, work).Total() == 0 })
		eq, err := conns.Queue(ctx, errorsURI)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := eq.Peek(ctx, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 || ds[0].MessageID != "poison" {
			ids := []string{}
			for _, d := range ds {
				ids = append(ids, d.MessageID)
			}
			t.Fatalf("error queue holds %v, want only the poison message", ids)
		}
		var fs []bus.Failure
		if err := json.Unmarshal([]byte(ds[0].Headers[bus.HeaderFailures]), &fs); err != nil || len(fs) != 1 || fs[0].Kind != bus.KindPoison {
			t.Errorf("poison message failures %s (%v), want one of kind poison", ds[0].Headers[bus.HeaderFailures], err)
		}
		// The first crash is not marked (a first delivery costs nothing), the
		// next maxAttempts are: one more start than maxAttempts at most.
		if n := poisonStarts.Load(); n < maxAttempts || n > maxAttempts+1 {
			t.Errorf("poison handler started %d times, want %d or %d", n, maxAttempts, maxAttempts+1)
		}
		if n := innocentStarts.Load(); n != 1 {
			t.Errorf("innocent handler started %d times, want 1", n)
		}
	})
}
