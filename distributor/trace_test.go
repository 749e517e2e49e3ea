package distributor_test

import (
	"context"
	"go.opentelemetry.io/otel/attribute"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
	"github.com/ferrybus/ferry/worker"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

type Done struct {
	N int `json:"n"`
}

// spanAttr returns a span's attribute value by key, or its scope's, "" when missing.
func spanAttr(s tracetest.SpanStub, key string) string {
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

// One trace from a send through the distributor and a worker to the
// handler and the message it sends: send (producer, the root) → distribute
// (the move, producer) and send → handle (consumer, on the worker) → the
// handler's send. The control traffic between worker and distributor is
// not traced.
func TestTraceThroughDistributor(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		exp := tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
		t.Cleanup(func() { tp.Shutdown(context.Background()) })

		newDistributor(t, conns, distributor.Config{Distribute: true, DistributeSendCount: 5, TracerProvider: tp}, nil)

		const workQueue = "sql://default/worker-w1-work"
		const doneQueue = "sql://default/done"
		mux := bus.NewMux()
		bus.RegisterType[Done](mux, "done")
		bus.Handle(mux, "job", func(ctx context.Context, m *bus.Message, j Job) error {
			return m.Send(ctx, Done{N: j.N}, bus.To(doneQueue))
		})
		w, err := worker.New(ctx, conns, bus.Config{Name: "w1", Logger: quiet, TracerProvider: tp,
			Inbox: &bus.InboxConfig{WorkQueue: workQueue, ErrorQueue: errorURI, Threads: 2}},
			mux, worker.Config{ID: "w1", DistributorControlQueue: controlURI, AvailabilityInterval: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			w.Stop(ctx)
		})

		cmux := bus.NewMux()
		bus.RegisterType[Job](cmux, "job")
		client, err := bus.New(ctx, conns, bus.Config{Name: "client", Logger: quiet, TracerProvider: tp}, cmux)
		if err != nil {
			t.Fatal(err)
		}
		if err := client.Send(ctx, Job{N: 1}, bus.To(inboxURI)); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 30*time.Second, "the handler's message sent", func() bool {
			return testkit.Count(t, conns, doneQueue).Total() == 1
		})
		testkit.Eventually(t, 10*time.Second, "4 spans ended", func() bool { return len(exp.GetSpans()) >= 4 })

		byName := map[string][]tracetest.SpanStub{}
		for _, s := range exp.GetSpans() {
			byName[s.Name] = append(byName[s.Name], s)
		}
		one := func(name string, kind trace.SpanKind) tracetest.SpanStub {
			t.Helper()
			ss := byName[name]
			if len(ss) != 1 {
				t.Fatalf("%d spans named %q, want 1; all spans: %v", len(ss), name, byName)
			}
			if ss[0].SpanKind != kind {
				t.Errorf("span %q is of kind %s, want %s", name, ss[0].SpanKind, kind)
			}
			if ss[0].Status.Code == codes.Error {
				t.Errorf("span %q has status %v", name, ss[0].Status)
			}
			return ss[0]
		}
		send := one("send "+inboxURI, trace.SpanKindProducer)
		dist := one("distribute "+workQueue, trace.SpanKindProducer)
		handle := one("handle "+workQueue, trace.SpanKindConsumer)
		reply := one("send "+doneQueue, trace.SpanKindProducer)
		if n := len(exp.GetSpans()); n != 4 {
			t.Errorf("%d spans, want exactly these 4 (control traffic is not traced): %v", n, byName)
		}

		if send.Parent.IsValid() {
			t.Errorf("the first send has a parent %v", send.Parent)
		}
		traceID := send.SpanContext.TraceID()
		for _, c := range []struct {
			span   tracetest.SpanStub
			parent tracetest.SpanStub
		}{{dist, send}, {handle, send}, {reply, handle}} {
			if c.span.SpanContext.TraceID() != traceID {
				t.Errorf("span %q is in trace %s, want %s", c.span.Name, c.span.SpanContext.TraceID(), traceID)
			}
			if c.span.Parent.SpanID() != c.parent.SpanContext.SpanID() {
				t.Errorf("span %q has parent %s, want %q (%s)", c.span.Name, c.span.Parent.SpanID(), c.parent.Name, c.parent.SpanContext.SpanID())
			}
		}
		id := spanAttr(send, "messaging.message.id")
		if id == "" || spanAttr(dist, "messaging.message.id") != id || spanAttr(handle, "messaging.message.id") != id {
			t.Errorf("message ids: send %q, distribute %q, handle %q; want one", id, spanAttr(dist, "messaging.message.id"), spanAttr(handle, "messaging.message.id"))
		}
		if spanAttr(dist, "messaging.ferry.worker") != "w1" || spanAttr(dist, "messaging.destination.name") != workQueue ||
			spanAttr(dist, "messaging.ferry.source.name") != inboxURI || spanAttr(dist, "messaging.operation.name") != "distribute" {
			t.Errorf("distribute span attributes: %v", dist.Attributes)
		}
		if !dist.StartTime.Before(dist.EndTime) && !dist.StartTime.Equal(dist.EndTime) {
			t.Errorf("distribute span ends (%s) before it starts (%s)", dist.EndTime, dist.StartTime)
		}
		if spanAttr(handle, "messaging.ferry.attempt") != "1" || spanAttr(handle, "messaging.consumer.group.name") != "w1" {
			t.Errorf("handle span attributes: %v", handle.Attributes)
		}
	})
}
