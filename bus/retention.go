package bus

import (
	"context"
	"time"
)

// DefaultHandledRetention is how long an idempotent inbox remembers handled
// message ids when InboxConfig.HandledRetention is not set.
const DefaultHandledRetention = 7 * 24 * time.Hour

// retentionEvery is how often the retention loop runs (first at Start).
const retentionEvery = time.Minute

// retentionBatch bounds the rows one retention statement deletes, so that
// a large clean-out is many short statements, not one long transaction.
const retentionBatch = 1000

// startSideLoops starts the summary and retention loops the configuration
// asks for; stopSideLoops stops them. Both run under runMu.
func (e *Endpoint) startSideLoops() {
	ctx, stop := context.WithCancel(context.Background())
	e.sideStop = stop
	if e.cfg.SummaryInterval > 0 && !e.take {
		e.sides.Add(1)
		go e.summaryLoop(ctx, e.cfg.SummaryInterval)
	}
	if e.cfg.Inbox.ErrorRetention > 0 || (e.cfg.Inbox.Idempotent && !e.take) {
		e.sides.Add(1)
		go e.retentionLoop(ctx)
	}
}

func (e *Endpoint) stopSideLoops() {
	if e.sideStop != nil {
		e.sideStop()
	}
	e.sides.Wait()
}

// retentionLoop applies the retentions at Start and then every minute.
func (e *Endpoint) retentionLoop(ctx context.Context) {
	defer e.sides.Done()
	t := time.NewTicker(retentionEvery)
	defer t.Stop()
	for {
		e.retain(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// retain deletes the error queue's messages older than ErrorRetention and,
// for an idempotent inbox, the handled records older than HandledRetention;
// it logs and counts what it deleted.
func (e *Endpoint) retain(ctx context.Context, now time.Time) {
	in := e.cfg.Inbox
	if r := in.ErrorRetention; r > 0 {
		n, err := e.errorQueue.Expunge(ctx, now.Add(-r), retentionBatch)
		e.stats.expunged.Add(n)
		switch {
		case err != nil && ctx.Err() == nil:
			e.log.Warn("error-queue retention failed; trying again in a minute", "errorQueue", e.errorQueue.URI(), "deleted", n, "err", err)
		case n > 0:
			e.log.Info("error-queue retention: deleted messages older than the retention", "errorQueue", e.errorQueue.URI(), "deleted", n, "retention", r)
		}
	}
	if in.Idempotent && !e.take {
		r := in.HandledRetention
		if r <= 0 {
			r = DefaultHandledRetention
		}
		n, err := e.inbox.Store().ForgetHandled(ctx, now.Add(-r))
		e.stats.forgotten.Add(n)
		switch {
		case err != nil && ctx.Err() == nil:
			e.log.Warn("handled-record retention failed; trying again in a minute", "err", err)
		case n > 0:
			e.log.Info("handled-record retention: forgot handled message ids older than the retention", "deleted", n, "retention", r)
		}
	}
}
