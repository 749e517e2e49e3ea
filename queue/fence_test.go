package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// A lock changes hands: the old holder's fenced move moves nothing, the new
// holder's moves everything and keeps each message's delivery count.
func TestFencedMoveWithStaleTokenMovesNothing(t *testing.T) {
	bulkForEach(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		s := bulkStore(t, dialect, "default")
		src, dst := bulkQueue(t, s, "src"), bulkQueue(t, s, "dst")
		bulkFill(t, src, 4)
		// One delivery whose lease ends: its count must survive the moves.
		if ds, err := src.Receive(ctx, 1, time.Millisecond); err != nil || len(ds) != 1 {
			t.Fatalf("receive: %v, %d", err, len(ds))
		}
		testkit.Eventually(t, 20*time.Second, "the lease to end", func() bool {
			c, err := src.Count(ctx)
			return err == nil && c.Ready == 4
		})

		for _, owner := range []string{"a", "b"} {
			sess, err := s.OpenLockSession(ctx, "dist", owner)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sess.Close() })
		}
		old, err := s.AcquireLock(ctx, "dist", "a", time.Millisecond)
		if err != nil || old == 0 {
			t.Fatalf("a: token %d, %v", old, err)
		}
		testkit.Eventually(t, 20*time.Second, "a's lease to end", func() bool {
			var expires int64
			err := testkit.SQLX(s).GetContext(ctx, &expires, testkit.SQLX(s).Rebind(`SELECT expires_at FROM ferry_locks WHERE name = ?`), "dist")
			return err == nil && expires < time.Now().UnixMicro()
		})
		cur, err := s.AcquireLock(ctx, "dist", "b", time.Hour)
		if err != nil || cur <= old {
			t.Fatalf("b: token %d after %d, %v", cur, old, err)
		}
		if tok, err := s.AcquireLock(ctx, "dist", "a", time.Hour); err != nil || tok != 0 {
			t.Fatalf("a took a held lock: token %d, %v", tok, err)
		}

		n, err := src.MoveReadyFenced(ctx, dst, 10, map[string]string{"h": "1"}, s.Fence("dist", old), queue.Handoff{})
		if err != nil || n != 0 {
			t.Fatalf("stale fence moved %d (%v)", n, err)
		}
		if got := len(bulkPeekAll(t, dst)); got != 0 {
			t.Fatalf("stale fence: %d in dst", got)
		}
		n, err = src.MoveReadyFenced(ctx, dst, 10, map[string]string{"h": "1"}, s.Fence("dist", cur), queue.Handoff{})
		if err != nil || n != 4 {
			t.Fatalf("current fence moved %d (%v), want 4", n, err)
		}
		redelivered := 0
		for _, d := range bulkPeekAll(t, dst) {
			if d.Headers["h"] != "1" || d.LeaseToken != 0 {
				t.Errorf("%s: headers %v, lease %d", d.MessageID, d.Headers, d.LeaseToken)
			}
			if d.Attempts == 1 {
				redelivered++
			}
		}
		if redelivered != 1 {
			t.Fatalf("%d moved messages kept their delivery count, want 1", redelivered)
		}
	})
}

// Tokens keep growing across unlock, so a holder from before an unlock
// never matches again; a renewal keeps the token.
func TestLockTokenGrowsAcrossUnlock(t *testing.T) {
	bulkForEach(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		s := bulkStore(t, dialect, "default")
		for _, owner := range []string{"a", "b"} {
			sess, err := s.OpenLockSession(ctx, "l", owner)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sess.Close() })
		}
		t1, err := s.AcquireLock(ctx, "l", "a", time.Hour)
		if err != nil || t1 == 0 {
			t.Fatalf("acquire: %d, %v", t1, err)
		}
		if again, err := s.AcquireLock(ctx, "l", "a", time.Hour); err != nil || again != t1 {
			t.Fatalf("renewal: token %d, want %d (%v)", again, t1, err)
		}
		if err := s.Unlock(ctx, "l", "a"); err != nil {
			t.Fatal(err)
		}
		t2, err := s.AcquireLock(ctx, "l", "b", time.Hour)
		if err != nil || t2 <= t1 {
			t.Fatalf("after unlock: token %d, want above %d (%v)", t2, t1, err)
		}
	})
}

// On PostgreSQL a holder whose session ended (its process died) loses the
// lock at once, whatever its lease says.
func TestLockFreeWhenHolderSessionEnds(t *testing.T) {
	for _, dialect := range testdb.Dialects() {
		t.Run(dialect, func(t *testing.T) { testLockFreeWhenHolderSessionEnds(t, dialect) })
	}
}

func testLockFreeWhenHolderSessionEnds(t *testing.T, dialect string) {
	ctx := context.Background()
	s := bulkStore(t, dialect, "default")
	sess, err := s.OpenLockSession(ctx, "l", "a")
	if err != nil || sess == nil {
		t.Fatalf("session: %v, %v", sess, err)
	}
	t1, err := s.AcquireLock(ctx, "l", "a", time.Hour)
	if err != nil || t1 == 0 {
		t.Fatalf("acquire: %d, %v", t1, err)
	}
	bs, err := s.OpenLockSession(ctx, "l", "b")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	if tok, err := s.AcquireLock(ctx, "l", "b", time.Hour); err != nil || tok != 0 {
		t.Fatalf("b took a live holder's lock: %d, %v", tok, err)
	}
	if err := sess.Close(); err != nil {
		t.Fatal(err)
	}
	var t2 int64
	testkit.Eventually(t, 20*time.Second, "b to take the dead holder's lock", func() bool {
		t2, err = s.AcquireLock(ctx, "l", "b", time.Hour)
		return err == nil && t2 != 0
	})
	if t2 <= t1 {
		t.Fatalf("token %d after %d", t2, t1)
	}
}
