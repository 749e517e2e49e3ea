package bus

import (
	"context"
	"errors"

	"github.com/ferrybus/ferry/internal/role"
	"github.com/ferrybus/ferry/queue"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Tracing (OpenTelemetry). With Config.TracerProvider set, every message an
// endpoint sends carries its send span's W3C trace context in the
// "traceparent" (and "tracestate") headers, and the inbox handles each
// message in a consumer span whose parent is that context. The handler's
// ctx carries the handle span, so what it sends with that ctx is its child.
// Without a provider none of this runs: no span, no header read or written.

// Trace context headers (W3C Trace Context), kept among the user headers.
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// tracerName is the instrumentation scope of the bus's spans.
const tracerName = "github.com/ferrybus/ferry/bus"

// Attributes of the messaging semantic conventions, and ferry's own under
// messaging.ferry.*.
const (
	attrDestination  = attribute.Key("messaging.destination.name")
	attrMessageID    = attribute.Key("messaging.message.id")
	attrConversation = attribute.Key("messaging.message.conversation_id")
	attrOpName       = attribute.Key("messaging.operation.name")
	attrOpType       = attribute.Key("messaging.operation.type")
	attrConsumer     = attribute.Key("messaging.consumer.group.name")
	attrType         = attribute.Key("messaging.ferry.message.type")
	attrAttempt      = attribute.Key("messaging.ferry.attempt")
	attrFailureKind  = attribute.Key("messaging.ferry.failure.kind")
)

var attrSystem = attribute.String("messaging.system", "ferry")

// tracing is an endpoint's tracers; nil when tracing is off.
//
// What every span of a kind shares (messaging.system, the operation's name
// and type, and for handle spans the inbox and the endpoint) is given once,
// as the instrumentation scope's attributes of a tracer per operation,
// instead of on each span: the SDK's cost of a span grows with its
// attributes (BENCHMARKS.md §8), and a span carries only what differs per
// message.
type tracing struct {
	send   [len(sendOp)]trace.Tracer // by sendKind
	handle trace.Tracer              // made by prepareHandle, once the inbox is known
	tp     trace.TracerProvider
	prop   propagation.TraceContext
	// handleName is the handle spans' name, made once.
	handleName string
}

// prepareHandle makes the handle spans' tracer and name once the inbox is
// known.
func (t *tracing) prepareHandle(inbox, endpoint string) {
	t.handleName = "handle " + inbox
	t.handle = t.tp.Tracer(tracerName, trace.WithInstrumentationAttributes(attrSystem, attrOpName.String("handle"),
		attrOpType.String("process"), attrDestination.String(inbox), attrConsumer.String(endpoint)))
}

// newTracing returns nil for a nil provider: tracing off.
func newTracing(tp trace.TracerProvider) *tracing {
	if tp == nil {
		return nil
	}
	t := &tracing{tp: tp}
	for kind, op := range sendOp {
		t.send[kind] = tp.Tracer(tracerName, trace.WithInstrumentationAttributes(attrSystem, attrOpName.String(op), attrOpType.String("send")))
	}
	return t
}

// dropTraceContext removes trace headers inherited from a handled message:
// the new message's own send span sets them, or, untraced, it claims no
// parent it does not have.
func dropTraceContext(h map[string]string) {
	delete(h, HeaderTraceparent)
	delete(h, HeaderTracestate)
}

var sendOp = [...]string{kindSend: "send", kindPublish: "publish", kindReply: "reply"}

// traceSend starts the producer span of a message about to be sent to
// dests and writes its context into the message's headers. It returns nil
// when tracing is off or ctx says the send is ferry's own control traffic.
func (e *Endpoint) traceSend(ctx context.Context, kind sendKind, env *Envelope, dests []queue.Queue) trace.Span {
	if e.tr == nil || role.IsUntraced(ctx) {
		return nil
	}
	op := sendOp[kind]
	dest := env.Type // a publish to no subscriber or several
	if len(dests) == 1 {
		dest = dests[0].URI()
	}
	attrs := []attribute.KeyValue{attrDestination.String(dest), attrMessageID.String(env.ID), attrType.String(env.Type)}
	if env.CorrelationID != "" {
		attrs = append(attrs, attrConversation.String(env.CorrelationID))
	}
	ctx, span := e.tr.send[kind].Start(ctx, op+" "+dest, producerSpan, trace.WithAttributes(attrs...))
	if env.Headers == nil {
		env.Headers = make(map[string]string, 2)
	}
	e.tr.prop.Inject(ctx, propagation.MapCarrier(env.Headers))
	return span
}

// endSends ends the send spans of out, with err as their outcome.
func endSends(out []outgoing, err error) {
	for _, o := range out {
		if o.span == nil {
			continue
		}
		if err != nil {
			o.span.RecordError(err)
			o.span.SetStatus(codes.Error, err.Error())
		}
		o.span.End()
	}
}

// noEnd is traceHandle's end when tracing is off: no closure, no allocation.
func noEnd() {}

// The span kinds' options, made once.
var (
	consumerSpan = trace.WithSpanKind(trace.SpanKindConsumer)
	producerSpan = trace.WithSpanKind(trace.SpanKindProducer)
)

// traceHandle starts the consumer span of a delivery, a child of the trace
// context in its headers, and returns the handler's ctx carrying it and
// the func that ends it. The span is kept on f, so that fail can record
// the failure on it.
func (e *Endpoint) traceHandle(ctx context.Context, d queue.Delivery, f *inflight) (context.Context, func()) {
	if e.tr == nil {
		return ctx, noEnd
	}
	parent := e.tr.prop.Extract(ctx, propagation.MapCarrier(d.Headers))
	attrs := []attribute.KeyValue{attrMessageID.String(d.MessageID), attrType.String(d.Type), attrAttempt.Int(d.Attempts)}
	if c := d.Headers[HeaderCorrelationID]; c != "" {
		attrs = append(attrs, attrConversation.String(c))
	}
	hctx, span := e.tr.handle.Start(parent, e.tr.handleName, consumerSpan, trace.WithAttributes(attrs...))
	f.mu.Lock()
	f.span = span
	f.mu.Unlock()
	// hctx is the endpoint's context (cancelled at the end of Stop) with
	// the span in it.
	return hctx, func() { span.End() }
}

// traceFailed records a failed attempt on the delivery's handle span.
func (e *Endpoint) traceFailed(d queue.Delivery, kind, text string) {
	if e.tr == nil {
		return
	}
	v, ok := e.inflight.Load(d.ID)
	if !ok {
		return
	}
	f := v.(*inflight)
	f.mu.Lock()
	span := f.span
	f.mu.Unlock()
	if span == nil {
		return
	}
	span.SetAttributes(attrFailureKind.String(kind))
	span.RecordError(errors.New(text), trace.WithAttributes(attrFailureKind.String(kind)))
	span.SetStatus(codes.Error, kind+": "+text)
}
