package queue_test

import (
	"context"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
	"testing"
	"time"
)

// A row whose stored headers are not valid JSON (written by a producer
// other than ferry) does not stop a fenced move: every row moves, the good
// ones with the new headers, the malformed one with its headers untouched,
// byte for byte (the receiver parks it as a decode failure).
func TestFencedMoveWithMalformedHeaders(t *testing.T) {
	bulkForEach(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		s := bulkStore(t, dialect, "default")
		src, dst := bulkQueue(t, s, "src"), bulkQueue(t, s, "dst")
		bulkFill(t, src, 3)
		const raw = `{"ferry.correlation-id":"c-1","x":"y"`
		now := time.Now().UnixMicro()
		if _, err := s.DB().ExecContext(ctx, testkit.SQLX(s).Rebind(`INSERT INTO ferry_messages
 (queue, message_id, type, priority, visible_at, enqueued_at, headers, body) VALUES ('src', 'bad', 't', 0, ?, ?, ?, ?)`),
			now, now, raw, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		sess, err := s.OpenLockSession(ctx, "dist", "a")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sess.Close() })
		tok, err := s.AcquireLock(ctx, "dist", "a", time.Hour)
		if err != nil || tok == 0 {
			t.Fatalf("lock: %d, %v", tok, err)
		}
		n, err := src.MoveReadyFenced(ctx, dst, 10, map[string]string{"h": "1"}, s.Fence("dist", tok), queue.Handoff{})
		if err != nil || n != 4 {
			t.Fatalf("moved %d (%v), want all 4", n, err)
		}
		for _, d := range bulkPeekAll(t, dst) {
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
		bulkFill(t, src, 1)
		if n, err := src.MoveReadyFenced(ctx, dst, 10, nil, s.Fence("dist", tok-1), queue.Handoff{}); err != nil || n != 0 {
			t.Fatalf("stale fence moved %d (%v)", n, err)
		}
	})
}
