package dashboard

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/ferrybus/ferry/queue"
)

// TestSamplerCountsEnqueues: the enqueue rate between two samples is the
// growth of the database's highest row id, and a queue's depth follows
// its counts; the ring keeps at most ringSize samples.
func TestSamplerCountsEnqueues(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		s := newSampler(conns, DefaultSampleInterval, slog.New(slog.NewTextHandler(io.Discard, nil)))
		enqueue(t, conns, ordersURI, queue.Message{MessageID: "a"})
		s.take(ctx)
		if c := s.enqueueRate("default"); !c.Empty {
			t.Errorf("one sample drew a chart: %+v", c)
		}
		msgs := make([]queue.Message, 10)
		for i := range msgs {
			msgs[i] = queue.Message{MessageID: "m" + string(rune('a'+i))}
		}
		enqueue(t, conns, ordersURI, msgs...)
		s.take(ctx)
		c := s.enqueueRate("default")
		if c.Empty || c.Latest == "0/min" || !strings.HasSuffix(c.Latest, "/min") {
			t.Errorf("after 10 enqueues the rate is %+v, want above 0/min", c)
		}
		if d := s.depth(ordersURI); d.Empty || len(strings.Fields(d.Points)) != 2 || d.Latest != "11" {
			t.Errorf("depth chart %+v, want two points", d)
		}
		// Consuming everything does not make the rate negative: the high
		// water mark stays.
		q, _ := conns.Queue(ctx, ordersURI)
		if _, err := q.Purge(ctx); err != nil {
			t.Fatal(err)
		}
		s.take(ctx)
		if c := s.enqueueRate("default"); c.Latest != "0/min" {
			t.Errorf("after a purge the rate is %s, want 0/min", c.Latest)
		}
		for range ringSize + 5 {
			s.take(ctx)
		}
		if n := len(s.samples); n != ringSize {
			t.Errorf("%d samples kept, want %d", n, ringSize)
		}
	})
}
