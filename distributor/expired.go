package distributor

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// After an outage the control queue holds many announcements that expired
// while waiting; the control endpoint discards each with a warning. Those
// warnings are counted instead (and passed on at debug level), and the
// distributor logs one summary line per interval in which any expired.

// expiredDiscardMsg is the endpoint's log message for a discarded message.
const expiredDiscardMsg = "message discarded unhandled"

// summaryMsg is the distributor's one line for the expired control messages of an interval.
const summaryMsg = "discarded expired control messages: workers' announcements that waited too long in the control queue (as after an outage); workers repeat them"

// expiredFilter is the control endpoint's log handler.
type expiredFilter struct {
	next    slog.Handler
	expired bool // the logger carries kind=expired
	count   *atomic.Int64
}

func (h *expiredFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return (h.expired && l == slog.LevelWarn) || h.next.Enabled(ctx, l)
}

func (h *expiredFilter) Handle(ctx context.Context, r slog.Record) error {
	if h.expired && r.Level == slog.LevelWarn && r.Message == expiredDiscardMsg {
		h.count.Add(1)
		if !h.next.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r = r.Clone()
		r.Level = slog.LevelDebug
	} else if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *expiredFilter) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	for _, a := range attrs {
		if a.Key == "kind" && a.Value.String() == "expired" {
			c.expired = true
		}
	}
	return &c
}

func (h *expiredFilter) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}

// summariseExpired logs, every interval, how many control messages expired
// in it, if any. The last count is logged by stopActive, once the control
// endpoint has stopped.
func (d *Distributor) summariseExpired(ctx context.Context) {
	t := time.NewTicker(d.expiredEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.flushExpired()
		}
	}
}

func (d *Distributor) flushExpired() {
	if n := d.expiredCtl.Swap(0); n > 0 {
		d.log.Warn(summaryMsg, "messages", n, "control", d.control.Inbox().URI())
	}
}
