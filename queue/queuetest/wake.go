package queuetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ferrybus/ferry/queue"
)

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
	s := h.store(t)
	other := h.reopen(t, s)
	q := mustQueue(t, s, "wake")
	done := startWaiting(t, q)
	sent := time.Now()
	enqueue(t, mustQueue(t, other, "wake"), msg("wake", 0))
	expectWoken(t, done, sent, "wake-00000")
}

func testWakeOnCommit(t *testing.T, h *harness) {
	s := h.store(t)
	expectWokenAtCommit(t, s, h.reopen(t, s))
}

// testWakeOnCommitSameStore: a transactional enqueue through the receiver's
// own store wakes it when the transaction commits (on PostgreSQL by the
// notification's echo, which the store must not skip), and not before.
func testWakeOnCommitSameStore(t *testing.T, h *harness) {
	s := h.store(t)
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

// testWakeChannel: a channel from Wake, taken before an enqueue on its
// queue (plain, transactional once committed) or a Release without delay,
// is closed by it: what a receiver waits on between polls.
func testWakeChannel(t *testing.T, h *harness) {
	s := h.store(t)
	q := mustQueue(t, s, "wake")
	for _, how := range []string{"Enqueue", "EnqueueTx", "Release"} {
		w := q.Wake()
		switch how {
		case "Enqueue":
			enqueue(t, q, msg("wake", 0))
		case "EnqueueTx":
			if !h.d.Features.Has(TxEnqueue) {
				continue
			}
			tx, err := s.DB().BeginTx(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := q.EnqueueTx(t.Context(), tx, msg("wake", 1)); err != nil {
				tx.Rollback()
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		case "Release":
			d := receiveOne(t, q, time.Hour)
			w = q.Wake() // taken after the receive, as a waiting receiver would
			if err := q.Release(t.Context(), d, queue.ReleaseOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-w:
		case <-time.After(waitTimeout):
			t.Fatalf("the Wake channel was not closed within %s of %s", waitTimeout, how)
		}
	}
}
