package distributor

import (
	"context"
	"time"

	"github.com/ferrybus/ferry/queue"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Tracing (OpenTelemetry): with Config.TracerProvider set, each message a
// move takes to a worker gets a "distribute" span, the child of the trace
// context it was sent with (its traceparent header), spanning the move. The
// move leaves that header as it was, so the worker's handle span is the
// send span's child too: the trace runs send → distribute and send →
// handle. Without a provider the move reads nothing back.

// tracerName is the instrumentation scope of the distributor's spans.
const tracerName = "github.com/ferrybus/ferry/distributor"

// Attributes of the messaging semantic conventions, and ferry's own.
const (
	attrDestination = attribute.Key("messaging.destination.name")
	attrMessageID   = attribute.Key("messaging.message.id")
	attrOpName      = attribute.Key("messaging.operation.name")
	attrOpType      = attribute.Key("messaging.operation.type")
	attrBatch       = attribute.Key("messaging.batch.message_count")
	attrSource      = attribute.Key("messaging.ferry.source.name")
	attrWorker      = attribute.Key("messaging.ferry.worker")
)

var attrSystem = attribute.String("messaging.system", "ferry")

// tracing is a distributor's tracer; nil when tracing is off.
type tracing struct {
	tracer trace.Tracer
	prop   propagation.TraceContext
}

// newTracing returns nil for a nil provider: tracing off.
func newTracing(tp trace.TracerProvider) *tracing {
	if tp == nil {
		return nil
	}
	// What every distribute span shares is the tracer's scope, not each
	// span's attributes (see bus/trace.go).
	return &tracing{tracer: tp.Tracer(tracerName, trace.WithInstrumentationAttributes(attrSystem,
		attrOpName.String("distribute"), attrOpType.String("send")))}
}

// moveReady is the fenced move of a turn to worker's queue dst. Traced, it
// asks the move for the moved messages and records a distribute span for
// each, with the move's start and end as its own.
func (d *Distributor) moveReady(ctx context.Context, dst queue.Queue, limit int, headers map[string]string, handoff queue.Handoff, worker string) (int, error) {
	if d.tr == nil {
		return d.inbox.MoveReadyFenced(ctx, dst, limit, headers, d.fence(), handoff)
	}
	began := time.Now()
	moved, err := d.inbox.MoveReadyFencedRows(ctx, dst, limit, headers, d.fence(), handoff)
	ended := time.Now()
	name, dstURI, src := "distribute "+dst.URI(), dst.URI(), d.inbox.URI()
	for _, m := range moved {
		parent := d.tr.prop.Extract(context.Background(), propagation.MapCarrier(m.Headers))
		_, span := d.tr.tracer.Start(parent, name, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithTimestamp(began), trace.WithAttributes(attrDestination.String(dstURI), attrSource.String(src), attrMessageID.String(m.MessageID),
				attrWorker.String(worker), attrBatch.Int(len(moved))))
		span.End(trace.WithTimestamp(ended))
	}
	return len(moved), err
}
