package queue_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/queue"
)

// TestPriorityRange: both stores accept the ends of the priority range and
// refuse what lies beyond with the same ErrPriority, storing nothing of the
// call (PostgreSQL used to answer with its driver's "out of range for type
// integer", SQLite stored the value).
func TestPriorityRange(t *testing.T) {
	for _, dialect := range testdb.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := bulkStore(t, dialect, "default")
			q := bulkQueue(t, s, "prio")
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
				for _, want := range []string{strconv.Itoa(p), "bad", "sql://default/prio"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("priority %d: error %q does not name %q", p, err, want)
					}
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
			c, err := q.Count(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if c.Ready != 2 {
				t.Errorf("ready = %d, want 2 (the two in range; nothing of a refused call)", c.Ready)
			}
		})
	}
}
