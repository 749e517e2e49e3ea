package queuetest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrybus/ferry/queue"
)

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

// testMalformedHeadersDelivered: a row whose headers column is not a JSON
// object of strings (written by something other than ferry) is delivered
// with HeadersErr set, beside the good messages of the same batch, and can
// be acked: it never blocks the queue.
func testMalformedHeadersDelivered(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "malformed")
	enqueue(t, q, msg("malformed", 0))
	h.insertRawRow(t, s, "malformed", "bad-headers", `{"a":1`)
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

// take calls Take and checks it kept to max.
func take(t testing.TB, q queue.Queue, max int) []queue.Delivery {
	t.Helper()
	ds, err := q.Take(context.Background(), max)
	if err != nil {
		t.Fatalf("Take(%d) on %s: %v", max, q.URI(), err)
	}
	if len(ds) > max {
		t.Fatalf("Take(%d) on %s returned %d deliveries", max, q.URI(), len(ds))
	}
	return ds
}

// testTake: Take removes at most max visible messages, in priority then
// id order, and returns them whole and unleased: they cannot be settled.
func testTake(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "take")
	other := mustQueue(t, s, "take-other")
	prios := []int{0, 5, 1, 5, 0, -1, 10}
	var ms []queue.Message
	for i, p := range prios {
		m := msg("take", i)
		m.Priority = p
		ms = append(ms, m)
	}
	want := []string{"take-00006", "take-00001", "take-00003", "take-00002", "take-00000", "take-00004", "take-00005"}
	enqueue(t, q, ms...)
	enqueue(t, other, msg("other", 0))
	if ds := take(t, q, 0); len(ds) != 0 {
		t.Fatalf("Take(0) = %d deliveries, want none", len(ds))
	}
	first := take(t, q, 3)
	if got := ids(first); !slices.Equal(got, want[:3]) {
		t.Fatalf("Take(3): %v, want %v", got, want[:3])
	}
	expectCount(t, q, queue.Counts{Ready: int64(len(ms) - 3)})
	rest := take(t, q, 100)
	if got := ids(rest); !slices.Equal(got, want[3:]) {
		t.Fatalf("Take(100) after Take(3): %v, want %v", got, want[3:])
	}
	expectCount(t, q, queue.Counts{})
	expectCount(t, other, queue.Counts{Ready: 1})
	byID := map[string]queue.Message{}
	for _, m := range ms {
		byID[m.MessageID] = m
	}
	for _, d := range append(first, rest...) {
		checkMessage(t, d, byID[d.MessageID])
		if d.LeaseToken != 0 || d.Attempts != 1 || d.Queue != q.Name() || d.ID == 0 || d.EnqueuedAt.IsZero() {
			t.Errorf("%s: LeaseToken %d, Attempts %d, Queue %q, ID %d, EnqueuedAt %s; want 0, 1, %q, a row id, a time",
				d.MessageID, d.LeaseToken, d.Attempts, d.Queue, d.ID, d.EnqueuedAt, q.Name())
		}
	}
	if err := q.Ack(ctx, first[0]); !errors.Is(err, queue.ErrNotLeased) {
		t.Errorf("Ack of a taken delivery: err = %v, want ErrNotLeased", err)
	}
	if ds := take(t, q, 10); len(ds) != 0 {
		t.Fatalf("Take on an emptied queue: %v, want none", ids(ds))
	}
}

// testTakeSkipsDeferredAndLeased: Take leaves deferred messages and
// messages under a lease alone, as Receive does.
func testTakeSkipsDeferredAndLeased(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "take-skip")
	later := msg("later", 0)
	later.VisibleAt = time.Now().Add(time.Hour)
	enqueue(t, q, later, msg("leased", 0), msg("ready", 0))
	leased := receiveOne(t, q, time.Hour) // the oldest visible: leased-00000
	if leased.MessageID != "leased-00000" {
		t.Fatalf("received %s, want leased-00000", leased.MessageID)
	}
	if got := ids(take(t, q, 10)); !slices.Equal(got, []string{"ready-00000"}) {
		t.Fatalf("Take: %v, want only the visible ready-00000", got)
	}
	expectCount(t, q, queue.Counts{Deferred: 1, InFlight: 1})
	if err := q.Ack(ctx, leased); err != nil {
		t.Fatalf("Ack of the leased message after a Take: %v", err)
	}
	expectCount(t, q, queue.Counts{Deferred: 1})
}

// testConcurrentTakers: of takers racing on one queue, each message goes
// to exactly one.
func testConcurrentTakers(t *testing.T, h *harness) {
	s := h.store(t)
	q := mustQueue(t, s, "take-race")
	const (
		n      = 2000
		takers = 8
		batch  = 7
	)
	enqueue(t, q, msgs("race", n)...)
	var (
		mu    sync.Mutex
		taken = map[string]int{}
		wg    sync.WaitGroup
	)
	for w := range takers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ds, err := q.Take(t.Context(), batch)
				if err != nil {
					t.Errorf("taker %d: Take: %v", w, err)
					return
				}
				if len(ds) > batch {
					t.Errorf("taker %d: Take(%d) returned %d", w, batch, len(ds))
				}
				if len(ds) == 0 {
					return // drained: nothing is leased or deferred here
				}
				mu.Lock()
				for _, d := range ds {
					taken[d.MessageID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, m := range msgs("race", n) {
		if taken[m.MessageID] != 1 {
			t.Errorf("%s taken %d times, want 1", m.MessageID, taken[m.MessageID])
		}
	}
	expectCount(t, q, queue.Counts{})
}
