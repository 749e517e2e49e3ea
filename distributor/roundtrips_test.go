package distributor_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrybus/ferry/distributor"
	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// TestRoundTripsPerMessage counts the statements the whole cluster sends
// (distributor moves and control traffic, worker receives and acks, idle
// polls) and the rows they write per distributed message, at
// DistributeSendCount 1, 5 and 10, with the inbox preloaded. Run with -v to
// read the figures (BENCHMARKS.md).
func TestRoundTripsPerMessage(t *testing.T) {
	const total = 1000
	for _, dialect := range testdb.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			perMsg := map[int]float64{}
			writesPerMsg := map[int]float64{}
			for _, sendCount := range []int{1, 5, 10} {
				conns := queue.NewConnections(map[string]string{"default": testdb.DSN(t, dialect)},
					queue.Options{AutoMigrate: true, Logger: quiet})
				defer conns.Close()
				sendJobs(t, conns, 0, total)
				store, err := conns.Store(context.Background(), "default")
				if err != nil {
					t.Fatal(err)
				}
				d := newDistributor(t, conns, distributor.Config{Distribute: true, DistributeSendCount: sendCount}, nil)
				var handled atomic.Int64
				work := func(context.Context, string, Job) error { handled.Add(1); return nil }
				before, writesBefore := store.RoundTrips(), store.RowWrites()
				for i := range 2 {
					startWorker(t, conns, fmt.Sprintf("w%d", i), workerOpts{threads: 4, interval: time.Second, work: work})
				}
				testkit.Eventually(t, 60*time.Second, "every job handled", func() bool { return handled.Load() == total })
				trips, writes := store.RoundTrips()-before, store.RowWrites()-writesBefore
				s := d.Stats()
				perMsg[sendCount] = float64(trips) / total
				writesPerMsg[sendCount] = float64(writes) / total
				t.Logf("%s distributeSendCount=%d: %.2f round trips and %.2f row writes per message in all (%d and %d for %d messages); distributor moves per message %.3f",
					dialect, sendCount, perMsg[sendCount], writesPerMsg[sendCount], trips, writes, total, float64(s.Moves)/total)
				// Preloaded, each availability takes a full batch: one move per sendCount messages.
				if maxMoves := int64(total/sendCount + 1); s.Moves > maxMoves {
					t.Errorf("sendCount %d: %d moves for %d messages, want at most %d", sendCount, s.Moves, total, maxMoves)
				}
				if s.Distributed != total {
					t.Errorf("distributed %d, want %d", s.Distributed, total)
				}
			}
			if perMsg[10] >= perMsg[1] {
				t.Errorf("batches of 10 cost %.2f round trips per message, no fewer than batches of 1 (%.2f)", perMsg[10], perMsg[1])
			}
			// The move leases what it hands over (queue.Handoff), so a
			// message costs its move, its ack and its share of the control
			// traffic: measured 2.68 on both stores (3.64 without the
			// handoff). That share is an INSERT, a lease and a DELETE per
			// availability until the control inbox is consumed destructively.
			if got := writesPerMsg[5]; got > maxRowWritesHandoff {
				t.Errorf("distributeSendCount 5: %.2f row writes per message, want at most %.2f", got, maxRowWritesHandoff)
			}
			if got := writesPerMsg[5]; controlInboxTaken && got > maxRowWritesPerMessage {
				t.Errorf("distributeSendCount 5: %.2f row writes per message, want at most %.2f (issue 12)", got, maxRowWritesPerMessage)
			}
		})
	}
}

// Row writes per distributed message of the whole cluster at
// DistributeSendCount 5: maxRowWritesPerMessage is issue 12's target, which
// needs both the handoff and the control inbox consumed destructively (an
// INSERT and a DELETE per availability: branch i12-take); until then
// (controlInboxTaken false) the handoff's own bound holds.
// TODO(merge of i12-take): set controlInboxTaken.
const (
	maxRowWritesPerMessage = 2.5
	maxRowWritesHandoff    = 2.8
	controlInboxTaken      = false
)
