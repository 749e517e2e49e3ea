package testkit

import (
	"context"
	"testing"

	"github.com/ferrybus/ferry/queue"
)

// Count returns the counts of the queue at uri, failing the test when the
// queue cannot be resolved or counted.
func Count(t testing.TB, conns *queue.Connections, uri string) queue.Counts {
	t.Helper()
	q, err := conns.Queue(context.Background(), uri)
	if err != nil {
		t.Fatalf("queue %s: %v", uri, err)
	}
	c, err := q.Count(context.Background())
	if err != nil {
		t.Fatalf("count %s: %v", uri, err)
	}
	return c
}
