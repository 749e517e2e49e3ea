// Package queuetest is the conformance suite that every queue store must
// pass, in the style of River's driver tests: one body of tests, run once per
// dialect.
//
// # Design
//
// A store runner hands [Run] a [NewDSN] function rather than ready-made
// stores. Each call of it returns the connection string of a fresh, empty,
// private database (a new SQLite file, a new PostgreSQL schema) that lives
// until the test ends. From that one function the suite gets everything it
// needs:
//
//   - a store to test: queue.Open on a new DSN, with AutoMigrate and the
//     options the suite requires (MaxPoll of 5s, so that a prompt ReceiveWait
//     can only be explained by a wake-up, not by polling);
//   - a second handle on the same database: queue.Open on the same DSN, to
//     prove that wake-ups cross connections (PostgreSQL LISTEN/NOTIFY) and
//     that uncommitted enqueues stay invisible to other connections;
//   - a separate database: a second call of NewDSN, for moves across
//     databases.
//
// Every subtest opens its own databases, so no test sees another's data.
// Tests wait on conditions with deadlines; the few fixed waits left are
// there to prove that something does NOT happen before a time (a lease that
// was extended, a receiver that must be idle before it can be woken), and
// say so where they stand.
package queuetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/ferrybus/ferry/internal/testkit"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrybus/ferry/queue"
)

// NewDSN returns the connection string of a fresh, empty database private to
// t (created on demand, removed when t ends). Every call returns a different
// database. testdb.DSN(t, "sqlite"|"postgres") is one.
type NewDSN func(t testing.TB) string

// MaxPoll is the idle poll ceiling of every store the suite opens. It is
// large so that the wake-up tests can tell a wake-up from a poll.
const MaxPoll = 5 * time.Second

// ConnectionName is the connection name of every store the suite opens; it
// shows in queue URIs (sql://test/QUEUE).
const ConnectionName = "test"

// OpenStore opens dsn as the suite does (AutoMigrate, MaxPoll, Name) and
// closes the store when t ends.
func OpenStore(t testing.TB, dsn string) queue.Store {
	t.Helper()
	s, err := queue.Open(context.Background(), dsn, queue.Options{
		Name:        ConnectionName,
		AutoMigrate: true,
		MaxPoll:     MaxPoll,
	})
	if err != nil {
		t.Fatalf("open %s: %v", queue.RedactDSN(dsn), err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

// Run runs the conformance suite against the store that newDSN's databases
// hold. Each subtest runs on databases of its own.
func Run(t *testing.T, newDSN NewDSN) {
	h := &harness{newDSN: newDSN}
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"EnqueueReceiveOne", testEnqueueReceiveOne},
		{"EnqueueReceiveMany", testEnqueueReceiveMany},
		{"EnqueueValidation", testEnqueueValidation},
		{"ReceiveArguments", testReceiveArguments},
		{"QueuesAreIsolated", testQueuesAreIsolated},
		{"ConcurrentReceivers", testConcurrentReceivers},
		{"LeaseExpiryRedelivers", testLeaseExpiryRedelivers},
		{"AckLeaseLost", testAckLeaseLost},
		{"AckBatch", testAckBatch},
		{"SettlePeekedRefused", testSettlePeekedRefused},
		{"MalformedHeadersDelivered", testMalformedHeadersDelivered},
		{"Extend", testExtend},
		{"ReleaseDelay", testReleaseDelay},
		{"ReleaseHeaders", testReleaseHeaders},
		{"ReleaseUncount", testReleaseUncount},
		{"ReleaseLeaseLost", testReleaseLeaseLost},
		{"DeferredVisibleAt", testDeferredVisibleAt},
		{"Count", testCount},
		{"PriorityOrder", testPriorityOrder},
		{"EnqueueTxCommit", testEnqueueTxCommit},
		{"EnqueueTxRollback", testEnqueueTxRollback},
		{"MoveSameDatabase", testMoveSameDatabase},
		{"MoveAcrossDatabases", testMoveAcrossDatabases},
		{"MoveLeaseLost", testMoveLeaseLost},
		{"MoveReadySameDatabase", testMoveReadySameDatabase},
		{"MoveReadyAcrossDatabases", testMoveReadyAcrossDatabases},
		{"MoveReadyEndsStaleLease", testMoveReadyEndsStaleLease},
		{"Peek", testPeek},
		{"StoreQueues", testStoreQueues},
		{"Purge", testPurge},
		{"PurgeUnderInflow", testPurgeUnderInflow},
		{"ReceiveWaitReturnsReady", testReceiveWaitReturnsReady},
		{"ReceiveWaitHonoursContext", testReceiveWaitHonoursContext},
		{"QueueNames", testQueueNames},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
	// The wake-up tests mostly wait for a receiver to go idle: they run in
	// parallel with each other, after the tests above.
	wake := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"ReceiveWaitWakesOnEnqueue", testWakeSameHandle},
		{"ReceiveWaitWakesAcrossConnections", testWakeOtherHandle},
		{"ReceiveWaitWakesOnCommitAcrossConnections", testWakeOnCommit},
		{"ReceiveWaitWakesOnCommitSameStore", testWakeOnCommitSameStore},
	}
	for _, tc := range wake {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, h)
		})
	}
}

type harness struct {
	newDSN NewDSN
}

// store opens a store on a fresh database.
func (h *harness) store(t *testing.T) queue.Store {
	t.Helper()
	return OpenStore(t, h.newDSN(t))
}

// storeDSN opens a store on a fresh database and returns its DSN too.
func (h *harness) storeDSN(t *testing.T) (queue.Store, string) {
	t.Helper()
	dsn := h.newDSN(t)
	return OpenStore(t, dsn), dsn
}

// --- helpers -----------------------------------------------------------------

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
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func count(t testing.TB, q queue.Queue) queue.Counts {
	t.Helper()
	c, err := q.Count(context.Background())
	if err != nil {
		t.Fatalf("Count on %s: %v", q.URI(), err)
	}
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

// --- enqueue and receive -----------------------------------------------------

func testEnqueueReceiveOne(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "orders")
	want := queue.Message{
		MessageID: "0190e6b2-7b5c-7cc0-8f3e-1a2b3c4d5e6f",
		Type:      "orders.placed",
		Priority:  7,
		Headers:   map[string]string{"correlationId": "c-1", "ünïcode": "✓ \"quoted\"", "empty": ""},
		Body:      []byte{0, 1, 2, 0xff, 0xfe, '{', '}', 0},
	}
	before := time.Now().Truncate(time.Microsecond)
	if err := q.Enqueue(ctx, want); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	expectCount(t, q, queue.Counts{Ready: 1})

	const lease = time.Minute
	recvAt := time.Now().Truncate(time.Microsecond)
	d := receiveOne(t, q, lease)
	checkMessage(t, d, want)
	if d.Queue != "orders" {
		t.Errorf("Queue = %q, want orders", d.Queue)
	}
	if d.Attempts != 1 {
		t.Errorf("Attempts = %d, want 1", d.Attempts)
	}
	if d.ID <= 0 {
		t.Errorf("ID = %d, want > 0", d.ID)
	}
	if d.LeaseToken == 0 {
		t.Error("LeaseToken = 0, want a token")
	}
	if d.EnqueuedAt.Before(before) || d.EnqueuedAt.After(after) {
		t.Errorf("EnqueuedAt = %s, want within [%s, %s]", d.EnqueuedAt, before, after)
	}
	if d.VisibleAt.Before(recvAt.Add(lease)) || d.VisibleAt.After(time.Now().Add(lease)) {
		t.Errorf("VisibleAt = %s, want the lease end, about %s", d.VisibleAt, recvAt.Add(lease))
	}
	expectCount(t, q, queue.Counts{InFlight: 1})
	expectEmptyReceive(t, q, "while the only message is leased")

	if err := q.Ack(ctx, d); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	expectCount(t, q, queue.Counts{})
	expectEmptyReceive(t, q, "after Ack")

	// A message without headers or body comes back without them.
	bare := queue.Message{MessageID: "bare"}
	enqueue(t, q, bare)
	d = receiveOne(t, q, time.Minute)
	checkMessage(t, d, bare)
	if len(d.Headers) != 0 || len(d.Body) != 0 {
		t.Errorf("bare message came back with headers %v, body %q", d.Headers, d.Body)
	}
}

func testEnqueueReceiveMany(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "many")
	const n = 2500 // more than one 1000-row INSERT chunk
	want := msgs("many", n)
	for i := range want {
		want[i].Priority = 0
		if i%7 == 0 {
			want[i].Headers = nil
		}
		if i%11 == 0 {
			want[i].Body = nil
		}
	}
	if err := q.Enqueue(ctx, want...); err != nil {
		t.Fatal(err)
	}
	expectCount(t, q, queue.Counts{Ready: n})

	var got []queue.Delivery
	for len(got) < n {
		ds := receive(t, q, 300, time.Minute)
		if len(ds) == 0 {
			t.Fatalf("queue ran dry after %d of %d messages", len(got), n)
		}
		got = append(got, ds...)
	}
	expectEmptyReceive(t, q, "after receiving every message")
	// Equal priority: oldest first, so the order of Enqueue.
	for i, d := range got {
		checkMessage(t, d, want[i])
		if d.Attempts != 1 {
			t.Errorf("%s: Attempts = %d, want 1", d.MessageID, d.Attempts)
		}
		if i > 0 && d.ID <= got[i-1].ID {
			t.Errorf("row ids not increasing: %d after %d", d.ID, got[i-1].ID)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	expectCount(t, q, queue.Counts{InFlight: n})
	if err := q.Ack(ctx, got...); err != nil {
		t.Fatalf("Ack of %d: %v", n, err)
	}
	expectCount(t, q, queue.Counts{})
}

func testEnqueueValidation(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "valid")
	if err := q.Enqueue(ctx); err != nil {
		t.Fatalf("Enqueue of nothing: %v", err)
	}
	if err := q.Enqueue(ctx, queue.Message{Body: []byte("x")}); err == nil {
		t.Fatal("Enqueue of a message without MessageID succeeded")
	} else if !strings.Contains(err.Error(), "MessageID") {
		t.Errorf("error %q does not say what is missing", err)
	}
	// One bad message refuses the whole call, even beyond the first chunk.
	batch := msgs("batch", 1500)
	batch[1200].MessageID = ""
	if err := q.Enqueue(ctx, batch...); err == nil {
		t.Fatal("Enqueue of a batch holding a message without MessageID succeeded")
	}
	expectCount(t, q, queue.Counts{})
}

func testReceiveArguments(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "args")
	enqueue(t, q, msg("args", 0))
	if ds, err := q.Receive(ctx, 0, time.Minute); err != nil || len(ds) != 0 {
		t.Fatalf("Receive(max 0) = %d deliveries, %v; want none, nil", len(ds), err)
	}
	if _, err := q.Receive(ctx, 1, 0); err == nil {
		t.Fatal("Receive with a zero lease succeeded")
	}
	if _, err := q.Receive(ctx, 1, -time.Second); err == nil {
		t.Fatal("Receive with a negative lease succeeded")
	}
	expectCount(t, q, queue.Counts{Ready: 1})
	if d := receiveOne(t, q, time.Minute); d.Attempts != 1 {
		t.Fatalf("Attempts = %d after refused receives, want 1", d.Attempts)
	}
}

func testQueuesAreIsolated(t *testing.T, h *harness) {
	s := h.store(t)
	a, b := mustQueue(t, s, "a"), mustQueue(t, s, "b")
	enqueue(t, a, msgs("a", 3)...)
	expectEmptyReceive(t, b, "of another queue")
	expectCount(t, b, queue.Counts{})
	expectCount(t, a, queue.Counts{Ready: 3})
	if got := receive(t, a, 10, time.Minute); len(got) != 3 {
		t.Fatalf("received %d from a, want 3", len(got))
	}
}

// --- concurrency ---------------------------------------------------------------

func testConcurrentReceivers(t *testing.T, h *harness) {
	s := h.store(t)
	q := mustQueue(t, s, "work")
	const (
		n       = 2000
		workers = 8
		batch   = 7
	)
	enqueue(t, q, msgs("work", n)...)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var (
		mu       sync.Mutex
		inFlight = map[string]int{} // message id -> worker holding it
		acked    = map[string]int{} // message id -> times acked
		total    int
		perW     [workers]int
	)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ds, err := q.ReceiveWait(ctx, batch, time.Minute)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("worker %d: ReceiveWait: %v", w, err)
						cancel()
					}
					return
				}
				mu.Lock()
				for _, d := range ds {
					if other, ok := inFlight[d.MessageID]; ok {
						t.Errorf("worker %d received %s while worker %d holds it", w, d.MessageID, other)
					}
					if acked[d.MessageID] > 0 {
						t.Errorf("worker %d received %s after it was acked", w, d.MessageID)
					}
					inFlight[d.MessageID] = w
				}
				mu.Unlock()
				if err := q.Ack(context.Background(), ds...); err != nil {
					t.Errorf("worker %d: Ack: %v", w, err)
					cancel()
					return
				}
				mu.Lock()
				for _, d := range ds {
					delete(inFlight, d.MessageID)
					acked[d.MessageID]++
				}
				total += len(ds)
				perW[w] += len(ds)
				if total >= n {
					cancel() // every message handled: stop the idle workers
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if total != n {
		t.Fatalf("acked %d of %d messages before the deadline", total, n)
	}
	for _, m := range msgs("work", n) {
		if acked[m.MessageID] != 1 {
			t.Errorf("%s acked %d times, want 1", m.MessageID, acked[m.MessageID])
		}
	}
	expectCount(t, q, queue.Counts{})
	t.Logf("messages per worker: %v", perW)
}

// --- leases ------------------------------------------------------------------

func testLeaseExpiryRedelivers(t *testing.T, h *harness) {
	s := h.store(t)
	q := mustQueue(t, s, "lease")
	enqueue(t, q, msg("lease", 0))
	const lease = 200 * time.Millisecond
	start := time.Now()
	d1 := receiveOne(t, q, lease)
	if d1.Attempts != 1 {
		t.Fatalf("first delivery Attempts = %d, want 1", d1.Attempts)
	}
	ds := receive(t, q, 1, time.Minute)
	if len(ds) != 0 && time.Since(start) < lease {
		t.Fatalf("message received again while its lease runs")
	}
	d2 := eventuallyReceive(t, q, time.Minute, "the expired lease to redeliver")
	if time.Since(start) < lease {
		t.Fatalf("redelivered after %s, before the %s lease ended", time.Since(start), lease)
	}
	if d2.ID != d1.ID || d2.MessageID != d1.MessageID {
		t.Fatalf("redelivered %s, want %s", d2.MessageID, d1.MessageID)
	}
	if d2.Attempts != 2 {
		t.Fatalf("redelivery Attempts = %d, want 2", d2.Attempts)
	}
	if d2.LeaseToken == d1.LeaseToken {
		t.Fatal("redelivery kept the old lease token")
	}
	checkMessage(t, d2, msg("lease", 0))
}

func testAckLeaseLost(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "ack")
	enqueue(t, q, msg("ack", 0))
	stale, current := redeliver(t, q)

	err := q.Ack(ctx, stale)
	expectLeaseLost(t, err, "Ack with an expired, re-leased delivery")
	if !strings.Contains(err.Error(), stale.MessageID) {
		t.Errorf("Ack error %q does not name message %s", err, stale.MessageID)
	}
	expectCount(t, q, queue.Counts{InFlight: 1}) // the stale ack removed nothing
	if err := q.Ack(ctx, current); err != nil {
		t.Fatalf("Ack with the current delivery: %v", err)
	}
	expectCount(t, q, queue.Counts{})
	expectLeaseLost(t, q.Ack(ctx, current), "second Ack of an acked delivery")
}

// testMalformedHeadersDelivered: a row whose headers column is not a JSON
// object of strings (written by something other than ferry) is delivered
// with HeadersErr set, beside the good messages of the same batch, and can
// be acked: it never blocks the queue.
func testMalformedHeadersDelivered(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "malformed")
	enqueue(t, q, msg("malformed", 0))
	now := time.Now().UnixMicro()
	if _, err := testkit.SQLX(s).ExecContext(ctx, testkit.SQLX(s).Rebind(`INSERT INTO ferry_messages
 (queue, message_id, type, priority, visible_at, enqueued_at, headers, body) VALUES (?, ?, ?, 0, ?, ?, ?, ?)`),
		"malformed", "bad-headers", "t", now, now, `{"a":1`, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	enqueue(t, q, msg("malformed", 2))
	ds, err := q.Receive(ctx, 10, time.Minute)
	if err != nil {
		t.Fatalf("Receive with a malformed row in the batch: %v", err)
	}
	if len(ds) != 3 {
		t.Fatalf("received %d messages, want 3", len(ds))
	}
	for _, d := range ds {
		switch {
		case d.MessageID == "bad-headers" && (d.HeadersErr == nil || d.Headers != nil):
			t.Errorf("malformed row: HeadersErr %v, Headers %v; want an error and no headers", d.HeadersErr, d.Headers)
		case d.MessageID == "bad-headers" && !strings.Contains(d.HeadersErr.Error(), `{\"a\":1`):
			t.Errorf("HeadersErr %q does not quote the stored text", d.HeadersErr)
		case d.MessageID != "bad-headers" && d.HeadersErr != nil:
			t.Errorf("%s: HeadersErr %v", d.MessageID, d.HeadersErr)
		}
	}
	if err := q.Ack(ctx, ds...); err != nil {
		t.Fatal(err)
	}
	expectCount(t, q, queue.Counts{})
}

// testSettlePeekedRefused: a peeked delivery carries no lease, so acking,
// extending, releasing or moving it is refused and the message stays.
func testSettlePeekedRefused(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "peeked")
	other := mustQueue(t, s, "peeked-other")
	enqueue(t, q, msg("peeked", 0))
	page, err := q.Peek(ctx, 0, 10)
	if err != nil || len(page) != 1 {
		t.Fatalf("Peek: %d messages, %v; want 1", len(page), err)
	}
	p := page[0]
	for op, err := range map[string]error{
		"Ack":     q.Ack(ctx, p),
		"Extend":  q.Extend(ctx, p, time.Minute),
		"Release": q.Release(ctx, p, queue.ReleaseOptions{}),
		"Move":    q.Move(ctx, p, other, nil),
	} {
		if !errors.Is(err, queue.ErrNotLeased) {
			t.Errorf("%s of a peeked delivery: err = %v, want ErrNotLeased", op, err)
		} else if !strings.Contains(err.Error(), p.MessageID) {
			t.Errorf("%s error %q does not name message %s", op, err, p.MessageID)
		}
	}
	if acked, err := q.AckMany(ctx, []queue.Delivery{p}); err != nil || len(acked) != 0 {
		t.Errorf("AckMany of a peeked delivery: %v, %v; want nothing acked", acked, err)
	}
	expectCount(t, q, queue.Counts{Ready: 1})
	expectCount(t, other, queue.Counts{})
}

func testAckBatch(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "batch")
	const n = 450 // more than one SQLite ack chunk
	enqueue(t, q, msgs("batch", n)...)
	ds := receive(t, q, n, time.Minute)
	if len(ds) != n {
		t.Fatalf("received %d, want %d", len(ds), n)
	}
	if err := q.Ack(ctx, ds...); err != nil {
		t.Fatalf("batch Ack: %v", err)
	}
	expectCount(t, q, queue.Counts{})
	if err := q.Ack(ctx); err != nil {
		t.Fatalf("Ack of nothing: %v", err)
	}

	// A batch with one lost lease: the error says so, the others are acked.
	enqueue(t, q, msg("lost", 0))
	stale, current := redeliver(t, q)
	enqueue(t, q, msgs("more", 2)...)
	more := receive(t, q, 2, time.Minute)
	if len(more) != 2 {
		t.Fatalf("received %d, want 2", len(more))
	}
	err := q.Ack(ctx, more[0], stale, more[1])
	expectLeaseLost(t, err, "batch Ack holding a stale delivery")
	if !strings.Contains(err.Error(), "1 of 3") {
		t.Errorf("batch Ack error %q does not say how many were lost", err)
	}
	expectCount(t, q, queue.Counts{InFlight: 1})
	if err := q.Ack(ctx, current); err != nil {
		t.Fatalf("Ack of the current delivery: %v", err)
	}
	expectCount(t, q, queue.Counts{})
}

func testExtend(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "extend")
	enqueue(t, q, msg("extend", 0))
	const lease = 300 * time.Millisecond
	start := time.Now()
	d := receiveOne(t, q, lease)
	if err := q.Extend(ctx, d, time.Hour); err != nil {
		t.Fatalf("Extend: %v", err)
	}
	// A fixed wait is the point: the original lease must pass unnoticed.
	time.Sleep(time.Until(start.Add(lease + 150*time.Millisecond)))
	expectEmptyReceive(t, q, "after the original lease ended but the extended one runs")
	expectCount(t, q, queue.Counts{InFlight: 1})

	// Shorten the lease to end now: the message comes back.
	if err := q.Extend(ctx, d, time.Millisecond); err != nil {
		t.Fatalf("Extend to shorten: %v", err)
	}
	d2 := eventuallyReceive(t, q, time.Hour, "the shortened lease to end")
	if d2.ID != d.ID || d2.Attempts != 2 {
		t.Fatalf("got %s attempts %d, want %s attempts 2", d2.MessageID, d2.Attempts, d.MessageID)
	}
	expectLeaseLost(t, q.Extend(ctx, d, time.Hour), "Extend of a lost lease")
	if err := q.Extend(ctx, d2, time.Hour); err != nil {
		t.Fatalf("Extend of the current lease: %v", err)
	}
	if err := q.Ack(ctx, d2); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	expectLeaseLost(t, q.Extend(ctx, d2, time.Hour), "Extend of an acked message")
}

// --- release -------------------------------------------------------------------

func testReleaseDelay(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "release")
	enqueue(t, q, msg("release", 0))

	// Without delay: ready again at once.
	d := receiveOne(t, q, time.Hour)
	if err := q.Release(ctx, d, queue.ReleaseOptions{}); err != nil {
		t.Fatalf("Release: %v", err)
	}
	expectCount(t, q, queue.Counts{Ready: 1})
	d = receiveOne(t, q, time.Hour)
	if d.Attempts != 2 {
		t.Fatalf("Attempts = %d after a release, want 2", d.Attempts)
	}

	// With delay: deferred until it passes.
	const delay = 400 * time.Millisecond
	released := time.Now()
	if err := q.Release(ctx, d, queue.ReleaseOptions{Delay: delay}); err != nil {
		t.Fatalf("Release with delay: %v", err)
	}
	c := count(t, q)
	ds := receive(t, q, 1, time.Hour)
	if time.Since(released) < delay {
		if c != (queue.Counts{Deferred: 1}) {
			t.Fatalf("Count during the release delay = %+v, want 1 deferred", c)
		}
		if len(ds) != 0 {
			t.Fatal("released message received before its delay passed")
		}
	}
	d3 := eventuallyReceive(t, q, time.Hour, "the release delay to pass")
	if since := time.Since(released); since < delay {
		t.Fatalf("received %s after release, before the %s delay", since, delay)
	}
	if d3.ID != d.ID || d3.Attempts != 3 || d3.LeaseToken == d.LeaseToken {
		t.Fatalf("got %s attempts %d token %d; want %s attempts 3 and a new token", d3.MessageID, d3.Attempts, d3.LeaseToken, d.MessageID)
	}
	checkMessage(t, d3, msg("release", 0))
	expectLeaseLost(t, q.Ack(ctx, d), "Ack of the released delivery")
	if err := q.Ack(ctx, d3); err != nil {
		t.Fatal(err)
	}
}

func testReleaseHeaders(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "headers")
	m := msg("headers", 0)
	m.Headers = map[string]string{"a": "1", "b": "2"}
	enqueue(t, q, m)

	d := receiveOne(t, q, time.Hour)
	if err := q.Release(ctx, d, queue.ReleaseOptions{}); err != nil { // nil keeps them
		t.Fatal(err)
	}
	d = receiveOne(t, q, time.Hour)
	if want := m.Headers; !maps.Equal(d.Headers, want) {
		t.Fatalf("after Release without headers: %v, want %v", d.Headers, want)
	}
	failure := map[string]string{"failure": "boom", "a": "9"}
	if err := q.Release(ctx, d, queue.ReleaseOptions{Headers: failure}); err != nil {
		t.Fatal(err)
	}
	d = receiveOne(t, q, time.Hour)
	if !maps.Equal(d.Headers, failure) {
		t.Fatalf("after Release with headers: %v, want exactly %v", d.Headers, failure)
	}
	if err := q.Release(ctx, d, queue.ReleaseOptions{Headers: map[string]string{}}); err != nil {
		t.Fatal(err)
	}
	d = receiveOne(t, q, time.Hour)
	if len(d.Headers) != 0 {
		t.Fatalf("after Release with empty headers: %v, want none", d.Headers)
	}
	if !bytes.Equal(d.Body, m.Body) || d.Type != m.Type {
		t.Fatal("Release changed the body or type")
	}
}

func testReleaseUncount(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "uncount")
	enqueue(t, q, msg("uncount", 0))
	d := receiveOne(t, q, time.Hour)
	if d.Attempts != 1 {
		t.Fatalf("Attempts = %d, want 1", d.Attempts)
	}
	for range 3 {
		if err := q.Release(ctx, d, queue.ReleaseOptions{Uncount: true}); err != nil {
			t.Fatal(err)
		}
		d = receiveOne(t, q, time.Hour)
		if d.Attempts != 1 {
			t.Fatalf("Attempts = %d after an uncounted release, want 1", d.Attempts)
		}
	}
	if err := q.Release(ctx, d, queue.ReleaseOptions{}); err != nil {
		t.Fatal(err)
	}
	if d = receiveOne(t, q, time.Hour); d.Attempts != 2 {
		t.Fatalf("Attempts = %d after a counted release, want 2", d.Attempts)
	}
}

func testReleaseLeaseLost(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "rlost")
	enqueue(t, q, msg("rlost", 0))
	stale, current := redeliver(t, q)
	expectLeaseLost(t, q.Release(ctx, stale, queue.ReleaseOptions{Headers: map[string]string{"x": "y"}}), "Release of a lost lease")
	expectCount(t, q, queue.Counts{InFlight: 1}) // the current lease is untouched
	if err := q.Release(ctx, current, queue.ReleaseOptions{}); err != nil {
		t.Fatal(err)
	}
	d := receiveOne(t, q, time.Hour)
	if !maps.Equal(d.Headers, msg("rlost", 0).Headers) {
		t.Fatalf("headers %v: the stale release changed them", d.Headers)
	}
	expectLeaseLost(t, q.Release(ctx, current, queue.ReleaseOptions{}), "second Release of one delivery")
}

// --- deferral, counts and order -------------------------------------------------

func testDeferredVisibleAt(t *testing.T, h *harness) {
	s := h.store(t)
	q := mustQueue(t, s, "deferred")
	const defer_ = 500 * time.Millisecond
	later := msg("later", 0)
	later.VisibleAt = time.Now().Add(defer_)
	past := msg("past", 0)
	past.VisibleAt = time.Now().Add(-time.Hour) // in the past: visible now
	enqueue(t, q, later, past)

	c := count(t, q)
	ds := receive(t, q, 10, time.Hour)
	if time.Now().Before(later.VisibleAt) {
		if c != (queue.Counts{Ready: 1, Deferred: 1}) {
			t.Fatalf("Count = %+v, want 1 ready, 1 deferred", c)
		}
		if !slices.Equal(ids(ds), []string{past.MessageID}) {
			t.Fatalf("received %v before the deferral ended, want only %s", ids(ds), past.MessageID)
		}
	}
	d := eventuallyReceive(t, q, time.Hour, "the deferred message to become visible")
	if now := time.Now(); now.Before(later.VisibleAt) {
		t.Fatalf("deferred message received at %s, before its VisibleAt %s", now, later.VisibleAt)
	}
	checkMessage(t, d, later)
	if d.Attempts != 1 {
		t.Fatalf("Attempts = %d, want 1", d.Attempts)
	}
}

func testCount(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "count")
	other := mustQueue(t, s, "count-other")
	expectCount(t, q, queue.Counts{})
	enqueue(t, q, msgs("ready", 3)...)
	deferred := msgs("deferred", 2)
	for i := range deferred {
		deferred[i].VisibleAt = time.Now().Add(time.Hour)
	}
	enqueue(t, q, deferred...)
	enqueue(t, other, msgs("other", 4)...)
	expectCount(t, q, queue.Counts{Ready: 3, Deferred: 2})

	d := receiveOne(t, q, time.Hour)
	c := count(t, q)
	if c != (queue.Counts{Ready: 2, Deferred: 2, InFlight: 1}) || c.Total() != 5 {
		t.Fatalf("Count = %+v (total %d), want 2 ready, 2 deferred, 1 in flight", c, c.Total())
	}
	if err := q.Release(ctx, d, queue.ReleaseOptions{Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	expectCount(t, q, queue.Counts{Ready: 2, Deferred: 3})
	// A lease that ends makes its message ready, not in flight.
	receiveOne(t, q, 50*time.Millisecond)
	eventually(t, "the short lease to end", func() bool {
		return count(t, q) == queue.Counts{Ready: 2, Deferred: 3}
	})
	expectCount(t, other, queue.Counts{Ready: 4})
}

func testPriorityOrder(t *testing.T, h *harness) {
	s := h.store(t)
	prios := []int{0, 5, 1, 5, 0, -1, 10}
	var ms []queue.Message
	for i, p := range prios {
		m := msg("p", i)
		m.Priority = p
		ms = append(ms, m)
	}
	// Higher priority first; equal priority oldest (lowest row id) first.
	want := []string{"p-00006", "p-00001", "p-00003", "p-00002", "p-00000", "p-00004", "p-00005"}

	one := mustQueue(t, s, "one-by-one")
	enqueue(t, one, ms...)
	var got []string
	for range ms {
		d := receiveOne(t, one, time.Hour)
		got = append(got, d.MessageID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("one at a time: order %v, want %v", got, want)
	}

	batch := mustQueue(t, s, "batch")
	enqueue(t, batch, ms...)
	if got := ids(receive(t, batch, len(ms), time.Hour)); !slices.Equal(got, want) {
		t.Fatalf("in one batch: order %v, want %v", got, want)
	}

	// A partial batch takes the highest priorities.
	partial := mustQueue(t, s, "partial")
	enqueue(t, partial, ms...)
	if got := ids(receive(t, partial, 3, time.Hour)); !slices.Equal(got, want[:3]) {
		t.Fatalf("batch of 3: %v, want %v", got, want[:3])
	}
}

// --- transactions ------------------------------------------------------------

func testEnqueueTxCommit(t *testing.T, h *harness) {
	ctx := t.Context()
	s, dsn := h.storeDSN(t)
	observer := mustQueue(t, OpenStore(t, dsn), "tx") // another connection pool
	q := mustQueue(t, s, "tx")
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := q.EnqueueTx(ctx, tx, msgs("tx", 3)...); err != nil {
		t.Fatalf("EnqueueTx: %v", err)
	}
	// While the transaction is open, only reads, and from another handle:
	// on SQLite the transaction holds the write lock.
	expectCount(t, observer, queue.Counts{})
	if err := tx.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	expectCount(t, q, queue.Counts{Ready: 3})
	ds := receive(t, q, 10, time.Hour)
	if !slices.Equal(ids(ds), []string{"tx-00000", "tx-00001", "tx-00002"}) {
		t.Fatalf("received %v after commit", ids(ds))
	}
	for i, d := range ds {
		checkMessage(t, d, msg("tx", i))
	}
}

func testEnqueueTxRollback(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "tx")
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.EnqueueTx(ctx, tx, msgs("rolled", 2)...); err != nil {
		t.Fatalf("EnqueueTx: %v", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	expectCount(t, q, queue.Counts{})
	expectEmptyReceive(t, q, "after rollback")
	// The store is usable after the rollback.
	enqueue(t, q, msg("after", 0))
	if d := receiveOne(t, q, time.Hour); d.MessageID != "after-00000" {
		t.Fatalf("received %s", d.MessageID)
	}
}

// --- moves -------------------------------------------------------------------

func moveMessage() queue.Message {
	return queue.Message{
		MessageID: "move-1",
		Type:      "orders.placed",
		Priority:  3,
		Headers:   map[string]string{"a": "1"},
		Body:      []byte("payload"),
	}
}

func testMoveSameDatabase(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	src, dst := mustQueue(t, s, "src"), mustQueue(t, s, "dst")
	m := moveMessage()
	enqueue(t, src, m)
	d := receiveOne(t, src, time.Hour)
	newHeaders := map[string]string{"moved": "yes"}
	if err := src.Move(ctx, d, dst, newHeaders); err != nil {
		t.Fatalf("Move: %v", err)
	}
	expectCount(t, src, queue.Counts{})
	expectCount(t, dst, queue.Counts{Ready: 1})
	expectLeaseLost(t, src.Ack(ctx, d), "Ack of a moved delivery")
	expectCount(t, dst, queue.Counts{Ready: 1})

	got := receiveOne(t, dst, time.Hour)
	want := m
	want.Headers = newHeaders
	checkMessage(t, got, want)
	if got.Queue != "dst" {
		t.Errorf("Queue = %q, want dst", got.Queue)
	}
	if got.Attempts != 1 {
		t.Errorf("Attempts in the destination = %d, want 1 (a move starts the count afresh)", got.Attempts)
	}

	// Move back with nil headers: they are kept.
	if err := dst.Move(ctx, got, src, nil); err != nil {
		t.Fatalf("Move back: %v", err)
	}
	back := receiveOne(t, src, time.Hour)
	checkMessage(t, back, want)
	expectCount(t, dst, queue.Counts{})
}

func testMoveAcrossDatabases(t *testing.T, h *harness) {
	ctx := t.Context()
	s, s2 := h.store(t), h.store(t)
	src := mustQueue(t, s, "src")
	dst := mustQueue(t, s2, "dst")
	sameNameInFirst := mustQueue(t, s, "dst")
	m := moveMessage()
	enqueue(t, src, m)
	d := receiveOne(t, src, time.Hour)
	newHeaders := map[string]string{"moved": "across"}
	if err := src.Move(ctx, d, dst, newHeaders); err != nil {
		t.Fatalf("Move across databases: %v", err)
	}
	expectCount(t, src, queue.Counts{})
	expectCount(t, sameNameInFirst, queue.Counts{})
	expectCount(t, dst, queue.Counts{Ready: 1})
	got := receiveOne(t, dst, time.Hour)
	want := m
	want.Headers = newHeaders
	checkMessage(t, got, want)
	if got.Attempts != 1 {
		t.Errorf("Attempts in the destination = %d, want 1", got.Attempts)
	}

	// nil headers keep them.
	if err := dst.Move(ctx, got, src, nil); err != nil {
		t.Fatalf("Move back: %v", err)
	}
	checkMessage(t, receiveOne(t, src, time.Hour), want)
	expectCount(t, dst, queue.Counts{})
}

func testMoveLeaseLost(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	src, dst := mustQueue(t, s, "src"), mustQueue(t, s, "dst")
	enqueue(t, src, moveMessage())
	stale, current := redeliver(t, src)
	expectLeaseLost(t, src.Move(ctx, stale, dst, nil), "Move of a lost lease")
	expectCount(t, dst, queue.Counts{})
	expectCount(t, src, queue.Counts{InFlight: 1})
	if err := src.Move(ctx, current, dst, nil); err != nil {
		t.Fatalf("Move of the current lease: %v", err)
	}
	expectCount(t, src, queue.Counts{})
	expectCount(t, dst, queue.Counts{Ready: 1})
}

// moveReadySetup fills src with 10 ready messages (priorities 0,1,2,0,1,…),
// one deferred and one in flight of top priority; it returns the message ids
// in the order a receiver would take the ready ones.
func moveReadySetup(t *testing.T, src queue.Queue) []string {
	ready := msgs("mr", 10)
	for i := range ready {
		ready[i].Priority = i % 3
		ready[i].Headers = map[string]string{"n": strconv.Itoa(i), "k": "orig"}
	}
	hot := msg("hot", 0)
	hot.Priority = 100
	later := msg("later", 0)
	later.Priority = 100
	later.VisibleAt = time.Now().Add(time.Hour)
	enqueue(t, src, hot)
	if d := receiveOne(t, src, time.Hour); d.MessageID != hot.MessageID {
		t.Fatalf("received %s, want %s", d.MessageID, hot.MessageID)
	}
	enqueue(t, src, later)
	enqueue(t, src, ready...)
	expectCount(t, src, queue.Counts{Ready: 10, Deferred: 1, InFlight: 1})
	return []string{
		"mr-00002", "mr-00005", "mr-00008", // priority 2
		"mr-00001", "mr-00004", "mr-00007", // priority 1
		"mr-00000", "mr-00003", "mr-00006", "mr-00009", // priority 0
	}
}

func checkMoved(t *testing.T, dst queue.Queue, wantIDs []string, patch map[string]string) {
	t.Helper()
	got := peekAll(t, dst)
	gotIDs := ids(got)
	slices.Sort(gotIDs)
	want := slices.Clone(wantIDs)
	slices.Sort(want)
	if !slices.Equal(gotIDs, want) {
		t.Fatalf("destination holds %v, want %v", gotIDs, want)
	}
	for _, d := range got {
		n := strings.TrimPrefix(d.MessageID, "mr-")
		i, _ := strconv.Atoi(n)
		wantH := map[string]string{"n": strconv.Itoa(i), "k": "orig"}
		maps.Copy(wantH, patch)
		if !maps.Equal(d.Headers, wantH) {
			t.Errorf("%s: headers %v, want %v", d.MessageID, d.Headers, wantH)
		}
		if d.Priority != i%3 {
			t.Errorf("%s: priority %d, want %d", d.MessageID, d.Priority, i%3)
		}
		if d.Attempts != 0 || d.LeaseToken != 0 {
			t.Errorf("%s: attempts %d, lease token %d in the destination; want 0, 0", d.MessageID, d.Attempts, d.LeaseToken)
		}
	}
}

func testMoveReadySameDatabase(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	src, dst := mustQueue(t, s, "inbox"), mustQueue(t, s, "worker")
	order := moveReadySetup(t, src)
	patch := map[string]string{"k": "override", "via": "distributor"}

	if n, err := src.MoveReady(ctx, dst, 0, patch); err != nil || n != 0 {
		t.Fatalf("MoveReady(limit 0) = %d, %v; want 0, nil", n, err)
	}
	n, err := src.MoveReady(ctx, dst, 4, patch)
	if err != nil || n != 4 {
		t.Fatalf("MoveReady(limit 4) = %d, %v; want 4, nil", n, err)
	}
	checkMoved(t, dst, order[:4], patch)
	expectCount(t, src, queue.Counts{Ready: 6, Deferred: 1, InFlight: 1})
	expectCount(t, dst, queue.Counts{Ready: 4})

	// nil headers: moved as they are.
	n, err = src.MoveReady(ctx, dst, 100, nil)
	if err != nil || n != 6 {
		t.Fatalf("MoveReady(limit 100) = %d, %v; want 6, nil", n, err)
	}
	expectCount(t, src, queue.Counts{Deferred: 1, InFlight: 1})
	if n, err := src.MoveReady(ctx, dst, 100, patch); err != nil || n != 0 {
		t.Fatalf("MoveReady with nothing ready = %d, %v; want 0, nil", n, err)
	}
	for _, d := range peekAll(t, dst) {
		if slices.Contains(order[4:], d.MessageID) && d.Headers["k"] != "orig" {
			t.Errorf("%s moved without a patch has headers %v", d.MessageID, d.Headers)
		}
	}
	// The destination hands them out in priority order, counting afresh.
	got := receive(t, dst, 10, time.Hour)
	if !slices.Equal(ids(got), order) {
		t.Fatalf("destination order %v, want %v", ids(got), order)
	}
	for _, d := range got {
		if d.Attempts != 1 {
			t.Errorf("%s: attempts %d, want 1", d.MessageID, d.Attempts)
		}
	}
}

func testMoveReadyAcrossDatabases(t *testing.T, h *harness) {
	ctx := t.Context()
	s, s2 := h.store(t), h.store(t)
	src, dst := mustQueue(t, s, "inbox"), mustQueue(t, s2, "worker")
	order := moveReadySetup(t, src)
	patch := map[string]string{"k": "override", "via": "distributor"}

	n, err := src.MoveReady(ctx, dst, 4, patch)
	if err != nil || n != 4 {
		t.Fatalf("MoveReady(limit 4) = %d, %v; want 4, nil", n, err)
	}
	checkMoved(t, dst, order[:4], patch)
	expectCount(t, src, queue.Counts{Ready: 6, Deferred: 1, InFlight: 1})
	expectCount(t, dst, queue.Counts{Ready: 4})
	expectCount(t, mustQueue(t, s, "worker"), queue.Counts{})

	n, err = src.MoveReady(ctx, dst, 100, nil)
	if err != nil || n != 6 {
		t.Fatalf("MoveReady(limit 100) = %d, %v; want 6, nil", n, err)
	}
	expectCount(t, src, queue.Counts{Deferred: 1, InFlight: 1})
	if n, err := src.MoveReady(ctx, dst, 100, patch); err != nil || n != 0 {
		t.Fatalf("MoveReady with nothing ready = %d, %v; want 0, nil", n, err)
	}
	got := receive(t, dst, 10, time.Hour)
	if !slices.Equal(ids(got), order) {
		t.Fatalf("destination order %v, want %v", ids(got), order)
	}
}

// A message whose lease ended and that MoveReady then moved belongs to the
// destination: its former holder can neither ack, extend nor release it.
func testMoveReadyEndsStaleLease(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	src, dst := mustQueue(t, s, "inbox"), mustQueue(t, s, "worker")
	enqueue(t, src, msg("stale", 0))
	stale := receiveOne(t, src, 50*time.Millisecond)
	eventually(t, "the lease to end", func() bool { return count(t, src) == queue.Counts{Ready: 1} })
	if n, err := src.MoveReady(ctx, dst, 10, nil); err != nil || n != 1 {
		t.Fatalf("MoveReady = %d, %v; want 1, nil", n, err)
	}
	expectLeaseLost(t, src.Extend(ctx, stale, time.Hour), "Extend by the former holder")
	expectLeaseLost(t, src.Release(ctx, stale, queue.ReleaseOptions{Delay: time.Hour}), "Release by the former holder")
	expectLeaseLost(t, src.Ack(ctx, stale), "Ack by the former holder")
	expectCount(t, dst, queue.Counts{Ready: 1})
	d := receiveOne(t, dst, time.Hour)
	if d.MessageID != stale.MessageID || d.Attempts != 1 {
		t.Fatalf("destination delivered %s with attempts %d; want %s, 1", d.MessageID, d.Attempts, stale.MessageID)
	}
}

// --- inspection --------------------------------------------------------------

func testPeek(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q, other := mustQueue(t, s, "peek"), mustQueue(t, s, "other")
	const n = 25
	want := msgs("peek", n)
	want[3].VisibleAt = time.Now().Add(time.Hour) // deferred ones are listed too
	for i := range want {
		enqueue(t, q, want[i])
		enqueue(t, other, msg("other", i)) // interleave row ids
	}
	leased := receiveOne(t, q, time.Hour) // in-flight ones too

	var got []queue.Delivery
	var after int64
	pages := 0
	for {
		page, err := q.Peek(ctx, after, 10)
		if err != nil {
			t.Fatalf("Peek: %v", err)
		}
		if len(page) > 10 {
			t.Fatalf("Peek(limit 10) returned %d", len(page))
		}
		if len(page) == 0 {
			break
		}
		pages++
		got = append(got, page...)
		after = page[len(page)-1].ID
	}
	if pages != 3 || len(got) != n {
		t.Fatalf("peeked %d messages in %d pages, want %d in 3", len(got), pages, n)
	}
	for i, d := range got {
		checkMessage(t, d, want[i])
		if d.Queue != "peek" {
			t.Errorf("%s: Queue = %q", d.MessageID, d.Queue)
		}
		if i > 0 && d.ID <= got[i-1].ID {
			t.Errorf("ids not increasing: %d after %d", d.ID, got[i-1].ID)
		}
		switch {
		case d.ID == leased.ID:
			if d.Attempts != 1 || d.LeaseToken != leased.LeaseToken {
				t.Errorf("leased %s: attempts %d, token %d; want 1, %d", d.MessageID, d.Attempts, d.LeaseToken, leased.LeaseToken)
			}
		default:
			if d.Attempts != 0 || d.LeaseToken != 0 {
				t.Errorf("%s: attempts %d, token %d after Peek; want 0, 0", d.MessageID, d.Attempts, d.LeaseToken)
			}
		}
	}
	if page, err := q.Peek(ctx, 0, 0); err != nil || len(page) != 0 {
		t.Fatalf("Peek(limit 0) = %d, %v", len(page), err)
	}
	if page, err := q.Peek(ctx, got[n-1].ID, 10); err != nil || len(page) != 0 {
		t.Fatalf("Peek after the last id = %d, %v", len(page), err)
	}
	// Peek leased nothing: every ready message is still there, first delivery.
	ds := receive(t, q, n, time.Hour)
	if len(ds) != n-2 {
		t.Fatalf("received %d after peeking, want %d", len(ds), n-2)
	}
	for _, d := range ds {
		if d.Attempts != 1 {
			t.Errorf("%s: attempts %d, want 1", d.MessageID, d.Attempts)
		}
	}
	expectCount(t, other, queue.Counts{Ready: n})
}

func testStoreQueues(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	qs, err := s.Queues(ctx)
	if err != nil || len(qs) != 0 {
		t.Fatalf("Queues of an empty store = %v, %v", qs, err)
	}
	enqueue(t, mustQueue(t, s, "c.inflight"), msg("c", 0))
	receiveOne(t, mustQueue(t, s, "c.inflight"), time.Hour)
	deferred := msg("b", 0)
	deferred.VisibleAt = time.Now().Add(time.Hour)
	enqueue(t, mustQueue(t, s, "b-deferred"), deferred)
	enqueue(t, mustQueue(t, s, "a_ready"), msgs("a", 2)...)
	emptied := mustQueue(t, s, "d")
	enqueue(t, emptied, msg("d", 0))
	if err := emptied.Ack(ctx, receiveOne(t, emptied, time.Hour)); err != nil {
		t.Fatal(err)
	}

	qs, err = s.Queues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []queue.QueueInfo{
		{Name: "a_ready", Counts: queue.Counts{Ready: 2}},
		{Name: "b-deferred", Counts: queue.Counts{Deferred: 1}},
		{Name: "c.inflight", Counts: queue.Counts{InFlight: 1}},
	}
	if !slices.Equal(qs, want) {
		t.Fatalf("Queues = %+v, want %+v", qs, want)
	}
}

func testPurge(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q, keep := mustQueue(t, s, "purge"), mustQueue(t, s, "keep")
	if n, err := q.Purge(ctx); err != nil || n != 0 {
		t.Fatalf("Purge of an empty queue = %d, %v", n, err)
	}
	const n = 6000 // more than one purge chunk
	enqueue(t, q, msgs("purge", n)...)
	deferred := msg("deferred", 0)
	deferred.VisibleAt = time.Now().Add(time.Hour)
	enqueue(t, q, deferred)
	receiveOne(t, q, time.Hour) // in flight: purged too
	enqueue(t, keep, msgs("keep", 5)...)

	got, err := q.Purge(ctx)
	if err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if got != n+1 {
		t.Fatalf("Purge = %d, want %d", got, n+1)
	}
	expectCount(t, q, queue.Counts{})
	expectCount(t, keep, queue.Counts{Ready: 5})
}

func testPurgeUnderInflow(t *testing.T, h *harness) {
	s := h.store(t)
	q := mustQueue(t, s, "purge")
	const initial = 6000
	enqueue(t, q, msgs("initial", initial)...)

	stop := make(chan struct{})
	var produced int
	var producedMu sync.Mutex
	producerDone := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				producerDone <- nil
				return
			default:
			}
			if err := q.Enqueue(context.Background(), msg("prod", i)); err != nil {
				producerDone <- err
				return
			}
			producedMu.Lock()
			produced++
			producedMu.Unlock()
		}
	}()
	eventually(t, "the producer to start", func() bool {
		producedMu.Lock()
		defer producedMu.Unlock()
		return produced >= 10
	})

	type result struct {
		n   int64
		err error
	}
	purged := make(chan result, 1)
	go func() {
		n, err := q.Purge(context.Background())
		purged <- result{n, err}
	}()
	var r result
	select {
	case r = <-purged:
	case <-time.After(30 * time.Second):
		close(stop)
		t.Fatal("Purge did not return within 30s while a producer kept enqueuing")
	}
	close(stop)
	if err := <-producerDone; err != nil {
		t.Fatalf("producer: %v", err)
	}
	if r.err != nil {
		t.Fatalf("Purge: %v", r.err)
	}
	if r.n < initial {
		t.Fatalf("Purge = %d, want at least the %d messages there before it", r.n, initial)
	}
	rest := peekAll(t, q)
	if int(r.n)+len(rest) != initial+produced {
		t.Fatalf("purged %d + left %d != enqueued %d", r.n, len(rest), initial+produced)
	}
	for _, d := range rest {
		if !strings.HasPrefix(d.MessageID, "prod-") {
			t.Fatalf("%s survived the purge", d.MessageID)
		}
	}
	t.Logf("purged %d; the producer enqueued %d, %d of them after the purge began", r.n, produced, len(rest))
}

// --- waiting receivers -------------------------------------------------------

func testReceiveWaitReturnsReady(t *testing.T, h *harness) {
	s := h.store(t)
	q := mustQueue(t, s, "ready")
	enqueue(t, q, msgs("ready", 3)...)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	ds, err := q.ReceiveWait(ctx, 2, time.Hour)
	if err != nil || len(ds) != 2 {
		t.Fatalf("ReceiveWait = %d deliveries, %v; want 2", len(ds), err)
	}
	if since := time.Since(start); since > time.Second {
		t.Fatalf("ReceiveWait took %s with messages ready", since)
	}
}

func testReceiveWaitHonoursContext(t *testing.T, h *harness) {
	s := h.store(t)
	q := mustQueue(t, s, "idle")
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	ds, err := q.ReceiveWait(ctx, 1, time.Hour)
	if !errors.Is(err, context.DeadlineExceeded) || len(ds) != 0 {
		t.Fatalf("ReceiveWait on an idle queue = %d deliveries, %v; want context.DeadlineExceeded", len(ds), err)
	}
	if since := time.Since(start); since > 2*time.Second {
		t.Fatalf("ReceiveWait returned %s after its context ended, want promptly (MaxPoll is %s)", since, MaxPoll)
	}
}

// idleSettle is how long a receiver is left idle before the wake-up tests
// enqueue. ReceiveWait's idle poll starts at 10ms and doubles up to MaxPoll,
// so it polls about 10, 30, 70, … 1270, 2550 and 5110ms after it starts
// (later under load, never earlier). Enqueued at 2.7s, a message found by
// polling comes back about 2.4s later; within wakeBound, only a wake-up can
// explain it. This fixed wait is the point of the test: the receiver must be
// idle. (Measured: with the wake-ups disabled these tests fail at ~2.4s.)
const (
	idleSettle = 2700 * time.Millisecond
	wakeBound  = time.Second
)

type waitResult struct {
	ds  []queue.Delivery
	err error
	at  time.Time
}

// startWaiting runs ReceiveWait on q in a goroutine and makes sure it is
// still waiting after idleSettle.
func startWaiting(t *testing.T, q queue.Queue) <-chan waitResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), idleSettle+30*time.Second)
	t.Cleanup(cancel)
	done := make(chan waitResult, 1)
	go func() {
		ds, err := q.ReceiveWait(ctx, 10, time.Hour)
		done <- waitResult{ds, err, time.Now()}
	}()
	select {
	case r := <-done:
		t.Fatalf("ReceiveWait returned before anything was enqueued: %d deliveries, %v", len(r.ds), r.err)
	case <-time.After(idleSettle):
	}
	return done
}

func expectWoken(t *testing.T, done <-chan waitResult, sent time.Time, wantID string) {
	t.Helper()
	var r waitResult
	select {
	case r = <-done:
	case <-time.After(MaxPoll + 10*time.Second):
		t.Fatal("ReceiveWait never returned")
	}
	if r.err != nil {
		t.Fatalf("ReceiveWait: %v", r.err)
	}
	if !slices.Equal(ids(r.ds), []string{wantID}) {
		t.Fatalf("ReceiveWait returned %v, want [%s]", ids(r.ds), wantID)
	}
	latency := r.at.Sub(sent)
	if latency > wakeBound {
		t.Fatalf("ReceiveWait woke %s after the enqueue, want < %s: no wake-up arrived, it polled", latency, wakeBound)
	}
	t.Logf("woken %s after the enqueue", latency)
}

func testWakeSameHandle(t *testing.T, h *harness) {
	s := h.store(t)
	q := mustQueue(t, s, "wake")
	done := startWaiting(t, q)
	sent := time.Now()
	enqueue(t, q, msg("wake", 0))
	expectWoken(t, done, sent, "wake-00000")
}

func testWakeOtherHandle(t *testing.T, h *harness) {
	s, dsn := h.storeDSN(t)
	if s.Dialect() != queue.Postgres {
		t.Skipf("%s has no wake-ups across store handles: receivers poll (MaxPoll)", s.Dialect())
	}
	other := OpenStore(t, dsn)
	q := mustQueue(t, s, "wake")
	done := startWaiting(t, q)
	sent := time.Now()
	enqueue(t, mustQueue(t, other, "wake"), msg("wake", 0))
	expectWoken(t, done, sent, "wake-00000")
}

func testWakeOnCommit(t *testing.T, h *harness) {
	s, dsn := h.storeDSN(t)
	if s.Dialect() != queue.Postgres {
		t.Skipf("%s has no wake-ups across store handles: receivers poll (MaxPoll)", s.Dialect())
	}
	expectWokenAtCommit(t, s, OpenStore(t, dsn))
}

// testWakeOnCommitSameStore: a transactional enqueue through the receiver's
// own store wakes it when the transaction commits (on PostgreSQL by the
// notification's echo, which the store must not skip), and not before.
func testWakeOnCommitSameStore(t *testing.T, h *harness) {
	s := h.store(t)
	if s.Dialect() != queue.Postgres {
		t.Skipf("%s wakes this process's receivers when EnqueueTx returns, before the commit", s.Dialect())
	}
	expectWokenAtCommit(t, s, s)
}

// expectWokenAtCommit: a receiver waiting on s is woken when a transaction
// of sender that enqueues for it commits, and not before.
func expectWokenAtCommit(t *testing.T, s, sender queue.Store) {
	t.Helper()
	done := startWaiting(t, mustQueue(t, s, "wake"))
	ctx := t.Context()
	tx, err := sender.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := mustQueue(t, sender, "wake").EnqueueTx(ctx, tx, msg("wake", 0)); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		t.Fatalf("ReceiveWait returned before the commit: %v, %v", ids(r.ds), r.err)
	case <-time.After(200 * time.Millisecond):
	}
	sent := time.Now()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	expectWoken(t, done, sent, "wake-00000")
}

// --- names -------------------------------------------------------------------

func testQueueNames(t *testing.T, h *harness) {
	s := h.store(t)
	for _, name := range []string{"a", "0", "orders", "orders.placed-v2_x", "a..b", strings.Repeat("q", 200)} {
		q, err := s.Queue(name)
		if err != nil {
			t.Errorf("Queue(%q): %v", name, err)
			continue
		}
		if q.Name() != name {
			t.Errorf("Name() = %q, want %q", q.Name(), name)
		}
		if want := "sql://" + ConnectionName + "/" + name; q.URI() != want {
			t.Errorf("URI() = %q, want %q", q.URI(), want)
		}
	}
	for _, name := range []string{"", "Orders", "has space", "-lead", ".lead", "_lead", "a/b", "a:b", "ä", "semi;colon", "quote'", strings.Repeat("q", 201)} {
		q, err := s.Queue(name)
		if err == nil {
			t.Errorf("Queue(%q) accepted an invalid name (%v)", name, q)
			continue
		}
		if !strings.Contains(err.Error(), strconv.Quote(name)) {
			t.Errorf("Queue(%q) error %q does not quote the name", name, err)
		}
	}
}
