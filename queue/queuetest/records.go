package queuetest

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ferrybus/ferry/queue"
)

// testHandledRecords: ClaimHandledTx records a message as handled once per
// endpoint (true the first time, false after), MarkHandledTx records it
// without asking, and Handled sees what committed.
func testHandledRecords(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	handled := func(endpoint, id string) bool {
		t.Helper()
		ok, err := s.Handled(ctx, endpoint, id)
		if err != nil {
			t.Fatalf("Handled(%s, %s): %v", endpoint, id, err)
		}
		return ok
	}
	claim := func(endpoint, id string) bool {
		t.Helper()
		tx, err := s.DB().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		first, err := s.ClaimHandledTx(ctx, tx, endpoint, id)
		if err != nil {
			t.Fatalf("ClaimHandledTx(%s, %s): %v", endpoint, id, err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		return first
	}
	if handled("orders", "m-1") {
		t.Fatal("Handled of a message never handled = true")
	}
	if !claim("orders", "m-1") {
		t.Fatal("first ClaimHandledTx = false, want true")
	}
	if !handled("orders", "m-1") {
		t.Fatal("Handled after a committed claim = false")
	}
	if claim("orders", "m-1") {
		t.Fatal("second ClaimHandledTx of one message = true, want false (a duplicate)")
	}
	// Records are per endpoint and per message.
	if handled("billing", "m-1") || handled("orders", "m-2") {
		t.Fatal("a record of orders/m-1 counted for another endpoint or message")
	}
	if !claim("billing", "m-1") {
		t.Fatal("ClaimHandledTx by another endpoint = false, want true")
	}

	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := s.MarkHandledTx(ctx, tx, "orders", "m-3"); err != nil {
		t.Fatalf("MarkHandledTx: %v", err)
	}
	if err := s.MarkHandledTx(ctx, tx, "orders", "m-1"); err != nil {
		t.Fatalf("MarkHandledTx of a message handled before: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if !handled("orders", "m-3") {
		t.Fatal("Handled after MarkHandledTx = false")
	}
	if claim("orders", "m-3") {
		t.Fatal("ClaimHandledTx after MarkHandledTx = true, want false")
	}
}

// testClaimHandledRollback: a claim whose transaction rolls back leaves no
// record, so the message can be claimed again.
func testClaimHandledRollback(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if first, err := s.ClaimHandledTx(ctx, tx, "orders", "m-1"); err != nil || !first {
		t.Fatalf("ClaimHandledTx = %v, %v; want true", first, err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Handled(ctx, "orders", "m-1"); err != nil || ok {
		t.Fatalf("Handled after a rolled back claim = %v, %v; want false", ok, err)
	}
	tx, err = s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if first, err := s.ClaimHandledTx(ctx, tx, "orders", "m-1"); err != nil || !first {
		t.Fatalf("ClaimHandledTx after a rollback = %v, %v; want true", first, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// testForgetHandled: ForgetHandled deletes the records made before a time
// and reports how many; later ones stay.
func testForgetHandled(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	mark := func(id string) {
		t.Helper()
		tx, err := s.DB().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if err := s.MarkHandledTx(ctx, tx, "orders", id); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.ForgetHandled(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("ForgetHandled with no records = %d, %v; want 0", n, err)
	}
	mark("old-1")
	mark("old-2")
	// A fixed wait is the point: the records before and after the cut must
	// have different times.
	time.Sleep(20 * time.Millisecond)
	cut := time.Now()
	time.Sleep(20 * time.Millisecond)
	mark("new-1")
	n, err := s.ForgetHandled(ctx, cut)
	if err != nil || n != 2 {
		t.Fatalf("ForgetHandled = %d, %v; want 2", n, err)
	}
	for id, want := range map[string]bool{"old-1": false, "old-2": false, "new-1": true} {
		if ok, err := s.Handled(ctx, "orders", id); err != nil || ok != want {
			t.Errorf("Handled(%s) after ForgetHandled = %v, %v; want %v", id, ok, err, want)
		}
	}
	if n, err := s.ForgetHandled(ctx, cut); err != nil || n != 0 {
		t.Fatalf("second ForgetHandled = %d, %v; want 0", n, err)
	}
}

// testSubscriptions: Subscribe adds a queue URI to message types (twice is
// a no-op), Unsubscribe removes it, Subscriptions lists them by type, and
// the records are shared by every handle on the database.
func testSubscriptions(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	subs := func(st queue.Store) map[string][]string {
		t.Helper()
		m, err := st.Subscriptions(ctx)
		if err != nil {
			t.Fatalf("Subscriptions: %v", err)
		}
		for _, uris := range m {
			slices.Sort(uris)
		}
		return m
	}
	if got := subs(s); len(got) != 0 {
		t.Fatalf("Subscriptions of a fresh store = %v, want none", got)
	}
	const a, b = "sql://test/billing", "sql://test/shipping"
	if err := s.Subscribe(ctx, a, "orders.placed", "orders.cancelled"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := s.Subscribe(ctx, b, "orders.placed"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := s.Subscribe(ctx, a, "orders.placed"); err != nil {
		t.Fatalf("Subscribe twice: %v", err)
	}
	want := map[string][]string{
		"orders.placed":    {a, b},
		"orders.cancelled": {a},
	}
	if got := subs(s); !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("Subscriptions = %v, want %v", got, want)
	}
	if got := subs(h.reopen(t, s)); !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("Subscriptions from another handle = %v, want %v", got, want)
	}
	if err := s.Subscribe(ctx, a, ""); err == nil {
		t.Error("Subscribe to an empty message type: no error")
	}
	if err := s.Subscribe(ctx, "not a uri", "orders.placed"); err == nil {
		t.Error("Subscribe of an invalid queue URI: no error")
	}

	if err := s.Unsubscribe(ctx, a, "orders.placed", "orders.cancelled"); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	if err := s.Unsubscribe(ctx, a, "never.subscribed"); err != nil {
		t.Fatalf("Unsubscribe of a type never subscribed: %v", err)
	}
	want = map[string][]string{"orders.placed": {b}}
	if got := subs(s); !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("Subscriptions after Unsubscribe = %v, want %v", got, want)
	}
}

// testWorkerRecords: RecordWorker stores a worker session per control
// queue and worker id; a newer session replaces an older one, never the
// reverse; Workers lists them by worker id; ForgetWorker deletes a record
// only while it still holds the given session.
func testWorkerRecords(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	workers := func(control string) []queue.WorkerRecord {
		t.Helper()
		ws, err := s.Workers(ctx, control)
		if err != nil {
			t.Fatalf("Workers(%s): %v", control, err)
		}
		return ws
	}
	record := func(control string, w queue.WorkerRecord) {
		t.Helper()
		if err := s.RecordWorker(ctx, control, w); err != nil {
			t.Fatalf("RecordWorker(%s, %s/%s): %v", control, w.ID, w.Session, err)
		}
	}
	check := func(got []queue.WorkerRecord, want ...queue.WorkerRecord) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("Workers = %+v, want %+v", got, want)
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.ID != w.ID || g.Session != w.Session || g.Inbox != w.Inbox || !g.LastSeen.Equal(w.LastSeen) {
				t.Fatalf("Workers[%d] = %s/%s inbox %s seen %s, want %s/%s inbox %s seen %s",
					i, g.ID, g.Session, g.Inbox, g.LastSeen, w.ID, w.Session, w.Inbox, w.LastSeen)
			}
		}
	}
	if ws := workers("dist.control"); len(ws) != 0 {
		t.Fatalf("Workers of a fresh store = %+v, want none", ws)
	}
	seen := time.Now().Truncate(time.Microsecond)
	w2 := queue.WorkerRecord{ID: "w-2", Session: "0002", Inbox: "sql://test/w-2", LastSeen: seen}
	w1 := queue.WorkerRecord{ID: "w-1", Session: "0005", Inbox: "sql://test/w-1", LastSeen: seen}
	record("dist.control", w2)
	record("dist.control", w1)
	record("other.control", queue.WorkerRecord{ID: "w-1", Session: "0001", Inbox: "sql://test/x", LastSeen: seen})
	check(workers("dist.control"), w1, w2)

	// The same session refreshes; a newer one replaces; an older one does not.
	w1.LastSeen = seen.Add(time.Second)
	record("dist.control", w1)
	check(workers("dist.control"), w1, w2)
	newer := queue.WorkerRecord{ID: "w-1", Session: "0007", Inbox: "sql://test/w-1b", LastSeen: seen.Add(2 * time.Second)}
	record("dist.control", newer)
	record("dist.control", queue.WorkerRecord{ID: "w-1", Session: "0006", Inbox: "sql://test/stale", LastSeen: seen.Add(3 * time.Second)})
	check(workers("dist.control"), newer, w2)

	// ForgetWorker of a session the record no longer holds keeps it.
	if err := s.ForgetWorker(ctx, "dist.control", "w-1", "0005"); err != nil {
		t.Fatalf("ForgetWorker: %v", err)
	}
	check(workers("dist.control"), newer, w2)
	if err := s.ForgetWorker(ctx, "dist.control", "w-1", "0007"); err != nil {
		t.Fatalf("ForgetWorker: %v", err)
	}
	check(workers("dist.control"), w2)
	if ws := workers("other.control"); len(ws) != 1 || ws[0].Session != "0001" {
		t.Fatalf("Workers of another control queue = %+v, want w-1/0001 kept", ws)
	}
}

// testClaimHandledConcurrently: of several transactions claiming one
// message at once, exactly one gets true once it commits.
func testClaimHandledConcurrently(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	const claimers = 8
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		firsts int
	)
	for i := range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tx, err := s.DB().BeginTx(ctx, nil)
			if err != nil {
				t.Errorf("claimer %d: begin: %v", i, err)
				return
			}
			defer tx.Rollback()
			first, err := s.ClaimHandledTx(ctx, tx, "orders", "m-1")
			if err != nil {
				t.Errorf("claimer %d: ClaimHandledTx: %v", i, err)
				return
			}
			if err := tx.Commit(); err != nil {
				t.Errorf("claimer %d: commit: %v", i, err)
				return
			}
			if first {
				mu.Lock()
				firsts++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firsts != 1 {
		t.Fatalf("%d of %d concurrent claims of one message got true, want exactly 1", firsts, claimers)
	}
}

// testForgetHandledBatched: ForgetHandled deletes more records than one
// statement's batch, all of them.
func testForgetHandledBatched(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	const n = 2*queue.DefaultBatchSize + 7
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for i := range n {
		if err := s.MarkHandledTx(ctx, tx, "batched", fmt.Sprintf("m-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	marked := time.Now()
	eventually(t, "the clock past the records", func() bool { return time.Since(marked) > time.Millisecond })
	if got, err := s.ForgetHandled(ctx, time.Now()); err != nil || got != n {
		t.Fatalf("ForgetHandled = %d, %v; want %d", got, err, n)
	}
	if ok, err := s.Handled(ctx, "batched", fmt.Sprintf("m-%d", n-1)); err != nil || ok {
		t.Fatalf("Handled after ForgetHandled = %v, %v; want false", ok, err)
	}
}
