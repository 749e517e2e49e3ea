package queuetest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrybus/ferry/queue"
)

func testCount(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "count")
	other := mustQueue(t, s, "count-other")
	expectCount(t, q, queue.Counts{})
	if c, err := q.Count(ctx); err != nil || !c.OldestReady.IsZero() {
		t.Fatalf("Count of an empty queue = %+v, %v: want no oldest ready message", c, err)
	}
	before := time.Now().Add(-time.Millisecond)
	enqueue(t, q, msgs("ready", 3)...)
	after := time.Now().Add(time.Millisecond)
	deferred := msgs("deferred", 2)
	for i := range deferred {
		deferred[i].VisibleAt = time.Now().Add(time.Hour)
	}
	enqueue(t, q, deferred...)
	enqueue(t, other, msgs("other", 4)...)
	expectCount(t, q, queue.Counts{Ready: 3, Deferred: 2})
	// The head's age: the oldest ready message, not the deferred ones.
	if c, err := q.Count(ctx); err != nil || c.OldestReady.Before(before) || c.OldestReady.After(after) {
		t.Fatalf("Count = %+v, %v: want the oldest ready message enqueued between %v and %v", c, err, before, after)
	}

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

// testFindMessages: FindMessages returns the queue's messages with the
// given ids, in row order, in any state, without leasing them; ids of
// other queues and unknown ids are not found.
func testFindMessages(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q, other := mustQueue(t, s, "q"), mustQueue(t, s, "other")
	if found, err := q.FindMessages(ctx, nil); err != nil || len(found) != 0 {
		t.Fatalf("FindMessages of no ids = %v, %v; want none, nil", ids(found), err)
	}
	bulkFill(t, q, 7)
	enqueue(t, other, queue.Message{MessageID: "m-2"}, queue.Message{MessageID: "o-1"})
	leased := receiveOne(t, q, time.Hour) // m-0, in flight: found too
	found, err := q.FindMessages(ctx, []string{"m-5", "m-1", "nope", "o-1", "m-0"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(found), []string{"m-0", "m-1", "m-5"}) || found[1].Headers["keep"] != "1" {
		t.Fatalf("found %v, want m-0, m-1, m-5 in row order", ids(found))
	}
	if found[0].LeaseToken != leased.LeaseToken || found[1].LeaseToken != 0 || found[1].Attempts != 0 {
		t.Errorf("found m-0 with token %d (want %d), m-1 with token %d, attempts %d (want 0, 0)",
			found[0].LeaseToken, leased.LeaseToken, found[1].LeaseToken, found[1].Attempts)
	}
	for _, d := range found {
		if d.Queue != "q" {
			t.Errorf("%s: Queue = %q, want q", d.MessageID, d.Queue)
		}
	}
	// More ids than one batch.
	many := make([]string, 2500)
	for i := range many {
		many[i] = fmt.Sprintf("m-%d", i)
	}
	if found, err := q.FindMessages(ctx, many); err != nil || len(found) != 7 {
		t.Fatalf("FindMessages of %d ids = %d, %v; want 7", len(many), len(found), err)
	}
	expectCount(t, q, queue.Counts{Ready: 6, InFlight: 1}) // nothing leased by finding
}

// testLastRowID: the highest row id of the queue, 0 when empty, whatever
// other queues hold.
func testLastRowID(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q, other := mustQueue(t, s, "q"), mustQueue(t, s, "other")
	if last, err := q.LastRowID(ctx); err != nil || last != 0 {
		t.Fatalf("LastRowID of an empty queue = %d, %v; want 0", last, err)
	}
	rows := bulkFill(t, q, 7)
	bulkFill(t, other, 2) // higher ids, in another queue
	if last, err := q.LastRowID(ctx); err != nil || last != rows[6] {
		t.Fatalf("LastRowID = %d, %v; want %d", last, err, rows[6])
	}
	if _, err := q.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if last, err := q.LastRowID(ctx); err != nil || last != 0 {
		t.Fatalf("LastRowID after Purge = %d, %v; want 0", last, err)
	}
}

// testDeleteRows: DeleteRows deletes the named rows of its own queue that
// are not leased, one statement per batch.
func testDeleteRows(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q, other := mustQueue(t, s, "q"), mustQueue(t, s, "other")
	if n, err := q.DeleteRows(ctx, nil, queue.BulkOptions{}); err != nil || n != 0 {
		t.Fatalf("DeleteRows of no rows = %d, %v; want 0, nil", n, err)
	}
	rows := bulkFill(t, q, 7)
	otherRows := bulkFill(t, other, 2)
	receiveOne(t, q, time.Minute) // leases m-0
	calls := 0
	n, err := q.DeleteRows(ctx, append(slices.Clone(rows), otherRows...), queue.BulkOptions{BatchSize: 3, OnBatch: func(int) { calls++ }})
	if err != nil {
		t.Fatal(err)
	}
	if n != 6 || calls != 3 {
		t.Errorf("deleted %d in %d statements, want 6 in 3", n, calls)
	}
	if left := peekAll(t, q); len(left) != 1 || left[0].MessageID != "m-0" {
		t.Errorf("left %v, want the leased m-0", ids(left))
	}
	if left := peekAll(t, other); len(left) != 2 {
		t.Errorf("rows of another queue deleted: %d left", len(left))
	}
	if n, err := q.DeleteRows(ctx, rows, queue.BulkOptions{}); err != nil || n != 0 {
		t.Errorf("DeleteRows of deleted and leased rows = %d, %v; want 0, nil", n, err)
	}
}

// testQueueHandle: a queue knows its store, and two handles on one queue
// name see the same messages.
func testQueueHandle(t *testing.T, h *harness) {
	s := h.store(t)
	q := mustQueue(t, s, "handle")
	if q.Store() != s {
		t.Errorf("Queue.Store() = %v, want the store it came from", q.Store())
	}
	if q.Store().Name() != ConnectionName {
		t.Errorf("Queue.Store().Name() = %q, want %q", q.Store().Name(), ConnectionName)
	}
	if q.MaxPoll() != MaxPoll {
		t.Errorf("MaxPoll() = %s, want %s", q.MaxPoll(), MaxPoll)
	}
	enqueue(t, q, msg("handle", 0))
	expectCount(t, mustQueue(t, s, "handle"), queue.Counts{Ready: 1})
	expectCount(t, mustQueue(t, h.reopen(t, s), "handle"), queue.Counts{Ready: 1})
}

// testExpunge: Expunge deletes the messages visible since before a time, by
// visible_at (for a moved message, when it entered the queue, not when it
// was first enqueued), in batches, and never a leased or deferred message
// or another queue's.
func testExpunge(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q, other, src := mustQueue(t, s, "expunge-error"), mustQueue(t, s, "expunge-other"), mustQueue(t, s, "expunge-src")
	if _, err := q.Expunge(ctx, time.Now(), 0); err == nil {
		t.Fatal("Expunge with batch 0: no error")
	}
	if _, err := q.Expunge(ctx, time.Now(), queue.MaxExpungeBatch+1); err == nil {
		t.Fatalf("Expunge with batch %d: no error", queue.MaxExpungeBatch+1)
	}
	if n, err := q.Expunge(ctx, time.Now(), 10); err != nil || n != 0 {
		t.Fatalf("Expunge of an empty queue = %d, %v; want 0", n, err)
	}
	// Enqueued first, moved to q after the cut: it entered q after it.
	enqueue(t, src, msg("moved", 0))
	enqueue(t, q, msgs("aged", 8)...)
	receiveOne(t, q, time.Hour) // one of the eight, leased for an hour: kept
	deferred := msg("deferred", 0)
	deferred.VisibleAt = time.Now().Add(time.Hour)
	enqueue(t, q, deferred)
	enqueue(t, other, msg("other", 0))
	enqueued := time.Now()
	eventually(t, "the clock past the enqueues", func() bool { return time.Since(enqueued) > time.Millisecond })
	cut := time.Now()
	eventually(t, "the clock past the cut", func() bool { return time.Since(cut) > time.Millisecond })
	if err := src.Move(ctx, receiveOne(t, src, time.Minute), q, nil); err != nil {
		t.Fatal(err)
	}

	n, err := q.Expunge(ctx, cut, 3) // several statements
	if err != nil || n != 7 {
		t.Fatalf("Expunge = %d, %v; want 7: the 8 visible since before the cut but the one leased", n, err)
	}
	left := ids(peekAll(t, q))
	if len(left) != 3 {
		t.Fatalf("left after Expunge: %v, want 3: the leased, the deferred and the moved message", left)
	}
	for _, want := range []string{msg("deferred", 0).MessageID, msg("moved", 0).MessageID} {
		if !slices.Contains(left, want) {
			t.Errorf("Expunge deleted %s; left %v", want, left)
		}
	}
	expectCount(t, other, queue.Counts{Ready: 1})
	// A cut later than now is taken as now: the moved message goes, the
	// leased and the deferred ones stay.
	if n, err := q.Expunge(ctx, time.Now().Add(time.Hour), 1); err != nil || n != 1 {
		t.Fatalf("Expunge after the move = %d, %v; want 1 (the moved message)", n, err)
	}
	expectCount(t, q, queue.Counts{Deferred: 1, InFlight: 1})
}
