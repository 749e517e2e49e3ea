package bus

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/ferrybus/ferry/queue"
)

// maxErrorText bounds the error text kept per failure.
const maxErrorText = 2000

// failHandler classifies a handler's error. An error caused by shutdown is
// no failure: the message goes back untouched.
func (e *Endpoint) failHandler(ctx context.Context, d queue.Delivery, env *Envelope, err error, stack string) {
	if ctx.Err() != nil && stack == "" && !e.take {
		released, given := false, false
		_ = e.settle(d, func(sctx context.Context) error {
			released = true
			err := e.inbox.Release(sctx, d, queue.ReleaseOptions{Uncount: true})
			given = err == nil
			return err
		})
		if released && e.stopping.Load() {
			e.cancelReleased.Add(1)
		}
		if given {
			e.emit(EventReleased, d, "", "")
		}
		return
	}
	kind := KindError
	var de *DecodeError
	switch {
	case stack != "":
		kind = KindPanic
	case IsPermanent(err):
		kind = KindPermanent
	case errors.As(err, &de):
		kind = KindDecode
	}
	e.fail(d, env, kind, err, stack)
}

// fail records a failed attempt in the message and acts on it by the
// inbox's rules and defaults: discard (ack), retry (release after the
// policy's delay, while attempts are left) or park (move to the error queue).
func (e *Endpoint) fail(d queue.Delivery, env *Envelope, kind string, cause error, stack string) {
	text := cause.Error()
	if len(text) > maxErrorText {
		text = text[:maxErrorText]
	}
	if kind != KindExpired {
		e.count(EventFailed, d, kind, text)
	}
	e.traceFailed(d, kind, text)
	dec := e.rec.Load().decide(d.Type, kind, text)
	if d.HeadersErr != nil && dec.action == ActionRetry {
		// Stored headers that cannot be decoded stay so: a retry would only
		// rewrite them from nothing, and the message would then be handled
		// without them. Park it with the raw text instead.
		dec.action = ActionPark
	}
	var failures []Failure
	if env != nil {
		failures = env.Failures
	}
	failures = append(failures, Failure{At: time.Now(), Endpoint: e.cfg.Name, Error: text, Kind: kind, Stack: stack})
	log := e.log.With("message", d.MessageID, "type", d.Type, "attempt", d.Attempts, "kind", kind, "err", text)
	if dec.rule >= 0 {
		log = log.With("rule", dec.rule)
	}
	if e.take {
		e.discardTaken(d, log, kind, text, "taken off its queue (soft state): it cannot be retried")
		return
	}

	if dec.action == ActionDiscard {
		err := e.settle(d, func(ctx context.Context) error { return e.ack(ctx, d) })
		if err != nil {
			log.Warn("ack of a discarded message failed; it will be delivered again", "ackErr", err)
			return
		}
		e.count(EventDiscarded, d, kind, text)
		log.Warn("message discarded unhandled", "failures", len(failures))
		return
	}

	// Keep the stored headers as they were, malformed ones included, and
	// record the failure beside them.
	headers := make(map[string]string, len(d.Headers)+3)
	for k, v := range d.Headers {
		headers[k] = v
	}
	fb, _ := json.Marshal(failures)
	headers[HeaderFailures] = string(fb)
	if d.HeadersErr != nil {
		// Headers is empty: keep what was stored, byte for byte.
		if utf8.ValidString(d.RawHeaders) {
			headers[HeaderRawHeaders] = d.RawHeaders
		} else {
			headers[HeaderRawHeadersBase64] = base64.StdEncoding.EncodeToString([]byte(d.RawHeaders))
		}
	}

	if dec.action == ActionRetry {
		if delay, again := dec.policy.Delay(len(failures)); again {
			err := e.settle(d, func(ctx context.Context) error {
				return e.inbox.Release(ctx, d, queue.ReleaseOptions{Delay: delay, Headers: headers})
			})
			if err != nil {
				log.Warn("release for retry failed; the lease will expire", "releaseErr", err)
				return
			}
			e.count(EventRetried, d, kind, text)
			log.Warn("handling failed; will retry", "in", delay, "failures", len(failures))
			return
		}
	}
	// A message that names the queue it belongs to (a distributed one: its
	// distributor's inbox) returns there, not to this queue, which may be
	// gone by the time it is retried.
	source := e.inbox.URI()
	if to := d.Headers[HeaderReturnTo]; to != "" {
		source = to
	}
	headers[HeaderSourceQueue] = source
	headers[HeaderError] = text
	err := e.settle(d, func(ctx context.Context) error {
		return e.inbox.Move(ctx, d, e.errorQueue, headers)
	})
	if err != nil {
		log.Error("move to error queue failed; the lease will expire", "moveErr", err)
		return
	}
	e.count(EventErrorQueued, d, kind, text)
	reason := "attempts exhausted"
	if dec.action == ActionPark {
		reason = "parked"
	}
	log.Error("handling failed; moved to the error queue", "errorQueue", e.errorQueue.URI(), "failures", len(failures), "reason", reason)
}
