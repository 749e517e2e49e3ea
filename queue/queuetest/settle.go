package queuetest

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferrybus/ferry/queue"
)

// staleAmongLeased enqueues message lost-00000 on q and redelivers it (see
// redeliver), then enqueues two more and leases them: a batch to settle
// with one lost lease among current ones.
func staleAmongLeased(t *testing.T, q queue.Queue) (stale, current queue.Delivery, more []queue.Delivery) {
	t.Helper()
	enqueue(t, q, msg("lost", 0))
	stale, current = redeliver(t, q)
	enqueue(t, q, msgs("more", 2)...)
	more = receive(t, q, 2, time.Minute)
	if len(more) != 2 {
		t.Fatalf("received %d, want 2", len(more))
	}
	return stale, current, more
}

func testAckLeaseLost(t *testing.T, h *harness) {
	ctx := t.Context()
	q := oneMessageQueue(t, h, "ack")
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
	stale, current, more := staleAmongLeased(t, q)
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
	q := oneMessageQueue(t, h, "extend")
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

func testReleaseDelay(t *testing.T, h *harness) {
	ctx := t.Context()
	q := oneMessageQueue(t, h, "release")

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
	q := oneMessageQueue(t, h, "uncount")
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
	q := oneMessageQueue(t, h, "rlost")
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

// testAckMany: AckMany removes the deliveries it still leases and reports
// them by row id; one whose lease was lost is missing from the result and
// stays with its current holder.
func testAckMany(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "ackmany")
	if acked, err := q.AckMany(ctx, nil); err != nil || len(acked) != 0 {
		t.Fatalf("AckMany of nothing = %v, %v; want none, nil", acked, err)
	}
	const n = 450 // more than one SQLite ack chunk
	enqueue(t, q, msgs("many", n)...)
	ds := receive(t, q, n, time.Minute)
	if len(ds) != n {
		t.Fatalf("received %d, want %d", len(ds), n)
	}
	acked, err := q.AckMany(ctx, ds)
	if err != nil {
		t.Fatalf("AckMany of %d: %v", n, err)
	}
	if len(acked) != n {
		t.Fatalf("AckMany acked %d of %d", len(acked), n)
	}
	for _, d := range ds {
		if !acked[d.ID] {
			t.Fatalf("AckMany did not report row %d (%s) acked", d.ID, d.MessageID)
		}
	}
	expectCount(t, q, queue.Counts{})

	// A batch holding a lost lease: the others are acked, it is not.
	stale, current, more := staleAmongLeased(t, q)
	acked, err = q.AckMany(ctx, []queue.Delivery{more[0], stale, more[1]})
	if err != nil {
		t.Fatalf("AckMany holding a stale delivery: %v", err)
	}
	if len(acked) != 2 || !acked[more[0].ID] || !acked[more[1].ID] || acked[stale.ID] {
		t.Fatalf("AckMany = %v, want rows %d and %d only", acked, more[0].ID, more[1].ID)
	}
	expectCount(t, q, queue.Counts{InFlight: 1}) // the current lease is untouched
	if acked, err := q.AckMany(ctx, []queue.Delivery{current}); err != nil || !acked[current.ID] {
		t.Fatalf("AckMany of the current delivery = %v, %v", acked, err)
	}
	if acked, err := q.AckMany(ctx, []queue.Delivery{current}); err != nil || len(acked) != 0 {
		t.Fatalf("second AckMany of an acked delivery = %v, %v; want none", acked, err)
	}
	expectCount(t, q, queue.Counts{})
}

// testAckTx: AckTx removes the message only when the caller's transaction
// commits, and refuses a lost lease.
func testAckTx(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "acktx")
	observer := mustQueue(t, h.reopen(t, s), "acktx")
	enqueue(t, q, msg("acktx", 0))
	d := receiveOne(t, q, time.Hour)

	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.AckTx(ctx, tx, d); err != nil {
		t.Fatalf("AckTx: %v", err)
	}
	expectCount(t, observer, queue.Counts{InFlight: 1}) // not committed yet
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	expectCount(t, q, queue.Counts{InFlight: 1}) // rolled back: still leased

	tx, err = s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := q.AckTx(ctx, tx, d); err != nil {
		t.Fatalf("AckTx: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	expectCount(t, q, queue.Counts{})

	// A lost lease is refused inside the transaction too.
	enqueue(t, q, msg("acktx", 1))
	stale, current := redeliver(t, q)
	tx, err = s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	expectLeaseLost(t, q.AckTx(ctx, tx, stale), "AckTx of a lost lease")
	if err := q.AckTx(ctx, tx, current); err != nil {
		t.Fatalf("AckTx of the current delivery: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	expectCount(t, q, queue.Counts{})
}

// testReleaseLeased: ReleaseLeased makes the queue's leased messages
// visible again at once, keeping their attempt counts, and touches neither
// ready nor deferred messages nor other queues.
func testReleaseLeased(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q, other := mustQueue(t, s, "own"), mustQueue(t, s, "own-other")
	if n, err := q.ReleaseLeased(ctx); err != nil || n != 0 {
		t.Fatalf("ReleaseLeased of an empty queue = %d, %v; want 0, nil", n, err)
	}
	enqueue(t, q, msgs("own", 3)...)
	deferred := msg("deferred", 0)
	deferred.VisibleAt = time.Now().Add(time.Hour)
	enqueue(t, q, deferred)
	enqueue(t, other, msg("other", 0))
	held := receive(t, q, 2, time.Hour)
	if len(held) != 2 {
		t.Fatalf("received %d, want 2", len(held))
	}
	receiveOne(t, other, time.Hour)
	expectCount(t, q, queue.Counts{Ready: 1, Deferred: 1, InFlight: 2})

	n, err := q.ReleaseLeased(ctx)
	if err != nil || n != 2 {
		t.Fatalf("ReleaseLeased = %d, %v; want 2, nil", n, err)
	}
	expectCount(t, q, queue.Counts{Ready: 3, Deferred: 1})
	expectCount(t, other, queue.Counts{InFlight: 1})
	for _, d := range held {
		expectLeaseLost(t, q.Ack(ctx, d), "Ack of a delivery whose lease ReleaseLeased ended")
	}
	again := receive(t, q, 10, time.Hour)
	if len(again) != 3 {
		t.Fatalf("received %d after ReleaseLeased, want 3", len(again))
	}
	for _, d := range again {
		want := 1
		if slices.ContainsFunc(held, func(h queue.Delivery) bool { return h.ID == d.ID }) {
			want = 2 // a redelivery: the count is kept
		}
		if d.Attempts != want {
			t.Errorf("%s: attempts %d, want %d", d.MessageID, d.Attempts, want)
		}
	}
	if n, err := q.ReleaseLeased(ctx); err != nil || n != 3 {
		t.Fatalf("second ReleaseLeased = %d, %v; want 3, nil", n, err)
	}
}

// testReleaseToken: ReleaseToken makes visible again only the messages
// leased with its token, in its queue, and refuses the zero token.
func testReleaseToken(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q, other := mustQueue(t, s, "tok"), mustQueue(t, s, "tok-other")
	enqueue(t, q, msgs("tok", 4)...)
	enqueue(t, other, msg("other", 0))
	first := receive(t, q, 2, time.Hour)
	second := receive(t, q, 1, time.Hour)
	theirs := receiveOne(t, other, time.Hour)
	if len(first) != 2 || len(second) != 1 || first[0].LeaseToken != first[1].LeaseToken || first[0].LeaseToken == second[0].LeaseToken {
		t.Fatalf("received %d and %d with tokens %v / %v: want one token per receive", len(first), len(second), first, second)
	}
	if _, err := q.ReleaseToken(ctx, 0); !errors.Is(err, queue.ErrNotLeased) {
		t.Fatalf("ReleaseToken(0) = %v, want ErrNotLeased", err)
	}
	if n, err := other.ReleaseToken(ctx, first[0].LeaseToken); err != nil || n != 0 {
		t.Fatalf("ReleaseToken of another queue's token in %s = %d, %v; want 0, nil", other.URI(), n, err)
	}
	n, err := q.ReleaseToken(ctx, first[0].LeaseToken)
	if err != nil || n != 2 {
		t.Fatalf("ReleaseToken = %d, %v; want 2, nil", n, err)
	}
	expectCount(t, q, queue.Counts{Ready: 3, InFlight: 1})
	expectCount(t, other, queue.Counts{InFlight: 1})
	for _, d := range first {
		expectLeaseLost(t, q.Ack(ctx, d), "Ack of a delivery whose lease ReleaseToken ended")
	}
	if err := q.Ack(ctx, second[0]); err != nil {
		t.Fatalf("Ack of the delivery ReleaseToken left alone: %v", err)
	}
	if err := other.Ack(ctx, theirs); err != nil {
		t.Fatalf("Ack in the other queue: %v", err)
	}
	if n, err := q.ReleaseToken(ctx, first[0].LeaseToken); err != nil || n != 0 {
		t.Fatalf("second ReleaseToken = %d, %v; want 0, nil", n, err)
	}
}

// testMarkStarted: the count of handler starts without an outcome grows
// with each mark, survives a release that records nothing, starts again at a
// release that records headers (a failure) and at a move, and refuses a
// lost lease and a peeked delivery.
func testMarkStarted(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q, other := mustQueue(t, s, "started"), mustQueue(t, s, "started-other")
	enqueue(t, q, queue.Message{MessageID: "m"})
	mark := func(d queue.Delivery, want int) {
		t.Helper()
		if n, err := q.MarkStarted(ctx, d); err != nil || n != want {
			t.Fatalf("MarkStarted = %d, %v; want %d", n, err, want)
		}
	}
	page, err := q.Peek(ctx, 0, 1)
	if err != nil || len(page) != 1 {
		t.Fatalf("Peek: %d, %v", len(page), err)
	}
	if _, err := q.MarkStarted(ctx, page[0]); !errors.Is(err, queue.ErrNotLeased) {
		t.Errorf("MarkStarted of a peeked delivery: %v, want ErrNotLeased", err)
	}
	d := receiveOne(t, q, time.Minute)
	mark(d, 0)
	if err := q.Release(ctx, d, queue.ReleaseOptions{}); err != nil {
		t.Fatal(err)
	}
	d = receiveOne(t, q, time.Minute)
	mark(d, 1)
	if err := q.Release(ctx, d, queue.ReleaseOptions{Uncount: true}); err != nil {
		t.Fatal(err)
	}
	d = receiveOne(t, q, time.Minute)
	mark(d, 2)
	if err := q.Release(ctx, d, queue.ReleaseOptions{Headers: map[string]string{"failed": "once"}}); err != nil {
		t.Fatal(err)
	}
	d = receiveOne(t, q, time.Minute)
	mark(d, 0)
	if err := q.Release(ctx, d, queue.ReleaseOptions{}); err != nil {
		t.Fatal(err)
	}
	expectLeaseLost(t, func() error { _, err := q.MarkStarted(ctx, d); return err }(), "MarkStarted of a released delivery")
	d = receiveOne(t, q, time.Minute)
	mark(d, 1)
	if err := q.Move(ctx, d, other, nil); err != nil {
		t.Fatal(err)
	}
	d = receiveOne(t, other, time.Minute)
	if n, err := other.MarkStarted(ctx, d); err != nil || n != 0 {
		t.Errorf("MarkStarted after a move = %d, %v; want 0", n, err)
	}
}
