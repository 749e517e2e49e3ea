package bus_test

import (
	"bytes"
	"context"
	"errors"
	"github.com/ferrybus/ferry/internal/testkit"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/queue"
)

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestStopKeepsRenewingLeases: a handler still running when Stop begins
// keeps its lease until it returns, so a second endpoint on the same queue
// does not receive the message meanwhile, and it is handled exactly once.
func TestStopKeepsRenewingLeases(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		// Renewed every third of it: a long lease leaves room for a slow
		// heartbeat on a loaded machine.
		const lease = 2 * time.Second
		entered := make(chan struct{}, 1)
		unblock := make(chan struct{})
		var firstCalls, secondCalls atomic.Int32
		mux1 := countPings(&firstCalls, func(ctx context.Context, m *bus.Message, p Ping) error {
			entered <- struct{}{}
			<-unblock
			return nil
		})
		in1 := inbox("renew", 1)
		in1.Lease, in1.Prefetch = lease, -1
		first := launch(t, conns, bus.Config{Name: "renew-1", Inbox: in1}, mux1)
		released := false
		defer func() {
			if !released {
				close(unblock)
			}
		}()
		mustSend(t, first, Ping{N: 1}, bus.To("sql://default/renew"))
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the handler never started")
		}

		mux2 := countPings(&secondCalls, nil)
		in2 := inbox("renew", 1)
		in2.Lease, in2.Prefetch = lease, -1
		start(t, conns, bus.Config{Name: "renew-2", Inbox: in2}, mux2)

		stopped := make(chan error, 1)
		go func() {
			sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			stopped <- first.Stop(sctx)
		}()
		// Several leases long: without renewal the lease ends within one, and
		// the second endpoint (polling every 100ms) takes the message.
		deadline := time.Now().Add(3 * lease)
		for time.Now().Before(deadline) {
			if secondCalls.Load() > 0 {
				t.Fatal("a second endpoint received the message while its handler was still running during Stop")
			}
			time.Sleep(20 * time.Millisecond)
		}
		select {
		case err := <-stopped:
			t.Fatalf("Stop returned (%v) while a handler was running", err)
		default:
		}
		released = true
		close(unblock)
		select {
		case err := <-stopped:
			if err != nil {
				t.Fatalf("Stop: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Stop did not return after the handler did")
		}
		testkit.Eventually(t, 10*time.Second, "the inbox empty", func() bool {
			return testkit.Count(t, conns, "sql://default/renew").Total() == 0
		})
		if s := first.Stats(); s.Handled != 1 {
			t.Errorf("first endpoint stats %+v, want 1 handled", s)
		}
		if n1, n2 := firstCalls.Load(), secondCalls.Load(); n1 != 1 || n2 != 0 {
			t.Errorf("handled %d times by the first endpoint and %d by the second; want exactly once, by the first", n1, n2)
		}
	})
}

// TestStopCountsReleasedMessages: the stop summary counts the buffered
// messages Stop gives back, and those whose handler outlived its deadline.
func TestStopCountsReleasedMessages(t *testing.T) {
	for _, deadline := range []bool{false, true} {
		name := "handler finishes"
		if deadline {
			name = "deadline passes"
		}
		t.Run(name, func(t *testing.T) {
			forEachStore(t, func(t *testing.T, conns *queue.Connections) {
				ctx := context.Background()
				entered := make(chan struct{}, 8)
				unblock := make(chan struct{})
				var once sync.Once
				release := func() { once.Do(func() { close(unblock) }) }
				defer release()
				mux := bus.NewMux()
				bus.Handle(mux, "ping", func(ctx context.Context, m *bus.Message, p Ping) error {
					entered <- struct{}{}
					select {
					case <-unblock:
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				})
				logs := &syncBuffer{}
				in := inbox("summary", 1)
				in.Prefetch = 5
				ep, err := bus.New(ctx, conns, bus.Config{Name: "summary", Inbox: in,
					Logger: slog.New(slog.NewJSONHandler(logs, nil))}, mux)
				if err != nil {
					t.Fatal(err)
				}
				for i := range 4 {
					if err := ep.Send(ctx, Ping{N: i}, bus.To("sql://default/summary")); err != nil {
						t.Fatal(err)
					}
				}
				if err := ep.Start(ctx); err != nil {
					t.Fatal(err)
				}
				select {
				case <-entered:
				case <-time.After(10 * time.Second):
					t.Fatal("the handler never started")
				}
				// One message in the handler, three waiting in the buffer.
				testkit.Eventually(t, 10*time.Second, "all four leased", func() bool {
					return testkit.Count(t, conns, "sql://default/summary").InFlight == 4
				})
				stopCtx, cancel := context.WithCancel(context.Background())
				defer cancel()
				stopped := make(chan error, 1)
				go func() { stopped <- ep.Stop(stopCtx) }()
				// The buffered three go back as soon as Stop begins.
				testkit.Eventually(t, 10*time.Second, "the buffered messages given back", func() bool {
					return testkit.Count(t, conns, "sql://default/summary").Ready == 3
				})
				want := int64(3)
				if deadline {
					cancel()
					want = 4
				} else {
					release()
				}
				var stopErr error
				select {
				case stopErr = <-stopped:
				case <-time.After(30 * time.Second):
					t.Fatal("Stop did not return")
				}
				if deadline != (stopErr != nil) {
					t.Errorf("Stop: %v", stopErr)
				}
				if deadline && !strings.Contains(stopErr.Error(), "4 message(s) released") {
					t.Errorf("Stop error %q does not count the 4 released messages", stopErr)
				}
				if !errors.Is(stopErr, context.Canceled) && deadline {
					t.Errorf("Stop error %v does not wrap the context's error", stopErr)
				}
				if got := ep.Released(); got != want {
					t.Errorf("Released() = %d, want %d", got, want)
				}
				if !strings.Contains(logs.String(), `"released":`+strconv.FormatInt(want, 10)+`,"stats"`) {
					t.Errorf("the stop summary does not say %d released:\n%s", want, logs.String())
				}
				if c := testkit.Count(t, conns, "sql://default/summary"); c.InFlight != 0 || c.Total() != want {
					t.Errorf("inbox %+v after Stop, want nothing leased and %d messages", c, want)
				}
			})
		})
	}
}
