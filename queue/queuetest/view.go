package queuetest

import (
	"slices"
	"testing"
	"time"

	"github.com/ferrybus/ferry/queue"
)

// The distributor's view (DistributorViews) and paused queues (Pauses).

// testDistributorView: instances are recorded per control queue (refreshed
// in place, pruned when old, forgotten on request, the active one first),
// and RecordWorkerView replaces the worker sessions of its control queue
// whole, leaving other control queues alone.
func testDistributorView(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	view := func(control string) queue.DistributorView {
		t.Helper()
		v, err := s.DistributorView(ctx, control)
		if err != nil {
			t.Fatalf("DistributorView(%s): %v", control, err)
		}
		return v
	}
	owners := func(v queue.DistributorView) []string {
		var out []string
		for _, i := range v.Instances {
			out = append(out, i.Owner)
		}
		return out
	}
	if v := view("sql://test/ctl"); len(v.Instances) != 0 || len(v.Workers) != 0 {
		t.Fatalf("DistributorView of a fresh store = %+v, want empty", v)
	}
	now := time.Now().Truncate(time.Microsecond)
	standby := queue.DistributorInstance{ControlQueue: "sql://test/ctl", Owner: "a-standby", Name: "dist", Host: "h1", PID: 11,
		Interval: 5 * time.Second, ReclaimAfter: time.Minute, Updated: now}
	active := standby
	active.Owner, active.Active, active.Host, active.PID = "b-active", true, "h2", 22
	other := standby
	other.ControlQueue, other.Owner = "sql://test/other", "c-other"
	for _, i := range []queue.DistributorInstance{standby, active, other} {
		if err := s.RecordDistributor(ctx, i, now.Add(-time.Hour)); err != nil {
			t.Fatalf("RecordDistributor(%s): %v", i.Owner, err)
		}
	}
	v := view("sql://test/ctl")
	if got := owners(v); !slices.Equal(got, []string{"b-active", "a-standby"}) {
		t.Fatalf("instances = %v, want the active one first: [b-active a-standby]", got)
	}
	if g := v.Instances[0]; g != active {
		t.Fatalf("active instance = %+v, want %+v", g, active)
	}
	if g := v.Instances[1]; g != standby {
		t.Fatalf("standby instance = %+v, want %+v", g, standby)
	}

	// A refresh updates in place; one recorded later prunes the old ones
	// of its control queue only.
	active.Updated = now.Add(10 * time.Second)
	if err := s.RecordDistributor(ctx, active, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if v := view("sql://test/ctl"); len(v.Instances) != 1 || v.Instances[0] != active {
		t.Fatalf("instances after a refresh pruning before %s = %+v, want only %+v", now.Add(time.Second), v.Instances, active)
	}
	if got := owners(view("sql://test/other")); !slices.Equal(got, []string{"c-other"}) {
		t.Fatalf("instances of another control queue = %v, want [c-other] kept", got)
	}
	if err := s.ForgetDistributor(ctx, "sql://test/ctl", "b-active"); err != nil {
		t.Fatal(err)
	}
	if v := view("sql://test/ctl"); len(v.Instances) != 0 {
		t.Fatalf("instances after ForgetDistributor = %+v, want none", v.Instances)
	}

	w1 := queue.WorkerView{ID: "w1", Session: "s1", Queue: "sql://test/worker-w1", Threads: 8, Idle: 3,
		LastSeen: now.Add(-time.Second), Depth: 12, Updated: now}
	w2 := queue.WorkerView{ID: "w2", Session: "s2", Queue: "sql://test/worker-w2", Threads: 4, Idle: 0,
		LastSeen: now.Add(-2 * time.Second), Depth: -1, Stopping: true, Updated: now}
	if err := s.RecordWorkerView(ctx, "sql://test/ctl", now, []queue.WorkerView{w2, w1}); err != nil {
		t.Fatalf("RecordWorkerView: %v", err)
	}
	if err := s.RecordWorkerView(ctx, "sql://test/other", now, []queue.WorkerView{w1}); err != nil {
		t.Fatalf("RecordWorkerView: %v", err)
	}
	if got := view("sql://test/ctl").Workers; !slices.Equal(got, []queue.WorkerView{w1, w2}) {
		t.Fatalf("workers = %+v, want %+v by id", got, []queue.WorkerView{w1, w2})
	}
	later := now.Add(5 * time.Second)
	w1b := w1
	w1b.Idle, w1b.Depth, w1b.Updated = 8, 0, later
	if err := s.RecordWorkerView(ctx, "sql://test/ctl", later, []queue.WorkerView{w1b}); err != nil {
		t.Fatal(err)
	}
	if got := view("sql://test/ctl").Workers; !slices.Equal(got, []queue.WorkerView{w1b}) {
		t.Fatalf("workers after a replacing record = %+v, want only %+v (w2 gone)", got, w1b)
	}
	if err := s.RecordWorkerView(ctx, "sql://test/ctl", later, nil); err != nil {
		t.Fatal(err)
	}
	if got := view("sql://test/ctl").Workers; len(got) != 0 {
		t.Fatalf("workers after recording none = %+v, want none", got)
	}
	if got := view("sql://test/other").Workers; len(got) != 1 || got[0].ID != "w1" {
		t.Fatalf("workers of another control queue = %+v, want w1 kept", got)
	}
}

// testPauseQueue: PauseQueue and ResumeQueue change Paused at once, for
// this handle and another; Queue.Paused follows within a few polls; a
// second pause keeps the first time; bad names are refused.
func testPauseQueue(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	other := h.reopen(t, s)
	names := func(st queue.Store) []string {
		t.Helper()
		ps, err := st.Paused(ctx)
		if err != nil {
			t.Fatalf("Paused: %v", err)
		}
		var out []string
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	q := mustQueue(t, s, "pause-a")
	qb := mustQueue(t, s, "pause-b")
	seen := mustQueue(t, other, "pause-a")
	if q.Paused() || seen.Paused() || len(names(s)) != 0 {
		t.Fatal("a queue of a fresh store is paused")
	}
	before := time.Now().Add(-time.Second)
	if err := s.PauseQueue(ctx, "pause-a"); err != nil {
		t.Fatalf("PauseQueue: %v", err)
	}
	if got := names(other); !slices.Equal(got, []string{"pause-a"}) {
		t.Fatalf("Paused from another handle = %v, want [pause-a]", got)
	}
	ps, _ := s.Paused(ctx)
	since := ps[0].Since
	if since.Before(before) || since.After(time.Now().Add(time.Second)) {
		t.Fatalf("Paused since %s, want about now", since)
	}
	eventually(t, "Queue.Paused on both handles after PauseQueue", func() bool { return q.Paused() && seen.Paused() })
	if qb.Paused() {
		t.Fatal("another queue of the store counts as paused")
	}
	if err := s.PauseQueue(ctx, "pause-a"); err != nil {
		t.Fatalf("second PauseQueue: %v", err)
	}
	if ps, _ := s.Paused(ctx); len(ps) != 1 || !ps[0].Since.Equal(since) {
		t.Fatalf("Paused after a second pause = %+v, want one, since %s", ps, since)
	}
	if err := s.PauseQueue(ctx, "pause-b"); err != nil {
		t.Fatal(err)
	}
	if got := names(s); !slices.Equal(got, []string{"pause-a", "pause-b"}) {
		t.Fatalf("Paused = %v, want [pause-a pause-b]", got)
	}
	if err := other.ResumeQueue(ctx, "pause-a"); err != nil {
		t.Fatalf("ResumeQueue: %v", err)
	}
	if err := other.ResumeQueue(ctx, "never-paused"); err != nil {
		t.Fatalf("ResumeQueue of a queue not paused: %v", err)
	}
	if got := names(s); !slices.Equal(got, []string{"pause-b"}) {
		t.Fatalf("Paused after ResumeQueue = %v, want [pause-b]", got)
	}
	eventually(t, "Queue.Paused false on both handles after ResumeQueue", func() bool { return !q.Paused() && !seen.Paused() })
	if !qb.Paused() {
		t.Fatal("resuming pause-a resumed pause-b")
	}
	for _, bad := range []string{"", "Bad Name"} {
		if err := s.PauseQueue(ctx, bad); err == nil {
			t.Fatalf("PauseQueue(%q) succeeded, want a name error", bad)
		}
	}
}
