package bus

import (
	"context"
	"math"
	"time"
)

// summaryIdleEvery is how many intervals an idle inbox stays silent before
// a summary line says it is alive.
const summaryIdleEvery = 10

// summaryLoop logs a summary line every interval in which the inbox did
// something, and every summaryIdleEvery intervals when it did nothing.
func (e *Endpoint) summaryLoop(ctx context.Context, every time.Duration) {
	defer e.sides.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	last, lastAt := e.Stats(), time.Now()
	idle := 0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cur := e.Stats()
			busy := cur != last
			if !busy {
				idle++
				if idle < summaryIdleEvery {
					continue
				}
			}
			e.logSummary(last, cur, now.Sub(lastAt))
			last, lastAt, idle = cur, now, 0
		}
	}
}

// logSummary logs what changed from prev to cur over elapsed.
func (e *Endpoint) logSummary(prev, cur Stats, elapsed time.Duration) {
	handled := cur.Handled - prev.Handled
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = math.Round(float64(handled)/s*10) / 10
	}
	e.log.Info("summary",
		"handled", handled,
		"failed", cur.Failed-prev.Failed,
		"retried", cur.Retried-prev.Retried,
		"errorQueued", cur.Errored-prev.Errored,
		"rate", rate, // handled messages per second over the interval
		"interval", elapsed.Round(time.Millisecond),
		"totalHandled", cur.Handled,
		"totalFailed", cur.Failed,
		"totalErrorQueued", cur.Errored,
	)
}
