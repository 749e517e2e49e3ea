package distributor

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor/control"
	"github.com/ferrybus/ferry/queue"
)

// recorder is a log handler that keeps every record at or above debug.
type recorder struct {
	mu    sync.Mutex
	attrs []slog.Attr
	recs  *[]slog.Record
	lock  *sync.Mutex
}

func newRecorder() *recorder {
	return &recorder{recs: &[]slog.Record{}, lock: &sync.Mutex{}}
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(r.attrs...)
	r.lock.Lock()
	defer r.lock.Unlock()
	*r.recs = append(*r.recs, rec)
	return nil
}
func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &recorder{attrs: append(append([]slog.Attr{}, r.attrs...), as...), recs: r.recs, lock: r.lock}
}
func (r *recorder) WithGroup(string) slog.Handler { return r }

// warnings returns the warnings logged with message msg, and the sum of
// their "messages" attributes.
func (r *recorder) warnings(msg string) (lines int, messages int64) {
	r.lock.Lock()
	defer r.lock.Unlock()
	for _, rec := range *r.recs {
		if rec.Level != slog.LevelWarn || rec.Message != msg {
			continue
		}
		lines++
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "messages" {
				messages += a.Value.Int64()
			}
			return true
		})
	}
	return lines, messages
}

// Control messages that expired in the control queue (as after an outage)
// give one summary line, not one warning each.
func TestExpiredControlMessagesAreSummarised(t *testing.T) {
	eachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		rec := newRecorder()
		d := newIT(t, conns, Config{Logger: slog.New(rec)})
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
		waitFor(t, 10*time.Second, "the announcements to expire", func() bool { return time.Since(sent) > 10*time.Millisecond })
		startIT(t, d)
		waitFor(t, 20*time.Second, "the expired messages discarded", func() bool { return d.control.Stats().Expired == n })
		// The summary comes at the end of its interval, here at the stop.
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := d.Stop(stopCtx); err != nil {
			t.Fatal(err)
		}
		lines, m := rec.warnings(summaryMsg)
		if lines != 1 || m != n {
			t.Errorf("%d summary lines counting %d messages, want 1 counting %d", lines, m, n)
		}
		if each, _ := rec.warnings(expiredDiscardMsg); each != 0 {
			t.Fatalf("%d warnings, one per expired control message", each)
		}
	})
}
