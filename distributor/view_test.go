package distributor_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/ferrybus/ferry/distributor"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// The active distributor records itself and its workers (with their idle
// threads and queue depths), a standby records itself as standby, and a
// distributor that stops removes its record.
func TestDistributorRecordsItsView(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		store, err := conns.Store(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		view := func() queue.DistributorView {
			t.Helper()
			v, err := store.DistributorView(ctx, controlURI)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		a := newDistributor(t, conns, distributor.Config{Name: "a", Distribute: true, ViewInterval: 100 * time.Millisecond}, nil)
		testkit.Eventually(t, 5*time.Second, "a active", a.Active)
		b := newDistributor(t, conns, distributor.Config{Name: "b", Distribute: true, ViewInterval: 100 * time.Millisecond}, nil)
		startWorker(t, conns, "w1", workerOpts{threads: 3, work: func(context.Context, string, Job) error { return nil }})

		var v queue.DistributorView
		testkit.Eventually(t, 10*time.Second, "both instances and w1 with 3 idle threads recorded", func() bool {
			v = view()
			return len(v.Instances) == 2 && v.Instances[0].Active && !v.Instances[1].Active &&
				len(v.Workers) == 1 && v.Workers[0].Idle == 3 && v.Workers[0].Threads == 3
		})
		act, sb := v.Instances[0], v.Instances[1]
		if act.Name != "a" || sb.Name != "b" {
			t.Errorf("active %q, standby %q; want a active, b standby", act.Name, sb.Name)
		}
		host, _ := os.Hostname()
		if act.PID != os.Getpid() || act.Host != host || act.Interval != 100*time.Millisecond || act.ReclaimAfter != time.Minute {
			t.Errorf("active instance %+v; want pid %d, host %q, interval 100ms, reclaimAfter 1m", act, os.Getpid(), host)
		}
		w := v.Workers[0]
		if w.ID != "w1" || w.Queue != "sql://default/worker-w1-work" || w.Depth != 0 || w.Stopping || w.Session == "" {
			t.Errorf("worker %+v; want w1 on sql://default/worker-w1-work, depth 0, not stopping", w)
		}
		if since := time.Since(w.LastSeen); since < 0 || since > time.Minute {
			t.Errorf("worker last seen %s ago", since)
		}

		// A standby that stops removes its record.
		if err := b.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if v := view(); len(v.Instances) != 1 || v.Instances[0].Name != "a" {
			t.Fatalf("instances after the standby stopped = %+v, want only a", v.Instances)
		}
	})
}

// A paused distributor inbox moves nothing to workers, however often the
// distribute loop looks; after the resume every job is handled once.
func TestDistributorPausedInboxMovesNothing(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		store, err := conns.Store(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		d := newDistributor(t, conns, distributor.Config{Distribute: true}, nil)
		got := newTally()
		startWorker(t, conns, "w1", workerOpts{threads: 2, work: func(ctx context.Context, id string, j Job) error { got.add(id, j.N); return nil }})
		sendJobs(t, conns, 0, 10)
		testkit.Eventually(t, 10*time.Second, "the first jobs handled", func() bool { return got.distinct() == 10 })

		if err := store.PauseQueue(ctx, "server-inbox-work"); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 10*time.Second, "the distributor seeing the pause", func() bool { return distributor.PausedPolls(d) > 0 })
		moved := d.Stats().Distributed
		sendJobs(t, conns, 10, 30)
		seen := distributor.PausedPolls(d)
		testkit.Eventually(t, 10*time.Second, "three more looks at the paused inbox", func() bool { return distributor.PausedPolls(d) >= seen+3 })
		if n := d.Stats().Distributed; n != moved {
			t.Fatalf("distributed %d messages while the inbox was paused", n-moved)
		}
		if c := testkit.Count(t, conns, inboxURI); c.Ready != 20 {
			t.Fatalf("paused inbox holds %+v, want 20 ready", c)
		}

		if err := store.ResumeQueue(ctx, "server-inbox-work"); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 10*time.Second, "every job handled after the resume", func() bool { return got.distinct() == 30 })
		byJob, _ := got.snapshot()
		for n, c := range byJob {
			if c != 1 {
				t.Errorf("job %d handled %d times", n, c)
			}
		}
	})
}

// A paused worker queue gets nothing moved into it; the inbox keeps the
// jobs until the queue is resumed.
func TestDistributorPausedWorkerQueueGetsNothing(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		store, err := conns.Store(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		d := newDistributor(t, conns, distributor.Config{Distribute: true}, nil)
		got := newTally()
		startWorker(t, conns, "w1", workerOpts{threads: 2, work: func(ctx context.Context, id string, j Job) error { got.add(id, j.N); return nil }})
		testkit.Eventually(t, 10*time.Second, "w1 available", func() bool { return d.Registry().Available["w1"] == 2 })
		if err := store.PauseQueue(ctx, "worker-w1-work"); err != nil {
			t.Fatal(err)
		}
		wq, err := conns.Queue(ctx, "sql://default/worker-w1-work")
		if err != nil {
			t.Fatal(err)
		}
		// The distributor's store (shared by conns) has read the pause.
		testkit.Eventually(t, 10*time.Second, "the pause read", wq.Paused)
		sendJobs(t, conns, 0, 10)
		seen := distributor.PausedPolls(d)
		testkit.Eventually(t, 10*time.Second, "three turns passed over the paused worker queue", func() bool { return distributor.PausedPolls(d) >= seen+3 })
		if n := d.Stats().Distributed; n != 0 {
			t.Fatalf("distributed %d messages to a paused worker queue", n)
		}
		if err := store.ResumeQueue(ctx, "worker-w1-work"); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 10*time.Second, "every job handled after the resume", func() bool { return got.distinct() == 10 })
	})
}
