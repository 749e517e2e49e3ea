package queuetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ferrybus/ferry/queue"
)

// testLockAcquireRenewContend: a free lock is taken with a token; its
// holder renews it with the same token; another owner gets 0 while it is
// held; locks of other names are independent.
func testLockAcquireRenewContend(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	t1 := holdAndRenew(t, s, "l")
	if tok, err := s.AcquireLock(ctx, "l", "b", time.Hour); err != nil || tok != 0 {
		t.Fatalf("b took a held lock: token %d, %v", tok, err)
	}
	if again, err := s.AcquireLock(ctx, "l", "a", time.Hour); err != nil || again != t1 {
		t.Fatalf("second renewal: token %d, want %d (%v)", again, t1, err)
	}
	other := holdLock(t, s, "other", "b", time.Hour)
	if other == 0 {
		t.Fatal("a lock of another name was not free")
	}
	// Unlock by an owner that does not hold it changes nothing.
	if err := s.Unlock(ctx, "l", "b"); err != nil {
		t.Fatalf("Unlock by a non-holder: %v", err)
	}
	if tok, err := s.AcquireLock(ctx, "l", "b", time.Hour); err != nil || tok != 0 {
		t.Fatalf("b took the lock after its own no-op Unlock: token %d, %v", tok, err)
	}
	expectHeld(t, s.Fence("l", t1), true, "a's fence after b's no-op Unlock")
}

// testLockExpiry: a lock whose lease ended is free for another owner, with
// a greater token; the former holder then cannot take it back.
func testLockExpiry(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	takeExpiredLock(t, s, "l")
	if tok, err := s.AcquireLock(ctx, "l", "a", time.Hour); err != nil || tok != 0 {
		t.Fatalf("a took a held lock back: token %d, %v", tok, err)
	}
}

// testLockTokenGrowsAcrossUnlock: tokens keep growing across unlock, so a
// holder from before an unlock never matches again; a renewal keeps the
// token.
func testLockTokenGrowsAcrossUnlock(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	t1 := holdAndRenew(t, s, "l")
	if err := s.Unlock(ctx, "l", "a"); err != nil {
		t.Fatal(err)
	}
	t2, err := s.AcquireLock(ctx, "l", "b", time.Hour)
	if err != nil || t2 <= t1 {
		t.Fatalf("after unlock: token %d, want above %d (%v)", t2, t1, err)
	}
	if err := s.Unlock(ctx, "l", "b"); err != nil {
		t.Fatal(err)
	}
	// The same owner again: still a new holding, a new token.
	t3, err := s.AcquireLock(ctx, "l", "b", time.Hour)
	if err != nil || t3 <= t2 {
		t.Fatalf("after a second unlock: token %d, want above %d (%v)", t3, t2, err)
	}
}

// testLockFence: a fence holds while its lock has its token, on every
// handle of the database, and not after the lock changed hands.
func testLockFence(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	other := h.reopen(t, s)
	expectHeld(t, s.Fence("l", 1), false, "fence of a lock never taken")
	openSession(t, s, "l", "b")
	tok := holdLock(t, s, "l", "a", time.Hour)
	expectHeld(t, s.Fence("l", tok), true, "fence of the holder")
	expectHeld(t, other.Fence("l", tok), true, "fence of the holder seen from another handle")
	expectHeld(t, s.Fence("l", tok-1), false, "fence with an older token")
	expectHeld(t, s.Fence("l2", tok), false, "fence of another lock name")
	// Unlock keeps the token (tokens grow across holders): the fence ends
	// when another owner takes the lock.
	if err := s.Unlock(ctx, "l", "a"); err != nil {
		t.Fatal(err)
	}
	cur, err := s.AcquireLock(ctx, "l", "b", time.Hour)
	if err != nil || cur <= tok {
		t.Fatalf("b after Unlock: token %d, %v; want above %d", cur, err, tok)
	}
	expectHeld(t, s.Fence("l", tok), false, "fence after the lock changed hands")
	expectHeld(t, s.Fence("l", cur), true, "fence of the new holder")
}

// testLockSessionAlive: an open session is alive, an owner has one live
// session at a time (with SessionLocks), and once it closed its owner can
// open a new one.
func testLockSessionAlive(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	sess := openSession(t, s, "l", "a")
	if err := sess.Alive(ctx); err != nil {
		t.Fatalf("Alive of an open session: %v", err)
	}
	if h.d.Features.Has(SessionLocks) {
		// One live session per owner: a second would outlive the first.
		if dup, err := s.OpenLockSession(ctx, "l", "a"); err == nil {
			dup.Close()
			t.Fatal("a second OpenLockSession of a live owner succeeded")
		}
	}
	if tok, err := s.AcquireLock(ctx, "l", "a", time.Hour); err != nil || tok == 0 {
		t.Fatalf("AcquireLock = %d, %v; want a token", tok, err)
	}
	if err := sess.Alive(ctx); err != nil {
		t.Fatalf("Alive of a holder's session: %v", err)
	}
	if err := sess.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// A new session of the same owner can be opened after the old closed.
	next := openSession(t, s, "l", "a")
	if err := next.Alive(ctx); err != nil {
		t.Fatalf("Alive of a reopened session: %v", err)
	}
}

// testLockFreeWhenSessionCloses: a holder whose session ended (its process
// died) loses the lock at once, whatever its lease says.
func testLockFreeWhenSessionCloses(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	sess, err := s.OpenLockSession(ctx, "l", "a")
	if err != nil || sess == nil {
		t.Fatalf("session: %v, %v", sess, err)
	}
	t.Cleanup(func() { sess.Close() })
	t1, err := s.AcquireLock(ctx, "l", "a", time.Hour)
	if err != nil || t1 == 0 {
		t.Fatalf("acquire: %d, %v", t1, err)
	}
	openSession(t, s, "l", "b")
	if tok, err := s.AcquireLock(ctx, "l", "b", time.Hour); err != nil || tok != 0 {
		t.Fatalf("b took a live holder's lock: %d, %v", tok, err)
	}
	if err := sess.Close(); err != nil {
		t.Fatal(err)
	}
	var t2 int64
	eventually(t, "b to take the dead holder's lock", func() bool {
		t2, err = s.AcquireLock(ctx, "l", "b", time.Hour)
		return err == nil && t2 != 0
	})
	if t2 <= t1 {
		t.Fatalf("token %d after %d", t2, t1)
	}
}

// testLockContendedConcurrently: of several owners taking a free lock at
// once, from handles of their own, exactly one gets a token.
func testLockContendedConcurrently(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	const owners = 6
	stores := make([]queue.Store, owners)
	for i := range stores {
		stores[i] = h.reopen(t, s)
		openSession(t, stores[i], "l", fmt.Sprintf("owner-%d", i))
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		holders []string
	)
	for i, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("owner-%d", i)
			tok, err := st.AcquireLock(ctx, "l", owner, time.Hour)
			if err != nil {
				t.Errorf("%s: AcquireLock: %v", owner, err)
				return
			}
			if tok != 0 {
				mu.Lock()
				holders = append(holders, owner)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(holders) != 1 {
		t.Fatalf("holders %v of a lock taken at once by %d owners, want exactly one", holders, owners)
	}
}
