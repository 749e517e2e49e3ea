package bus_test

import (
	"context"
	"errors"
	"go.opentelemetry.io/otel/attribute"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// tracer is an SDK provider that samples everything into an in-memory exporter.
func tracer(t *testing.T) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp, exp
}

// attr returns a span's attribute value by key, or its scope's, "" when missing.
func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	// What all spans of an operation share is on the tracer's scope.
	if v, ok := s.InstrumentationScope.Attributes.Value(attribute.Key(key)); ok {
		return v.Emit()
	}
	return ""
}

// A traced endpoint: send → handle → the handler's send → a handle that
// fails for good, in one trace, each span the child of the one before, the
// failure recorded with its kind.
func TestTraceSendHandleFailure(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		tp, exp := tracer(t)
		mux := bus.NewMux()
		bus.Handle(mux, "placed", func(ctx context.Context, m *bus.Message, o OrderPlaced) error {
			return m.Send(ctx, OrderAccepted{ID: o.ID}, bus.To("sql://default/traced"))
		})
		bus.Handle(mux, "accepted", func(ctx context.Context, m *bus.Message, o OrderAccepted) error {
			return bus.Permanent(errors.New("out of stock"))
		})
		ep := start(t, conns, bus.Config{Name: "shop", Inbox: inbox("traced", 2), TracerProvider: tp}, mux)
		events := watch(t, ep)
		if err := ep.Send(context.Background(), OrderPlaced{ID: "o1"}, bus.To("sql://default/traced")); err != nil {
			t.Fatal(err)
		}
		events.waitFor(t, 10*time.Second, bus.EventErrorQueued, 1)
		testkit.Eventually(t, 10*time.Second, "4 spans ended", func() bool { return len(exp.GetSpans()) >= 4 })
		spans := exp.GetSpans()
		if len(spans) != 4 {
			t.Fatalf("got %d spans, want 4: %v", len(spans), spans)
		}
		byParent := map[trace.SpanID]tracetest.SpanStub{}
		for _, s := range spans {
			byParent[s.Parent.SpanID()] = s
		}
		want := []struct {
			name string
			kind trace.SpanKind
			typ  string
		}{
			{"send sql://default/traced", trace.SpanKindProducer, "placed"},
			{"handle sql://default/traced", trace.SpanKindConsumer, "placed"},
			{"send sql://default/traced", trace.SpanKindProducer, "accepted"},
			{"handle sql://default/traced", trace.SpanKindConsumer, "accepted"},
		}
		parent := trace.SpanID{} // the first is a root
		traceID := spans[0].SpanContext.TraceID()
		var chain []tracetest.SpanStub
		for i, w := range want {
			s, ok := byParent[parent]
			if !ok {
				t.Fatalf("span %d (%s): no span has parent %s; spans: %v", i, w.name, parent, spans)
			}
			if s.Name != w.name || s.SpanKind != w.kind || attr(s, "messaging.ferry.message.type") != w.typ {
				t.Errorf("span %d = %q kind %s type %q; want %q kind %s type %q", i, s.Name, s.SpanKind, attr(s, "messaging.ferry.message.type"), w.name, w.kind, w.typ)
			}
			if s.SpanContext.TraceID() != traceID {
				t.Errorf("span %d (%s) is in trace %s, want %s", i, s.Name, s.SpanContext.TraceID(), traceID)
			}
			if attr(s, "messaging.system") != "ferry" || attr(s, "messaging.message.id") == "" || attr(s, "messaging.destination.name") != "sql://default/traced" {
				t.Errorf("span %d (%s) attributes: %v", i, s.Name, s.Attributes)
			}
			chain = append(chain, s)
			parent = s.SpanContext.SpanID()
		}
		if chain[0].Parent.IsValid() {
			t.Errorf("the first send has a parent: %v", chain[0].Parent)
		}
		if attr(chain[1], "messaging.ferry.attempt") != "1" || attr(chain[1], "messaging.message.id") != attr(chain[0], "messaging.message.id") {
			t.Errorf("handle span attributes %v, send's %v", chain[1].Attributes, chain[0].Attributes)
		}
		if chain[1].Status.Code == codes.Error {
			t.Errorf("the handled message's span has status %v", chain[1].Status)
		}
		failed := chain[3]
		if failed.Status.Code != codes.Error || attr(failed, "messaging.ferry.failure.kind") != bus.KindPermanent || len(failed.Events) == 0 {
			t.Errorf("failed handle span: status %v, attributes %v, events %v; want an error status, kind %q, an exception event",
				failed.Status, failed.Attributes, failed.Events, bus.KindPermanent)
		}
	})
}

// Without a TracerProvider nothing writes trace headers, and a trace
// context that came with a handled message does not flow on to what its
// handler sends (it would claim a parent it does not have).
func TestTraceOffWritesNoHeader(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		plain := pingSender(t, conns, "plain")
		mustSend(t, plain, Ping{N: 1}, bus.To("sql://default/out"))
		q, err := conns.Queue(ctx, "sql://default/out")
		if err != nil {
			t.Fatal(err)
		}
		ds, err := q.Peek(ctx, 0, 10)
		if err != nil || len(ds) != 1 {
			t.Fatalf("peek: %v, %v", ds, err)
		}
		for _, h := range []string{bus.HeaderTraceparent, bus.HeaderTracestate} {
			if v, ok := ds[0].Headers[h]; ok {
				t.Errorf("untraced send wrote %s = %q", h, v)
			}
		}

		// A traced sender, an untraced handler that sends on.
		tp, _ := tracer(t)
		mux := bus.NewMux()
		bus.RegisterType[Ping](mux, "ping")
		traced, err := bus.New(ctx, conns, bus.Config{Name: "traced", TracerProvider: tp}, mux)
		if err != nil {
			t.Fatal(err)
		}
		hmux := bus.NewMux()
		bus.RegisterType[Pong](hmux, "pong")
		bus.Handle(hmux, "ping", func(ctx context.Context, m *bus.Message, p Ping) error {
			if m.Headers[bus.HeaderTraceparent] == "" {
				return bus.Permanent(errors.New("the traced sender's message came without traceparent"))
			}
			return m.Send(ctx, Pong{N: p.N}, bus.To("sql://default/pongs"), bus.Header("kept", "yes"))
		})
		ep := start(t, conns, bus.Config{Name: "untraced", Inbox: inbox("pings", 1)}, hmux)
		events := watch(t, ep)
		if err := traced.Send(ctx, Ping{N: 2}, bus.To("sql://default/pings"), bus.Header("kept", "yes")); err != nil {
			t.Fatal(err)
		}
		events.waitFor(t, 10*time.Second, bus.EventHandled, 1)
		pongs, err := conns.Queue(ctx, "sql://default/pongs")
		if err != nil {
			t.Fatal(err)
		}
		ds, err = pongs.Peek(ctx, 0, 10)
		if err != nil || len(ds) != 1 {
			t.Fatalf("peek pongs: %v, %v", ds, err)
		}
		if v, ok := ds[0].Headers[bus.HeaderTraceparent]; ok {
			t.Errorf("the untraced handler's send carries the parent's traceparent %q", v)
		}
		if ds[0].Headers["kept"] != "yes" {
			t.Errorf("user headers did not flow on: %v", ds[0].Headers)
		}
	})
}
