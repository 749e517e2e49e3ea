package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// Alert is one notification, as the webhook receives it (JSON).
type Alert struct {
	// Status is "firing" (also for repeats) or "resolved".
	Status string `json:"status"`
	Rule   string `json:"rule"`
	Kind   Kind   `json:"kind"`
	// Subject is what the alert is about: the endpoint (failureRate,
	// lockLost), the message id (failureCount), the queue URI (queueDepth,
	// queueAge) or the worker id (workerSilent).
	Subject string `json:"subject"`
	// Value is the measure at the notice; Threshold the rule's. Both are in
	// Unit: "ratio", "attempts", "messages", "seconds" or "active" (lockLost:
	// 1 while lost).
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Unit      string  `json:"unit"`
	// StartsAt is when the alert began firing; EndsAt when it was resolved
	// (absent while firing).
	StartsAt time.Time `json:"startsAt"`
	EndsAt   time.Time `json:"endsAt,omitzero"`
	Message  string    `json:"message"`
	Process  Process   `json:"process"`
}

// alert builds the notification of rule i about subject.
func (e *Engine) alert(i int, subject, status string, value float64, startsAt, endsAt time.Time, message string) Alert {
	r := e.rules[i]
	a := Alert{Status: status, Rule: r.Name, Kind: r.Kind, Subject: subject, Value: value, Threshold: r.Threshold,
		StartsAt: startsAt.UTC(), Message: message, Process: e.cfg.Process}
	if !endsAt.IsZero() {
		a.EndsAt = endsAt.UTC()
	}
	switch r.Kind {
	case FailureRate:
		a.Unit = "ratio"
	case FailureCount:
		a.Unit = "attempts"
	case QueueDepth:
		a.Unit = "messages"
	case QueueAge, WorkerSilent:
		a.Unit, a.Threshold = "seconds", r.ThresholdDuration.Seconds()
	case LockLost:
		a.Unit, a.Threshold = "active", 1
	}
	return a
}

// notify logs a notification and queues it for the webhook, never
// waiting: with the pending queue full it is dropped and counted.
func (e *Engine) notify(a Alert) {
	e.notified.Add(1)
	level := slog.LevelWarn
	if a.Status == "resolved" {
		level = slog.LevelInfo
	}
	e.log.Log(context.Background(), level, "alert "+a.Status, "rule", a.Rule, "kind", a.Kind, "subject", a.Subject,
		"value", a.Value, "threshold", a.Threshold, "unit", a.Unit, "startsAt", a.StartsAt, "message", a.Message)
	if e.cfg.Webhook.URL == "" {
		return
	}
	e.outMu.RLock()
	defer e.outMu.RUnlock()
	if e.closed {
		e.dropped.Add(1)
		return
	}
	select {
	case e.out <- a:
	default:
		if e.dropped.Add(1) == 1 || e.dropped.Load()%100 == 0 {
			e.log.Warn("alerts: webhook notifications pending over the bound; dropping", "pending", e.cfg.Pending, "dropped", e.dropped.Load(), "rule", a.Rule, "subject", a.Subject)
		}
	}
}

// sendLoop POSTs the queued notifications in order until the queue is
// closed, or ctx ends (what is left is dropped and counted).
func (e *Engine) sendLoop(ctx context.Context) {
	defer close(e.sendDone)
	for a := range e.out {
		if ctx.Err() != nil {
			e.dropped.Add(1)
			continue
		}
		e.deliver(ctx, a)
	}
}

// deliver POSTs one notification, up to MaxAttempts times with a growing
// wait between attempts.
func (e *Engine) deliver(ctx context.Context, a Alert) {
	w := e.cfg.Webhook
	body, err := json.Marshal(a)
	if err != nil { // an Alert always encodes; keep the promise of a log line anyway
		e.log.Error("alerts: cannot encode notification", "rule", a.Rule, "err", err)
		e.failed.Add(1)
		return
	}
	wait := w.Backoff
	for attempt := 1; ; attempt++ {
		err := e.post(ctx, body)
		if err == nil {
			e.sent.Add(1)
			return
		}
		if attempt >= w.MaxAttempts || ctx.Err() != nil {
			e.failed.Add(1)
			e.log.Error("alerts: webhook failed; notification given up", "url", w.URL, "attempts", attempt, "rule", a.Rule, "subject", a.Subject, "status", a.Status, "err", err)
			return
		}
		e.log.Warn("alerts: webhook failed; retrying", "url", w.URL, "attempt", attempt, "in", wait, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, maxBackoff)
	}
}

// post sends body once, within the webhook's timeout.
func (e *Engine) post(ctx context.Context, body []byte) error {
	w := e.cfg.Webhook
	ctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range w.Headers {
		req.Header.Set(k, v)
	}
	resp, err := w.Client.Do(req)
	if err != nil {
		return fmt.Errorf("POST: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("POST: %s", resp.Status)
	}
	return nil
}
