package queuetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"testing"
	"time"

	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// waitTimeout bounds every wait on a condition.
const waitTimeout = 15 * time.Second

func mustQueue(t testing.TB, s queue.Store, name string) queue.Queue {
	t.Helper()
	q, err := s.Queue(name)
	if err != nil {
		t.Fatalf("Queue(%q): %v", name, err)
	}
	return q
}

// msg is the i-th test message of a series.
func msg(series string, i int) queue.Message {
	return queue.Message{
		MessageID: fmt.Sprintf("%s-%05d", series, i),
		Type:      "test." + series,
		Headers:   map[string]string{"n": strconv.Itoa(i), "series": series},
		Body:      []byte(fmt.Sprintf(`{"n":%d}`, i)),
	}
}

func msgs(series string, n int) []queue.Message {
	out := make([]queue.Message, n)
	for i := range out {
		out[i] = msg(series, i)
	}
	return out
}

func enqueue(t testing.TB, q queue.Queue, ms ...queue.Message) {
	t.Helper()
	if err := q.Enqueue(context.Background(), ms...); err != nil {
		t.Fatalf("Enqueue %d message(s) on %s: %v", len(ms), q.URI(), err)
	}
}

func receive(t testing.TB, q queue.Queue, max int, lease time.Duration) []queue.Delivery {
	t.Helper()
	ds, err := q.Receive(context.Background(), max, lease)
	if err != nil {
		t.Fatalf("Receive(%d, %s) on %s: %v", max, lease, q.URI(), err)
	}
	if len(ds) > max {
		t.Fatalf("Receive(%d) on %s returned %d deliveries", max, q.URI(), len(ds))
	}
	return ds
}

// receiveOne receives exactly one message.
func receiveOne(t testing.TB, q queue.Queue, lease time.Duration) queue.Delivery {
	t.Helper()
	ds := receive(t, q, 1, lease)
	if len(ds) != 1 {
		t.Fatalf("Receive on %s: got %d deliveries, want 1", q.URI(), len(ds))
	}
	return ds[0]
}

func expectEmptyReceive(t testing.TB, q queue.Queue, why string) {
	t.Helper()
	if ds := receive(t, q, 10, time.Minute); len(ds) != 0 {
		t.Fatalf("Receive on %s %s: got %d deliveries (first %s), want none", q.URI(), why, len(ds), ds[0].MessageID)
	}
}

// oneMessageQueue is queue name of a fresh store holding one message,
// msg(name, 0).
func oneMessageQueue(t *testing.T, h *harness, name string) queue.Queue {
	t.Helper()
	q := mustQueue(t, h.store(t), name)
	enqueue(t, q, msg(name, 0))
	return q
}

// eventuallyReceive polls Receive until it returns a message, and fails at
// the deadline.
func eventuallyReceive(t testing.TB, q queue.Queue, lease time.Duration, what string) queue.Delivery {
	t.Helper()
	var d queue.Delivery
	eventually(t, what, func() bool {
		ds := receive(t, q, 1, lease)
		if len(ds) == 1 {
			d = ds[0]
			return true
		}
		return false
	})
	return d
}

// eventually polls cond until it holds, failing the test after waitTimeout.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, waitTimeout, what, cond)
}

// count is the queue's counts by state, OldestReady left out (testCount
// checks it), so that counts compare with ==.
func count(t testing.TB, q queue.Queue) queue.Counts {
	t.Helper()
	c, err := q.Count(context.Background())
	if err != nil {
		t.Fatalf("Count on %s: %v", q.URI(), err)
	}
	c.OldestReady = time.Time{}
	return c
}

func expectCount(t testing.TB, q queue.Queue, want queue.Counts) {
	t.Helper()
	if got := count(t, q); got != want {
		t.Fatalf("Count on %s = %+v, want %+v", q.URI(), got, want)
	}
}

func peekAll(t testing.TB, q queue.Queue) []queue.Delivery {
	t.Helper()
	var out []queue.Delivery
	var after int64
	for {
		page, err := q.Peek(context.Background(), after, 500)
		if err != nil {
			t.Fatalf("Peek on %s: %v", q.URI(), err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].ID
	}
}

func ids(ds []queue.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.MessageID
	}
	return out
}

// checkMessage compares what a delivery carries with what was enqueued.
// Nil and empty headers or bodies are the same.
func checkMessage(t testing.TB, d queue.Delivery, want queue.Message) {
	t.Helper()
	if d.MessageID != want.MessageID {
		t.Errorf("MessageID = %q, want %q", d.MessageID, want.MessageID)
	}
	if d.Type != want.Type {
		t.Errorf("%s: Type = %q, want %q", want.MessageID, d.Type, want.Type)
	}
	if d.Priority != want.Priority {
		t.Errorf("%s: Priority = %d, want %d", want.MessageID, d.Priority, want.Priority)
	}
	if !maps.Equal(d.Headers, want.Headers) {
		t.Errorf("%s: Headers = %v, want %v", want.MessageID, d.Headers, want.Headers)
	}
	if !bytes.Equal(d.Body, want.Body) {
		t.Errorf("%s: Body = %q, want %q", want.MessageID, d.Body, want.Body)
	}
}

func expectLeaseLost(t testing.TB, err error, op string) {
	t.Helper()
	if !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("%s: err = %v, want ErrLeaseLost", op, err)
	}
}

// redeliver receives the only message of q under a short lease, waits for
// the lease to end and receives it again under a long one. It returns the
// stale delivery and the current one.
func redeliver(t testing.TB, q queue.Queue) (stale, current queue.Delivery) {
	t.Helper()
	const lease = 200 * time.Millisecond
	start := time.Now()
	stale = receiveOne(t, q, lease)
	current = eventuallyReceive(t, q, time.Hour, "the expired lease to redeliver the message")
	if elapsed := time.Since(start); elapsed < lease {
		t.Fatalf("message redelivered after %s, before its %s lease ended", elapsed, lease)
	}
	if current.ID != stale.ID || current.MessageID != stale.MessageID {
		t.Fatalf("redelivered %s (row %d), want %s (row %d)", current.MessageID, current.ID, stale.MessageID, stale.ID)
	}
	if current.LeaseToken == stale.LeaseToken {
		t.Fatalf("redelivery kept lease token %d", stale.LeaseToken)
	}
	return stale, current
}

// holdLock opens owner's session for lock name (closed when t ends) and
// takes the lock for ttl, failing unless it gets a token.
func holdLock(t *testing.T, s queue.Store, name, owner string, ttl time.Duration) int64 {
	t.Helper()
	openSession(t, s, name, owner)
	tok, err := s.AcquireLock(t.Context(), name, owner, ttl)
	if err != nil || tok == 0 {
		t.Fatalf("AcquireLock(%s, %s) = %d, %v; want a token", name, owner, tok, err)
	}
	return tok
}

// takeExpiredLock has owner a take lock name for a short lease and owner b
// take it once that lease ended (both sessions closed when t ends); it
// returns both tokens, failing unless b's is the greater.
func takeExpiredLock(t *testing.T, s queue.Store, name string) (old, cur int64) {
	t.Helper()
	openSession(t, s, name, "b")
	old = holdLock(t, s, name, "a", 50*time.Millisecond)
	eventually(t, "b to take the expired lock", func() bool {
		tok, err := s.AcquireLock(t.Context(), name, "b", time.Hour)
		if err != nil {
			t.Fatalf("AcquireLock: %v", err)
		}
		cur = tok
		return tok != 0
	})
	if cur <= old {
		t.Fatalf("token %d after %d, want it to grow", cur, old)
	}
	return old, cur
}

// holdAndRenew opens b's session for lock name and has a take the lock
// for an hour and renew it, failing unless the renewal keeps the token; it
// returns the token.
func holdAndRenew(t *testing.T, s queue.Store, name string) int64 {
	t.Helper()
	openSession(t, s, name, "b")
	tok := holdLock(t, s, name, "a", time.Hour)
	if again, err := s.AcquireLock(t.Context(), name, "a", time.Hour); err != nil || again != tok {
		t.Fatalf("renewal: token %d, want %d (%v)", again, tok, err)
	}
	return tok
}

// expectHeld fails t unless fence f's Held answers want without error.
func expectHeld(t *testing.T, f queue.Fence, want bool, what string) {
	t.Helper()
	if held, err := f.Held(t.Context()); err != nil || held != want {
		t.Fatalf("%s: held %v, %v; want %v", what, held, err, want)
	}
}

// openSession opens owner's session for lock name, closed when t ends.
func openSession(t *testing.T, s queue.Store, name, owner string) queue.LockSession {
	t.Helper()
	sess, err := s.OpenLockSession(t.Context(), name, owner)
	if err != nil || sess == nil {
		t.Fatalf("OpenLockSession(%s, %s) = %v, %v", name, owner, sess, err)
	}
	t.Cleanup(func() { sess.Close() })
	return sess
}

// bulkFill enqueues n messages m-0…m-(n-1) with three headers and returns
// their row ids in order.
func bulkFill(t *testing.T, q queue.Queue, n int) []int64 {
	t.Helper()
	ms := make([]queue.Message, n)
	for i := range ms {
		ms[i] = queue.Message{
			MessageID: fmt.Sprintf("m-%d", i),
			Type:      "t",
			Headers:   map[string]string{"keep": fmt.Sprint(i), "x.drop": "gone", "x.also": "gone"},
			Body:      []byte(fmt.Sprintf(`{"n":%d}`, i)),
		}
	}
	enqueue(t, q, ms...)
	var out []int64
	for _, d := range peekAll(t, q) {
		out = append(out, d.ID)
	}
	if len(out) != n {
		t.Fatalf("filled %d messages, peeked %d", n, len(out))
	}
	return out
}
