package bus_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// TestSummaryLines: with SummaryInterval set the endpoint logs summary
// lines whose deltas add up to what it did (handled, retried, moved to the
// error queue), with totals; an idle inbox logs only every 10 intervals.
func TestSummaryLines(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		rec, log := testkit.NewLog()
		var calls atomic.Int32
		mux := countPings(&calls, func(ctx context.Context, m *bus.Message, p Ping) error {
			if p.N < 0 {
				return errors.New("negative ping")
			}
			return nil
		})
		const every = 50 * time.Millisecond
		in := inbox("summary", 2)
		in.Retry = &bus.RetryPolicy{MaxAttempts: 3, Backoff: []time.Duration{0}}
		start(t, conns, bus.Config{Name: "summarised", Inbox: in, Logger: log, SummaryInterval: every}, mux)
		sender := pingSender(t, conns, "sender", bus.Route{Types: []string{"ping"}, Queue: in.WorkQueue})
		for _, n := range []int{1, 2, 3, -1} {
			mustSend(t, sender, Ping{N: n})
		}
		sum := func(key string) int64 {
			var n int64
			for _, r := range rec.Matching("summary") {
				n += r.Attrs[key].Int64()
			}
			return n
		}
		testkit.Eventually(t, 30*time.Second, "summaries of 3 handled and 1 error-queued", func() bool {
			return sum("handled") == 3 && sum("errorQueued") == 1
		})
		if got := sum("retried"); got != 2 {
			t.Errorf("summaries add up to %d retried, want 2 (3 attempts)", got)
		}
		if got := sum("failed"); got != 3 {
			t.Errorf("summaries add up to %d failed attempts, want 3", got)
		}
		lines := rec.Matching("summary")
		if last := lines[len(lines)-1]; last.Attrs["totalHandled"].Int64() != 3 || last.Attrs["totalErrorQueued"].Int64() != 1 {
			t.Errorf("last summary %v: want totals of 3 handled, 1 error-queued", last)
		}
		for _, r := range lines {
			if r.Level != slog.LevelInfo {
				t.Errorf("summary at %s, want info: %v", r.Level, r)
			}
		}
		// Idle: two lines in a row with nothing done are 10 intervals apart.
		idleLines := func() []testkit.LogRecord {
			var out []testkit.LogRecord
			for _, r := range rec.Matching("summary") {
				if r.Attrs["handled"].Int64() == 0 && r.Attrs["failed"].Int64() == 0 {
					out = append(out, r)
				}
			}
			return out
		}
		testkit.Eventually(t, 60*time.Second, "two idle summary lines", func() bool { return len(idleLines()) >= 2 })
		for _, r := range idleLines() {
			// The ticker may fire a little early or late; 9 intervals is
			// far above the 1 an endpoint logging every tick would show.
			if d := r.Attrs["interval"].Duration(); d < 9*every {
				t.Errorf("idle summary after %s, want one per 10 intervals (%s): %v", d, 10*every, r)
			}
		}
	})
}

// TestNoSummaryByDefault: without SummaryInterval no summary is logged.
func TestNoSummaryByDefault(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		rec, log := testkit.NewLog()
		var calls atomic.Int32
		in := inbox("quiet", 1)
		start(t, conns, bus.Config{Name: "quiet", Inbox: in, Logger: log}, countPings(&calls, nil))
		sender := pingSender(t, conns, "sender", bus.Route{Types: []string{"ping"}, Queue: in.WorkQueue})
		mustSend(t, sender, Ping{N: 1})
		testkit.Eventually(t, 30*time.Second, "the ping handled", func() bool { return calls.Load() == 1 })
		if n := len(rec.Matching("summary")); n != 0 {
			t.Errorf("%d summary lines with SummaryInterval 0, want none", n)
		}
	})
}
