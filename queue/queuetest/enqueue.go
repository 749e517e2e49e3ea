package queuetest

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrybus/ferry/queue"
)

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

// testEnqueuePriorityRange: a store accepts the ends of the priority range
// and refuses what lies beyond with ErrPriority naming the value, the
// message and the queue, storing nothing of the call (PostgreSQL used to
// answer with its driver's "out of range for type integer", SQLite stored
// the value).
func testEnqueuePriorityRange(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "prio")
	for _, p := range []int{queue.MinPriority, queue.MaxPriority} {
		if err := q.Enqueue(ctx, queue.Message{MessageID: "ok-" + strconv.Itoa(p), Priority: p}); err != nil {
			t.Errorf("priority %d: %v", p, err)
		}
	}
	for _, p := range []int{queue.MaxPriority + 1, queue.MinPriority - 1, 1 << 40} {
		err := q.Enqueue(ctx, queue.Message{MessageID: "fine"}, queue.Message{MessageID: "bad", Priority: p})
		if !errors.Is(err, queue.ErrPriority) {
			t.Errorf("priority %d: %v, want ErrPriority", p, err)
			continue
		}
		for _, want := range []string{strconv.Itoa(p), "bad", q.URI()} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("priority %d: error %q does not name %q", p, err, want)
			}
		}
		if !h.d.Features.Has(TxEnqueue) {
			continue
		}
		tx, err := s.DB().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.EnqueueTx(ctx, tx, queue.Message{MessageID: "bad-tx", Priority: p}); !errors.Is(err, queue.ErrPriority) {
			t.Errorf("EnqueueTx priority %d: %v, want ErrPriority", p, err)
		}
		_ = tx.Rollback()
	}
	if c := count(t, q); c.Ready != 2 {
		t.Errorf("ready = %d, want 2 (the two in range; nothing of a refused call)", c.Ready)
	}
}

func testEnqueueTxCommit(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	observer := mustQueue(t, h.reopen(t, s), "tx") // another connection pool
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
