package distributor

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor/control"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// warnings returns the warnings logged with message msg, and the sum of
// their "messages" attributes.
func warnings(r *testkit.LogRecorder, msg string) (lines int, messages int64) {
	for _, rec := range r.Records() {
		if rec.Level != slog.LevelWarn || rec.Message != msg {
			continue
		}
		lines++
		if v, ok := rec.Attrs["messages"]; ok {
			messages += v.Int64()
		}
	}
	return lines, messages
}

// Control messages that expired in the control queue (as after an outage)
// give one summary line, not one warning each.
func TestExpiredControlMessagesAreSummarised(t *testing.T) {
	eachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		rec, log := testkit.NewLog()
		d := newIT(t, conns, Config{Logger: log})
		d.expiredEvery = time.Hour
		sender, err := bus.New(ctx, conns, bus.Config{Name: "w", Logger: itQuiet}, bus.NewMux())
		if err != nil {
			t.Fatal(err)
		}
		const n = 40
		sent := time.Now()
		for i := range n {
			if err := sender.Send(ctx, control.ThreadAvailable{WorkerID: "w", Session: bus.NewID(), Inbox: "sql://default/w", Thread: i, SentAt: sent},
				bus.To(itControl), bus.ExpiresIn(time.Millisecond)); err != nil {
				t.Fatal(err)
			}
		}
		testkit.Eventually(t, 10*time.Second, "the announcements to expire", func() bool { return time.Since(sent) > 10*time.Millisecond })
		startIT(t, d)
		testkit.Eventually(t, 20*time.Second, "the expired messages discarded", func() bool { return d.control.Stats().Expired == n })
		// The summary comes at the end of its interval, here at the stop.
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := d.Stop(stopCtx); err != nil {
			t.Fatal(err)
		}
		lines, m := warnings(rec, summaryMsg)
		if lines != 1 || m != n {
			t.Errorf("%d summary lines counting %d messages, want 1 counting %d", lines, m, n)
		}
		if each, _ := warnings(rec, expiredDiscardMsg); each != 0 {
			t.Fatalf("%d warnings, one per expired control message", each)
		}
	})
}
