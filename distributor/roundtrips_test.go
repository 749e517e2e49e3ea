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
// polls) per distributed message, at DistributeSendCount 1 and 10, with the
// inbox preloaded. Run with -v to read the figures (BENCHMARKS.md).
func TestRoundTripsPerMessage(t *testing.T) {
	const total = 1000
	for _, dialect := range testdb.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			perMsg := map[int]float64{}
			for _, sendCount := range []int{1, 10} {
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
				before := store.RoundTrips()
				for i := range 2 {
					startWorker(t, conns, fmt.Sprintf("w%d", i), workerOpts{threads: 4, interval: time.Second, work: work})
				}
				testkit.Eventually(t, 60*time.Second, "every job handled", func() bool { return handled.Load() == total })
				trips := store.RoundTrips() - before
				s := d.Stats()
				perMsg[sendCount] = float64(trips) / total
				t.Logf("%s distributeSendCount=%d: %.2f round trips per message in all (%d for %d messages); distributor moves per message %.3f",
					dialect, sendCount, perMsg[sendCount], trips, total, float64(s.Moves)/total)
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
		})
	}
}
