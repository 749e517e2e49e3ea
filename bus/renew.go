package bus

import (
	"context"
	"time"

	"github.com/ferrybus/ferry/queue"
)

// heartbeat renews the leases of messages whose handlers are still running
// and gives back messages that waited too long in the prefetch buffer (old
// idempotence records are forgotten by the retention loop, retention.go).
func (e *Endpoint) heartbeat(ctx context.Context) {
	defer e.beats.Done()
	every := e.lease / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if !e.take { // taken messages hold no lease
				e.renewLeases(ctx, now, every)
			}
		}
	}
}

// renewLeases extends the lease of every message in flight not renewed for
// every, and gives back those that waited in the prefetch buffer for half
// their lease.
func (e *Endpoint) renewLeases(ctx context.Context, now time.Time, every time.Duration) {
	e.inflight.Range(func(_, v any) bool {
		f := v.(*inflight)
		f.mu.Lock()
		defer f.mu.Unlock()
		switch {
		case f.released:
		case !f.started && now.Sub(f.received) >= e.lease/2:
			// Waited too long in the prefetch buffer (every thread is
			// busy, perhaps stuck): give it back for others to take.
			f.released = true
			if err := e.inbox.Release(ctx, f.d, queue.ReleaseOptions{Uncount: true}); err != nil {
				e.log.Warn("release of a long-buffered message failed; its lease will expire", "message", f.d.MessageID, "err", err)
			} else {
				if e.stopping.Load() {
					e.released.Add(1) // given back during Stop: part of its summary
				}
				e.emit(EventReleased, f.d, "", "")
			}
		case now.Sub(f.renewed) >= every:
			if err := e.inbox.Extend(ctx, f.d, e.lease); err != nil {
				e.log.Warn("lease renewal failed", "message", f.d.MessageID, "err", err)
			} else {
				f.renewed = now
			}
		}
		return true
	})
}
