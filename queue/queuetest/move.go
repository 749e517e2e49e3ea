package queuetest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrybus/ferry/queue"
)

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
	s := h.store(t)
	src, dst := mustQueue(t, s, "inbox"), mustQueue(t, s, "worker")
	moveReadyInTwo(t, src, dst, moveReadySetup(t, src))
}

func testMoveReadyAcrossDatabases(t *testing.T, h *harness) {
	s, s2 := h.store(t), h.store(t)
	src, dst := mustQueue(t, s, "inbox"), mustQueue(t, s2, "worker")
	moveReadyInTwo(t, src, dst, moveReadySetup(t, src))
	expectCount(t, mustQueue(t, s, "worker"), queue.Counts{})
}

// moveReadyInTwo moves what moveReadySetup left ready in src to dst: none
// with limit 0, four with a header patch, the other six without one, then
// none when nothing is ready. dst then hands out all ten in receive order,
// counting afresh.
func moveReadyInTwo(t *testing.T, src, dst queue.Queue, order []string) {
	t.Helper()
	ctx := t.Context()
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

// testMoveReadyFenced: a lock changes hands; the old holder's fenced move
// moves nothing, the new holder's moves everything ready, in receive order,
// with the headers merged, and keeps each message's delivery count.
func testMoveReadyFenced(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	src, dst := mustQueue(t, s, "inbox"), mustQueue(t, s, "worker")
	order := moveReadySetup(t, src)

	old, cur := takeExpiredLock(t, s, "dist")
	patch := map[string]string{"k": "override", "via": "distributor"}
	if n, err := src.MoveReadyFenced(ctx, dst, 100, patch, s.Fence("dist", old), queue.Handoff{}); err != nil || n != 0 {
		t.Fatalf("MoveReadyFenced with a stale fence = %d, %v; want 0, nil", n, err)
	}
	expectCount(t, dst, queue.Counts{})
	if n, err := src.MoveReadyFenced(ctx, dst, 0, patch, s.Fence("dist", cur), queue.Handoff{}); err != nil || n != 0 {
		t.Fatalf("MoveReadyFenced(limit 0) = %d, %v; want 0, nil", n, err)
	}
	n, err := src.MoveReadyFenced(ctx, dst, 4, patch, s.Fence("dist", cur), queue.Handoff{})
	if err != nil || n != 4 {
		t.Fatalf("MoveReadyFenced(limit 4) = %d, %v; want 4, nil", n, err)
	}
	checkMoved(t, dst, order[:4], patch)
	n, err = src.MoveReadyFenced(ctx, dst, 100, patch, s.Fence("dist", cur), queue.Handoff{})
	if err != nil || n != 6 {
		t.Fatalf("MoveReadyFenced(limit 100) = %d, %v; want 6, nil", n, err)
	}
	expectCount(t, src, queue.Counts{Deferred: 1, InFlight: 1})
	expectCount(t, dst, queue.Counts{Ready: 10})

	// A delivery whose lease ended: its count survives the fenced move.
	enqueue(t, src, msg("redelivered", 0))
	d := receiveOne(t, src, 50*time.Millisecond)
	eventually(t, "the lease to end", func() bool { return count(t, src).Ready == 1 })
	if n, err := src.MoveReadyFenced(ctx, dst, 100, patch, s.Fence("dist", cur), queue.Handoff{}); err != nil || n != 1 {
		t.Fatalf("MoveReadyFenced of the redelivery = %d, %v; want 1, nil", n, err)
	}
	for _, m := range peekAll(t, dst) {
		want := 0
		if m.ID == d.ID {
			want = 1 // the redelivery keeps its count
		}
		if m.Attempts != want || m.LeaseToken != 0 || m.Headers["via"] != "distributor" {
			t.Errorf("%s: attempts %d, lease %d, headers %v; want %d, 0, via=distributor", m.MessageID, m.Attempts, m.LeaseToken, m.Headers, want)
		}
	}
}

// testMoveReadyFencedAcrossDatabases: with the lock in another database
// than the queues, the fence is checked before the move: a held fence moves
// (re-enqueueing, so the count starts afresh), a stale one refuses with
// ErrFenced.
func testMoveReadyFencedAcrossDatabases(t *testing.T, h *harness) {
	ctx := t.Context()
	s, s2 := h.store(t), h.store(t)
	src, dst := mustQueue(t, s, "inbox"), mustQueue(t, s2, "worker")
	order := moveReadySetup(t, src)
	tok := holdLock(t, s2, "dist", "a", time.Hour)
	patch := map[string]string{"via": "distributor"}
	n, err := src.MoveReadyFenced(ctx, dst, 4, patch, s2.Fence("dist", tok), queue.Handoff{})
	if err != nil || n != 4 {
		t.Fatalf("MoveReadyFenced across databases = %d, %v; want 4, nil", n, err)
	}
	checkMoved(t, dst, order[:4], patch)
	if err := s2.Unlock(ctx, "dist", "a"); err != nil {
		t.Fatal(err)
	}
	holdLock(t, s2, "dist", "b", time.Hour)
	n, err = src.MoveReadyFenced(ctx, dst, 100, patch, s2.Fence("dist", tok), queue.Handoff{})
	if !errors.Is(err, queue.ErrFenced) || n != 0 {
		t.Fatalf("MoveReadyFenced with a stale fence across databases = %d, %v; want 0, ErrFenced", n, err)
	}
	expectCount(t, src, queue.Counts{Ready: 6, Deferred: 1, InFlight: 1})
	expectCount(t, dst, queue.Counts{Ready: 4})
}

// testMoveReadyFencedMalformedHeaders: a row whose stored headers are not
// valid JSON (written by a producer other than ferry) does not stop a fenced
// move: every row moves, the good ones with the new headers, the malformed
// one with its headers untouched, byte for byte (the receiver parks it as a
// decode failure).
func testMoveReadyFencedMalformedHeaders(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	src, dst := mustQueue(t, s, "src"), mustQueue(t, s, "dst")
	enqueue(t, src, msgs("good", 3)...)
	const raw = `{"ferry.correlation-id":"c-1","x":"y"`
	h.insertRawRow(t, s, "src", "bad", raw)
	tok := holdLock(t, s, "dist", "a", time.Hour)
	n, err := src.MoveReadyFenced(ctx, dst, 10, map[string]string{"h": "1"}, s.Fence("dist", tok), queue.Handoff{})
	if err != nil || n != 4 {
		t.Fatalf("moved %d (%v), want all 4", n, err)
	}
	for _, d := range peekAll(t, dst) {
		if d.MessageID == "bad" {
			if d.RawHeaders != raw {
				t.Errorf("malformed headers became %q, want %q kept", d.RawHeaders, raw)
			}
			continue
		}
		if d.Headers["h"] != "1" {
			t.Errorf("%s: headers %v, want h=1 added", d.MessageID, d.Headers)
		}
	}
	// A stale fence still moves nothing, malformed row or not.
	enqueue(t, src, msg("good", 3))
	h.insertRawRow(t, s, "src", "bad-2", raw)
	if n, err := src.MoveReadyFenced(ctx, dst, 10, nil, s.Fence("dist", tok-1), queue.Handoff{}); err != nil || n != 0 {
		t.Fatalf("stale fence moved %d (%v)", n, err)
	}
	expectCount(t, src, queue.Counts{Ready: 2})
}

// testMoveRowsSameDatabase: MoveRows moves the named rows of its own queue
// that are not leased, in batches, dropping the named headers; the moved
// messages start afresh and wake dst's receivers.
func testMoveRowsSameDatabase(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	src, dst, other := mustQueue(t, s, "src"), mustQueue(t, s, "dst"), mustQueue(t, s, "other")
	rows := bulkFill(t, src, 10)
	otherRows := bulkFill(t, other, 1)
	// A leased message belongs to its receiver: it is skipped.
	leased := receiveOne(t, src, time.Minute)
	if n, err := src.MoveRows(ctx, nil, dst, queue.BulkOptions{}); err != nil || n != 0 {
		t.Fatalf("MoveRows of no rows = %d, %v; want 0, nil", n, err)
	}
	wake := dst.Wake()
	var batches []int
	n, err := src.MoveRows(ctx, append(slices.Clone(rows), otherRows[0], 999999), dst, queue.BulkOptions{
		BatchSize:   4,
		DropHeaders: []string{"x.drop", "x.also"},
		OnBatch:     func(n int) { batches = append(batches, n) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 9 {
		t.Errorf("moved %d, want 9 (10 less the leased one)", n)
	}
	if !slices.Equal(batches, []int{3, 4, 2}) {
		t.Errorf("batches %v, want [3 4 2] (4 ids per statement, the leased first one skipped)", batches)
	}
	select {
	case <-wake:
	default:
		t.Error("receivers of dst were not woken")
	}
	moved := peekAll(t, dst)
	if len(moved) != 9 {
		t.Fatalf("dst holds %d", len(moved))
	}
	now := time.Now()
	for i, d := range moved {
		if d.MessageID != fmt.Sprintf("m-%d", i+1) || d.Attempts != 0 || d.LeaseToken != 0 || d.VisibleAt.After(now) {
			t.Errorf("moved message %+v", d)
		}
		if len(d.Headers) != 1 || d.Headers["keep"] != fmt.Sprint(i+1) {
			t.Errorf("moved message %s headers %v, want only keep=%d", d.MessageID, d.Headers, i+1)
		}
		if string(d.Body) != fmt.Sprintf(`{"n":%d}`, i+1) {
			t.Errorf("body %q", d.Body)
		}
	}
	if left := peekAll(t, src); len(left) != 1 || left[0].ID != leased.ID {
		t.Errorf("src holds %v, want the leased message only", ids(left))
	}
	if c := peekAll(t, other); len(c) != 1 {
		t.Errorf("a row of another queue was moved: other holds %d", len(c))
	}
	if _, err := src.MoveRows(ctx, rows, src, queue.BulkOptions{}); err == nil {
		t.Error("move to the same queue: no error")
	}
	if _, err := src.MoveRows(ctx, rows, nil, queue.BulkOptions{}); err == nil {
		t.Error("move to no queue: no error")
	}
	// No headers to drop keeps them all.
	if n, err := dst.MoveRows(ctx, []int64{moved[0].ID}, src, queue.BulkOptions{}); err != nil || n != 1 {
		t.Fatalf("move back: %d %v", n, err)
	}
	back, err := src.FindMessages(ctx, []string{"m-1"})
	if err != nil || len(back) != 1 || len(back[0].Headers) != 1 {
		t.Errorf("moved back: %+v %v", back, err)
	}
}

// testMoveRowsAcrossDatabases: across databases MoveRows keeps arrival
// order and drops only the named headers, skipping the leased row.
func testMoveRowsAcrossDatabases(t *testing.T, h *harness) {
	moveRowsAcross(t, h.store(t), h.store(t))
}

// testMoveRowsAcrossImplementations: the same from a store of this
// implementation to one of another (the driver's OpenOther); the run of
// the other implementation's suite covers the way back.
func testMoveRowsAcrossImplementations(t *testing.T, h *harness) {
	moveRowsAcross(t, h.store(t), h.other(t))
}

// moveRowsAcross moves 24 of 25 rows (one leased) from queue src of s to
// queue dst of s2, in batches of 10, and checks what arrived.
func moveRowsAcross(t *testing.T, s, s2 queue.Store) {
	ctx := t.Context()
	src, dst := mustQueue(t, s, "src"), mustQueue(t, s2, "dst")
	rows := bulkFill(t, src, 25)
	leased := receiveOne(t, src, time.Minute)
	var batches []int
	n, err := src.MoveRows(ctx, rows, dst, queue.BulkOptions{
		BatchSize: 10, DropHeaders: []string{"x.drop"},
		OnBatch: func(n int) { batches = append(batches, n) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 24 || !slices.Equal(batches, []int{9, 10, 5}) {
		t.Errorf("moved %d in batches %v, want 24 in [9 10 5]", n, batches)
	}
	moved := peekAll(t, dst)
	if len(moved) != 24 {
		t.Fatalf("dst holds %d", len(moved))
	}
	for i, d := range moved {
		if d.MessageID != fmt.Sprintf("m-%d", i+1) {
			t.Errorf("position %d: %s, want arrival order kept", i, d.MessageID)
		}
		if _, ok := d.Headers["x.drop"]; ok || d.Headers["x.also"] != "gone" || d.Headers["keep"] != fmt.Sprint(i+1) {
			t.Errorf("headers %v", d.Headers)
		}
		if d.Attempts != 0 || d.LeaseToken != 0 {
			t.Errorf("%s: attempts %d, lease %d in the destination; want 0, 0", d.MessageID, d.Attempts, d.LeaseToken)
		}
	}
	if left := peekAll(t, src); len(left) != 1 || left[0].ID != leased.ID {
		t.Errorf("src holds %d, want the leased message only", len(left))
	}
	expectCount(t, mustQueue(t, s, "dst"), queue.Counts{})
}

// handoffSetup fills src like moveReadySetup, takes lock "dist" and moves
// the ready messages to dst handed over to token for lease; it returns the
// message ids in receive order.
func handoffSetup(t *testing.T, s queue.Store, src, dst queue.Queue, token int64, lease time.Duration) []string {
	t.Helper()
	order := moveReadySetup(t, src)
	fence := s.Fence("dist", holdLock(t, s, "dist", "a", time.Hour))
	patch := map[string]string{"via": "distributor"}
	n, err := src.MoveReadyFenced(t.Context(), dst, 100, patch, fence, queue.Handoff{Token: token, For: lease})
	if err != nil || n != len(order) {
		t.Fatalf("MoveReadyFenced with a handoff = %d, %v; want %d, nil", n, err, len(order))
	}
	return order
}

// receiveGiven is ReceiveGiven failing t on an error.
func receiveGiven(t testing.TB, q queue.Queue, token int64, max int, skip []int64) []queue.Delivery {
	t.Helper()
	ds, err := q.ReceiveGiven(t.Context(), token, max, skip)
	if err != nil {
		t.Fatalf("ReceiveGiven(%d, %d, %v) on %s: %v", token, max, skip, q.URI(), err)
	}
	if len(ds) > max {
		t.Fatalf("ReceiveGiven(max %d) returned %d", max, len(ds))
	}
	return ds
}

func rowIDs(ds []queue.Delivery) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

// testMoveReadyFencedHandoff: a fenced move with a handoff leases the moved
// rows to the receiver's token in the same statement. They are in flight,
// invisible to Receive; ReceiveGiven reads them, in receive order, as
// deliveries of that token (counted once, by the move), each once per skip
// set, and they settle like received ones.
func testMoveReadyFencedHandoff(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	src, dst := mustQueue(t, s, "inbox"), mustQueue(t, s, "worker")
	const token = 4242
	before := s.RowWrites()
	order := handoffSetup(t, s, src, dst, token, time.Hour)
	expectCount(t, dst, queue.Counts{InFlight: 10})
	expectCount(t, src, queue.Counts{Deferred: 1, InFlight: 1})
	if s.RowWrites() <= before {
		t.Errorf("RowWrites did not grow with the move (%d before, %d after)", before, s.RowWrites())
	}
	expectEmptyReceive(t, dst, "Receive of handed-over rows still leased")
	if ds := receiveGiven(t, dst, token+1, 100, nil); len(ds) != 0 {
		t.Fatalf("ReceiveGiven with another token returned %v", ids(ds))
	}

	writes := s.RowWrites()
	first := receiveGiven(t, dst, token, 4, nil)
	if got := ids(first); !slices.Equal(got, order[:4]) {
		t.Fatalf("ReceiveGiven(4) = %v, want %v (receive order)", got, order[:4])
	}
	if again := receiveGiven(t, dst, token, 4, nil); !slices.Equal(ids(again), order[:4]) {
		t.Fatalf("ReceiveGiven again with the same skip set = %v, want %v", ids(again), order[:4])
	}
	rest := receiveGiven(t, dst, token, 100, rowIDs(first))
	if got := ids(rest); !slices.Equal(got, order[4:]) {
		t.Fatalf("ReceiveGiven skipping the first 4 = %v, want %v", got, order[4:])
	}
	if ds := receiveGiven(t, dst, token, 100, append(rowIDs(first), rowIDs(rest)...)); len(ds) != 0 {
		t.Fatalf("ReceiveGiven skipping every row returned %v", ids(ds))
	}
	if got := s.RowWrites(); got != writes {
		t.Errorf("ReceiveGiven wrote %d rows, want none", got-writes)
	}
	for _, d := range append(first, rest...) {
		if d.LeaseToken != token || d.Attempts != 1 || d.Queue != "worker" || d.Headers["via"] != "distributor" || d.Headers["k"] != "orig" {
			t.Errorf("%s: lease %d, attempts %d, queue %q, headers %v; want %d, 1, worker, via=distributor k=orig",
				d.MessageID, d.LeaseToken, d.Attempts, d.Queue, d.Headers, token)
		}
		if !d.VisibleAt.After(time.Now().Add(50 * time.Minute)) {
			t.Errorf("%s: lease ends %s, want about an hour from now", d.MessageID, d.VisibleAt)
		}
	}

	// They settle like received deliveries.
	if err := dst.Ack(ctx, first[0]); err != nil {
		t.Fatalf("Ack of a handed-over delivery: %v", err)
	}
	if acked, err := dst.AckMany(ctx, first[1:2]); err != nil || !acked[first[1].ID] {
		t.Fatalf("AckMany of a handed-over delivery = %v, %v", acked, err)
	}
	if err := dst.Extend(ctx, first[2], time.Hour); err != nil {
		t.Fatalf("Extend of a handed-over delivery: %v", err)
	}
	if err := dst.Release(ctx, first[3], queue.ReleaseOptions{Uncount: true}); err != nil {
		t.Fatalf("Release of a handed-over delivery: %v", err)
	}
	if got := ids(receiveGiven(t, dst, token, 100, nil)); !slices.Equal(got, append([]string{order[2]}, order[4:]...)) {
		t.Fatalf("ReceiveGiven after settling = %v, want %v", got, append([]string{order[2]}, order[4:]...))
	}
	released := receiveOne(t, dst, time.Hour)
	if released.ID != first[3].ID || released.Attempts != 1 {
		t.Fatalf("Receive after Release = %s (attempts %d), want %s (attempts 1: the release uncounted the move)",
			released.MessageID, released.Attempts, first[3].MessageID)
	}
	expectCount(t, dst, queue.Counts{InFlight: 8})
}

// testMoveReadyFencedHandoffLeaseEnds: handed-over rows whose lease ends,
// never read, are no longer given: plain Receive takes them, as a
// redelivery. A stale fence hands nothing over, and a redelivery keeps its
// count through the handoff.
func testMoveReadyFencedHandoffLeaseEnds(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	src, dst := mustQueue(t, s, "inbox"), mustQueue(t, s, "worker")
	const token = 77
	// A delivery whose lease ended in src keeps its count: the move adds one.
	enqueue(t, src, msg("redelivered", 0))
	receiveOne(t, src, 50*time.Millisecond)
	eventually(t, "the lease in src to end", func() bool { return count(t, src).Ready == 1 })
	enqueue(t, src, msg("fresh", 0))

	old := holdLock(t, s, "dist", "a", 50*time.Millisecond)
	openSession(t, s, "dist", "b")
	var cur int64
	eventually(t, "b to take the expired lock", func() bool {
		tok, err := s.AcquireLock(ctx, "dist", "b", time.Hour)
		if err != nil {
			t.Fatalf("AcquireLock: %v", err)
		}
		cur = tok
		return tok != 0
	})
	handoff := queue.Handoff{Token: token, For: 300 * time.Millisecond}
	if n, err := src.MoveReadyFenced(ctx, dst, 10, nil, s.Fence("dist", old), handoff); err != nil || n != 0 {
		t.Fatalf("MoveReadyFenced with a stale fence and a handoff = %d, %v; want 0, nil", n, err)
	}
	expectCount(t, dst, queue.Counts{})
	if _, err := src.MoveReadyFenced(ctx, dst, 10, nil, s.Fence("dist", cur), queue.Handoff{Token: token}); err == nil {
		t.Fatal("MoveReadyFenced with a handoff of no lease: no error")
	}
	if n, err := src.MoveReadyFenced(ctx, dst, 10, nil, s.Fence("dist", cur), handoff); err != nil || n != 2 {
		t.Fatalf("MoveReadyFenced with a handoff = %d, %v; want 2, nil", n, err)
	}
	given := receiveGiven(t, dst, token, 10, nil)
	want := map[string]int{"redelivered-00000": 2, "fresh-00000": 1}
	if len(given) != 2 {
		t.Fatalf("ReceiveGiven = %v, want both", ids(given))
	}
	for _, d := range given {
		if d.Attempts != want[d.MessageID] {
			t.Errorf("%s: attempts %d, want %d", d.MessageID, d.Attempts, want[d.MessageID])
		}
	}
	eventually(t, "the handed-over lease to end", func() bool { return count(t, dst).Ready == 2 })
	if ds := receiveGiven(t, dst, token, 10, nil); len(ds) != 0 {
		t.Fatalf("ReceiveGiven after the lease ended = %v, want none", ids(ds))
	}
	again := receive(t, dst, 10, time.Hour)
	if len(again) != 2 {
		t.Fatalf("Receive after the handed-over lease ended = %v, want both", ids(again))
	}
	for _, d := range again {
		if d.LeaseToken == token || d.Attempts != want[d.MessageID]+1 {
			t.Errorf("%s: lease %d, attempts %d; want a new lease, %d attempts", d.MessageID, d.LeaseToken, d.Attempts, want[d.MessageID]+1)
		}
	}
	for _, d := range given {
		expectLeaseLost(t, dst.Ack(ctx, d), "Ack of a handed-over delivery whose lease ended and was received again")
	}
	if _, err := dst.ReceiveGiven(ctx, 0, 10, nil); !errors.Is(err, queue.ErrNotLeased) {
		t.Errorf("ReceiveGiven(token 0) = %v, want ErrNotLeased", err)
	}
}

// testMoveReadyFencedHandoffAcrossDatabases: across databases the move
// re-enqueues, so the rows arrive unleased whatever the handoff.
func testMoveReadyFencedHandoffAcrossDatabases(t *testing.T, h *harness) {
	ctx := t.Context()
	s, s2 := h.store(t), h.store(t)
	src, dst := mustQueue(t, s, "inbox"), mustQueue(t, s2, "worker")
	enqueue(t, src, msgs("across", 3)...)
	tok := holdLock(t, s, "dist", "a", time.Hour)
	n, err := src.MoveReadyFenced(ctx, dst, 10, nil, s.Fence("dist", tok), queue.Handoff{Token: 9, For: time.Hour})
	if err != nil || n != 3 {
		t.Fatalf("MoveReadyFenced across databases with a handoff = %d, %v; want 3, nil", n, err)
	}
	expectCount(t, dst, queue.Counts{Ready: 3})
	if ds := receiveGiven(t, dst, 9, 10, nil); len(ds) != 0 {
		t.Fatalf("ReceiveGiven across databases = %v, want none (the rows arrive unleased)", ids(ds))
	}
	if got := receive(t, dst, 10, time.Hour); len(got) != 3 {
		t.Fatalf("Receive across databases = %v, want 3", ids(got))
	}
}

// testMoveRowsBatched moves 20,000 messages with 1,000 per statement: 20
// statements, not 20,000 round trips; DeleteRows without a batch size uses
// queue.DefaultBatchSize.
func testMoveRowsBatched(t *testing.T, h *harness) {
	ctx := t.Context()
	const total = 20000
	s := h.store(t)
	src, dst := mustQueue(t, s, "src"), mustQueue(t, s, "dst")
	rows := bulkFill(t, src, total)
	statements := 0
	started := time.Now()
	n, err := src.MoveRows(ctx, rows, dst, queue.BulkOptions{
		BatchSize: 1000, DropHeaders: []string{"x.drop"},
		OnBatch: func(int) { statements++ },
	})
	took := time.Since(started)
	if err != nil {
		t.Fatal(err)
	}
	if n != total || statements != total/1000 {
		t.Errorf("moved %d with %d statements, want %d with %d", n, statements, total, total/1000)
	}
	if c := count(t, dst); c.Ready != total {
		t.Errorf("dst counts %+v", c)
	}
	t.Logf("moved %d messages in %s", total, took)
	statements = 0
	n, err = dst.DeleteRows(ctx, rows, queue.BulkOptions{OnBatch: func(int) { statements++ }})
	if err != nil || n != total || statements != total/queue.DefaultBatchSize {
		t.Errorf("deleted %d with %d statements (%v)", n, statements, err)
	}
}

// checkMovedRows checks what MoveReadyFencedRows returned: exactly the
// messages wantIDs (in any order), with their headers as moved (the
// moveReadySetup headers with patch merged in).
func checkMovedRows(t *testing.T, moved []queue.Moved, wantIDs []string, patch map[string]string) {
	t.Helper()
	got := make([]string, len(moved))
	for i, m := range moved {
		got[i] = m.MessageID
		n, _ := strconv.Atoi(strings.TrimPrefix(m.MessageID, "mr-"))
		wantH := map[string]string{"n": strconv.Itoa(n), "k": "orig"}
		maps.Copy(wantH, patch)
		if !maps.Equal(m.Headers, wantH) {
			t.Errorf("%s: returned headers %v, want %v", m.MessageID, m.Headers, wantH)
		}
	}
	slices.Sort(got)
	want := slices.Clone(wantIDs)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("MoveReadyFencedRows returned %v, want %v", got, want)
	}
}

// testMoveReadyFencedRows: MoveReadyFencedRows moves as MoveReadyFenced
// does (fenced, in receive order, headers merged, the handoff leasing the
// rows to their receiver, dst woken) and returns each moved message with
// its headers as moved; a stale fence moves and returns nothing.
func testMoveReadyFencedRows(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	src, dst := mustQueue(t, s, "inbox"), mustQueue(t, s, "worker")
	order := moveReadySetup(t, src)
	old, cur := takeExpiredLock(t, s, "dist")
	patch := map[string]string{"k": "override", "via": "distributor"}
	if moved, err := src.MoveReadyFencedRows(ctx, dst, 100, patch, s.Fence("dist", old), queue.Handoff{}); err != nil || len(moved) != 0 {
		t.Fatalf("MoveReadyFencedRows with a stale fence = %v, %v; want none, nil", moved, err)
	}
	expectCount(t, dst, queue.Counts{})
	if moved, err := src.MoveReadyFencedRows(ctx, dst, 0, patch, s.Fence("dist", cur), queue.Handoff{}); err != nil || len(moved) != 0 {
		t.Fatalf("MoveReadyFencedRows(limit 0) = %v, %v; want none, nil", moved, err)
	}
	wake := dst.Wake()
	moved, err := src.MoveReadyFencedRows(ctx, dst, 4, patch, s.Fence("dist", cur), queue.Handoff{})
	if err != nil {
		t.Fatalf("MoveReadyFencedRows(limit 4): %v", err)
	}
	checkMovedRows(t, moved, order[:4], patch)
	checkMoved(t, dst, order[:4], patch)
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("the move did not wake dst's receivers")
	}

	// With a handoff: the rest, leased to the receiver's token.
	moved, err = src.MoveReadyFencedRows(ctx, dst, 100, patch, s.Fence("dist", cur), queue.Handoff{Token: 77, For: time.Hour})
	if err != nil {
		t.Fatalf("MoveReadyFencedRows with a handoff: %v", err)
	}
	checkMovedRows(t, moved, order[4:], patch)
	if given := receiveGiven(t, dst, 77, 100, nil); len(given) != len(order)-4 {
		t.Fatalf("ReceiveGiven after the handoff returned %d, want %d", len(given), len(order)-4)
	}
	expectCount(t, src, queue.Counts{Deferred: 1, InFlight: 1})

	// The lock in another database than the queues: the fence is checked
	// first, and the move still returns its rows.
	s2 := h.store(t)
	tok := holdLock(t, s2, "dist", "a", time.Hour)
	enqueue(t, src, queue.Message{MessageID: "mr-00010", Headers: map[string]string{"n": "10", "k": "orig"}})
	moved, err = src.MoveReadyFencedRows(ctx, dst, 100, patch, s2.Fence("dist", tok), queue.Handoff{})
	if err != nil {
		t.Fatalf("MoveReadyFencedRows with the lock elsewhere: %v", err)
	}
	checkMovedRows(t, moved, []string{"mr-00010"}, patch)
}

// testMoveReadyFencedRowsAcrossDatabases: across databases the move
// re-enqueues, and returns the messages it moved all the same.
func testMoveReadyFencedRowsAcrossDatabases(t *testing.T, h *harness) {
	ctx := t.Context()
	s, s2 := h.store(t), h.store(t)
	src, dst := mustQueue(t, s, "inbox"), mustQueue(t, s2, "worker")
	order := moveReadySetup(t, src)
	tok := holdLock(t, s2, "dist", "a", time.Hour)
	patch := map[string]string{"via": "distributor"}
	moved, err := src.MoveReadyFencedRows(ctx, dst, 4, patch, s2.Fence("dist", tok), queue.Handoff{})
	if err != nil {
		t.Fatalf("MoveReadyFencedRows across databases: %v", err)
	}
	checkMovedRows(t, moved, order[:4], patch)
	checkMoved(t, dst, order[:4], patch)
}

// testMoveReadyFencedRowsMalformedHeaders: a row with malformed stored
// headers moves (row by row, as with MoveReadyFenced) and is returned with
// nil headers; the others with theirs as moved.
func testMoveReadyFencedRowsMalformedHeaders(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	src, dst := mustQueue(t, s, "src"), mustQueue(t, s, "dst")
	enqueue(t, src, msgs("good", 3)...)
	h.insertRawRow(t, s, "src", "bad", `{"x":"y"`)
	tok := holdLock(t, s, "dist", "a", time.Hour)
	moved, err := src.MoveReadyFencedRows(ctx, dst, 10, map[string]string{"h": "1"}, s.Fence("dist", tok), queue.Handoff{})
	if err != nil || len(moved) != 4 {
		t.Fatalf("moved %v (%v), want all 4", moved, err)
	}
	for _, m := range moved {
		switch {
		case m.MessageID == "bad" && m.Headers != nil:
			t.Errorf("the malformed row came back with headers %v, want nil", m.Headers)
		case m.MessageID != "bad" && m.Headers["h"] != "1":
			t.Errorf("%s: returned headers %v, want h=1 merged", m.MessageID, m.Headers)
		}
	}
	expectCount(t, dst, queue.Counts{Ready: 4})
}

// testMoveReadyFencedRowsWakesOtherHandle: the move that returns its rows
// wakes dst's receivers in other processes, as the counting move does.
func testMoveReadyFencedRowsWakesOtherHandle(t *testing.T, h *harness) {
	s := h.store(t)
	other := h.reopen(t, s)
	src := mustQueue(t, other, "inbox")
	enqueue(t, src, msg("moved", 0))
	tok := holdLock(t, other, "dist", "a", time.Hour)
	done := startWaiting(t, mustQueue(t, s, "wake"))
	sent := time.Now()
	moved, err := src.MoveReadyFencedRows(t.Context(), mustQueue(t, other, "wake"), 10, nil, other.Fence("dist", tok), queue.Handoff{})
	if err != nil || len(moved) != 1 {
		t.Fatalf("MoveReadyFencedRows = %v, %v; want 1 moved", moved, err)
	}
	expectWoken(t, done, sent, "moved-00000")
}
