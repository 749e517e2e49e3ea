package distributor_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrybus/ferry/distributor"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

func TestWorkerAnnouncesNewThreadCount(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		d := newDistributor(t, conns, distributor.Config{Distribute: true}, nil)
		got := newTally()
		w := startWorker(t, conns, "w1", workerOpts{threads: 2, work: func(_ context.Context, id string, j Job) error {
			got.add(id, j.N)
			return nil
		}})
		idleThreads := func(want ...int) func() bool {
			return func() bool {
				r := d.Registry()
				th := slices.Clone(r.Threads["w1"])
				slices.Sort(th)
				return r.Sizes["w1"] == len(want) && slices.Equal(th, want)
			}
		}
		testkit.Eventually(t, 20*time.Second, "2 idle threads registered", idleThreads(0, 1))

		if err := w.SetThreads(5); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 20*time.Second, fmt.Sprintf("5 idle threads registered; registry %+v", d.Registry()), idleThreads(0, 1, 2, 3, 4))

		// Shrunk, the distributor drops the retired threads' availabilities
		// (before they would expire) and the worker repeats none of them.
		if err := w.SetThreads(1); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 20*time.Second, "1 idle thread registered", idleThreads(0))

		// Work flows to the one thread left, each job once.
		sendJobs(t, conns, 0, 50)
		testkit.Eventually(t, 30*time.Second, "50 jobs handled", func() bool { return got.distinct() == 50 })
		byJob, _ := got.snapshot()
		for n, c := range byJob {
			if c != 1 {
				t.Errorf("job %d handled %d times", n, c)
			}
		}
		testkit.Eventually(t, 20*time.Second, "1 idle thread registered after the work", idleThreads(0))
		if got := w.Endpoint().RunningThreads(); got != 1 {
			t.Errorf("%d threads running, want 1", got)
		}
	})
}

func TestSetDistributeSendCountSizesTheNextMove(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		d := newDistributor(t, conns, distributor.Config{Distribute: true, DistributeSendCount: 3}, nil)
		// The jobs wait before the worker comes: the first move finds them all.
		sendJobs(t, conns, 0, 40)
		gate := make(chan struct{})
		var handled atomic.Int32
		startWorker(t, conns, "w1", workerOpts{threads: 1, work: func(ctx context.Context, _ string, _ Job) error {
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
			handled.Add(1)
			return nil
		}})
		// One availability, three messages: the thread holds the first.
		testkit.Eventually(t, 20*time.Second, "a move of 3", func() bool { return d.Stats().Distributed == 3 })

		if err := d.SetDistributeSendCount(0); err == nil {
			t.Fatal("SetDistributeSendCount(0) accepted")
		}
		if err := d.SetDistributeSendCount(7); err != nil {
			t.Fatal(err)
		}
		if got := d.SendCount(); got != 7 {
			t.Fatalf("SendCount() = %d, want 7", got)
		}
		// The thread handles its three and asks again: the next move is 7
		// (3+3+… never makes 10).
		for range 3 {
			gate <- struct{}{}
		}
		testkit.Eventually(t, 20*time.Second, fmt.Sprintf("a move of 7 after the 3 (distributed %d)", d.Stats().Distributed), func() bool {
			return d.Stats().Distributed == 10
		})
		close(gate)
		testkit.Eventually(t, 30*time.Second, "40 handled", func() bool { return handled.Load() == 40 })
	})
}

func TestSetAvailabilityIntervalRenewsAtTheNewPace(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		d := newDistributor(t, conns, distributor.Config{Distribute: true}, nil)
		w := startWorker(t, conns, "w1", workerOpts{threads: 2, interval: time.Minute, work: func(context.Context, string, Job) error { return nil }})
		testkit.Eventually(t, 20*time.Second, "2 idle threads registered", func() bool { return d.Registry().Available["w1"] == 2 })
		if err := w.SetAvailabilityInterval(0); err == nil {
			t.Fatal("SetAvailabilityInterval(0) accepted")
		}
		before := d.Stats().Announcements
		if err := w.SetAvailabilityInterval(50 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		// At a minute each, 20 more renewals would take ten minutes.
		testkit.Eventually(t, 20*time.Second, "20 renewals at the new pace", func() bool {
			return d.Stats().Announcements >= before+20
		})
		if got := w.AvailabilityInterval(); got != 50*time.Millisecond {
			t.Errorf("AvailabilityInterval() = %s", got)
		}
	})
}
