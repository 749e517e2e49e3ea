package bus

import (
	"context"
	"testing"

	"github.com/ferrybus/ferry/queue"
)

// With tracing off (no TracerProvider) the tracing hooks on the send and
// handle paths allocate nothing and read no header.
func TestTraceOffAllocatesNothing(t *testing.T) {
	e := &Endpoint{}
	ctx := context.Background()
	env := &Envelope{ID: "m1", Type: "t"}
	d := queue.Delivery{ID: 1, Message: queue.Message{MessageID: "m1", Headers: map[string]string{HeaderTraceparent: "00-bad"}}}
	f := &inflight{}
	out := []outgoing{{env: env}}
	allocs := testing.AllocsPerRun(1000, func() {
		if span := e.traceSend(ctx, kindSend, env, nil); span != nil {
			t.Fatal("a span with tracing off")
		}
		endSends(out, nil)
		hctx, end := e.traceHandle(ctx, d, f)
		if hctx != ctx {
			t.Fatal("traceHandle changed the context with tracing off")
		}
		end()
		e.traceFailed(d, KindError, "x")
	})
	if allocs != 0 {
		t.Errorf("tracing off allocates %.1f times per message, want 0", allocs)
	}
	if env.Headers != nil || f.span != nil {
		t.Errorf("tracing off touched the message: headers %v, span %v", env.Headers, f.span)
	}
}
