package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/queue"
)

// workersJSON runs `ferry workers --json` in dir.
func workersJSON(t *testing.T, dir string) []distributorView {
	t.Helper()
	out := mustFerry(t, dir, "workers", "--json", "-c", "config.json")
	var vs []distributorView
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		t.Fatalf("ferry workers --json: %v\n%s", err, out)
	}
	return vs
}

// TestWorkersCommand: `ferry workers` shows the running distributor as
// active and its worker with every thread idle, as a table and as JSON;
// --watch redraws until SIGINT; bad flags exit 2; queue ls lists the
// recorded worker's queue for the {id} pattern.
func TestWorkersCommand(t *testing.T) {
	for _, dialect := range testdb.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			dir := sendDir(t, dialect, nil)
			out := mustFerry(t, dir, "workers", "-c", "config.json")
			if !strings.Contains(out, "DISTRIBUTOR distributor") || !strings.Contains(out, "no instance recorded") {
				t.Errorf("ferry workers before any distributor ran:\n%s", out)
			}
			for _, args := range [][]string{{"--endpoint", "nope"}, {"--endpoint", "worker"}, {"--interval", "1s"}, {"--watch", "--interval", "1ms"}} {
				_, stderr, code := ferry(t, dir, nil, append([]string{"workers", "-c", "config.json"}, args...)...)
				if code != 2 || !strings.Contains(stderr, args[1]) && !strings.Contains(stderr, args[0]) {
					t.Errorf("ferry workers %v: exit %d, %q; want 2 naming the flag or value", args, code, stderr)
				}
			}

			dist := start(t, dir, "distributor", "run", "distributor", "-c", "config.json")
			w1 := start(t, dir, "w1", "run", "worker", "--id", "w1", "-c", "config.json")
			procs := []*proc{dist, w1}
			var last []distributorView
			waitFor(t, 30*time.Second, procs, func() bool {
				last = workersJSON(t, dir)
				if len(last) != 1 || len(last[0].Instances) != 1 || len(last[0].Workers) != 1 {
					return false
				}
				i, w := last[0].Instances[0], last[0].Workers[0]
				return i.State == "active" && w.ID == "w1" && w.Idle == 4 && w.Threads == 4 && w.State == "ok" && w.Depth == 0
			}, func() string { return fmt.Sprintf("the active distributor and w1 with 4 of 4 threads idle: %+v", last) })
			if i := last[0].Instances[0]; i.PID != dist.cmd.Process.Pid || i.Name != "distributor" {
				t.Errorf("instance %+v, want the distributor's pid %d", i, dist.cmd.Process.Pid)
			}
			out = mustFerry(t, dir, "workers", "-c", "config.json")
			for _, want := range []string{"active", "w1", "4/4", "ok", "sql://default/worker-w1-work", "IDLE/THREADS"} {
				if !strings.Contains(out, want) {
					t.Errorf("ferry workers lacks %q:\n%s", want, out)
				}
			}

			// The recorded worker's queue stands for the {id} pattern.
			rows := queues(t, dir, "config.json")
			var found bool
			for _, r := range rows {
				if r.URI == "sql://default/worker-w1-work" {
					found = strings.Join(r.Roles, ",") == "worker.inbox"
				}
				if r.Pattern {
					t.Errorf("queue ls shows the pattern %s although w1 is recorded", r.URI)
				}
			}
			if !found {
				t.Errorf("queue ls lacks sql://default/worker-w1-work as worker.inbox: %+v", rows)
			}

			// --watch redraws until SIGINT, then exits 0.
			watch := start(t, dir, "watch", "workers", "--watch", "--interval", "100ms", "--json", "-c", "config.json")
			waitFor(t, 20*time.Second, nil, func() bool {
				b, _ := os.ReadFile(watch.log)
				return strings.Count(string(b), "\n") >= 3
			}, func() string { return "three redraws of ferry workers --watch" })
			_ = watch.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-watch.done:
			case <-time.After(10 * time.Second):
				t.Fatal("ferry workers --watch did not end on SIGINT")
			}
			if code := watch.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("ferry workers --watch exit %d after SIGINT, want 0", code)
			}

			// A distributor that stops removes its instance.
			if code := w1.stop(20 * time.Second); code != 0 {
				t.Errorf("worker exit %d", code)
			}
			if code := dist.stop(20 * time.Second); code != 0 {
				t.Errorf("distributor exit %d", code)
			}
			if vs := workersJSON(t, dir); len(vs[0].Instances) != 0 {
				t.Errorf("instances after the distributor stopped: %+v", vs[0].Instances)
			}
		})
	}
}

// TestQueueLsAndPause: queue ls lists the configured queues though they
// are empty (a {id} queue as its pattern), with a total; pause and resume
// show in its PAUSED column and JSON; bad URIs exit 2.
func TestQueueLsAndPause(t *testing.T) {
	for _, dialect := range testdb.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			dir := sendDir(t, dialect, nil)
			lsJSON := func() queueList {
				t.Helper()
				var l queueList
				out := mustFerry(t, dir, "queue", "ls", "--json", "-c", "config.json")
				if err := json.Unmarshal([]byte(out), &l); err != nil {
					t.Fatalf("queue ls --json: %v\n%s", err, out)
				}
				return l
			}
			l := lsJSON()
			want := map[string]string{
				"sql://default/control-inbox-work": "distributor.controlInbox,worker.worker.distributorControlQueue",
				"sql://default/error":              "distributor.controlInbox.errorQueue,distributor.errorQueue,worker.errorQueue",
				"sql://default/server-inbox-work":  "distributor.inbox,route",
				"sql://default/worker-{id}-work":   "worker.inbox",
			}
			if len(l.Queues) != len(want) || l.Total.Queues != len(want) || l.Total.Ready != 0 || l.Total.Paused != 0 {
				t.Fatalf("queue ls of an empty database = %+v, want the %d configured queues", l, len(want))
			}
			for _, r := range l.Queues {
				if roles := strings.Join(r.Roles, ","); roles != want[r.URI] || r.Paused || r.Counts.Total() != 0 {
					t.Errorf("row %+v, want roles %q, empty, not paused", r, want[r.URI])
				}
				if r.Pattern != strings.Contains(r.URI, "{id}") {
					t.Errorf("row %s pattern = %v", r.URI, r.Pattern)
				}
			}

			mustFerry(t, dir, "send", "--type", "orders.placed", "--count", "3", "-c", "config.json")
			mustFerry(t, dir, "queue", "pause", "sql://default/server-inbox-work", "-c", "config.json")
			mustFerry(t, dir, "queue", "pause", "sql://default/elsewhere", "-c", "config.json")
			l = lsJSON()
			paused := map[string]bool{}
			for _, r := range l.Queues {
				paused[r.URI] = r.Paused
			}
			if !paused["sql://default/server-inbox-work"] || !paused["sql://default/elsewhere"] || l.Total.Paused != 2 || l.Total.Ready != 3 || l.Total.Queues != 5 {
				t.Fatalf("queue ls after two pauses = %+v, want both paused (one found only in the database), 3 ready, 5 queues", l)
			}
			out := mustFerry(t, dir, "queue", "ls", "-c", "config.json")
			for _, want := range []string{"PAUSED", "TOTAL (5 queues)", "2 paused", "sql://default/worker-{id}-work"} {
				if !strings.Contains(out, want) {
					t.Errorf("queue ls lacks %q:\n%s", want, out)
				}
			}
			mustFerry(t, dir, "queue", "resume", "sql://default/server-inbox-work", "-c", "config.json")
			if l := lsJSON(); l.Total.Paused != 1 {
				t.Errorf("paused after a resume = %d, want 1", l.Total.Paused)
			}
			for _, args := range [][]string{{"queue", "pause", "sql://nope/x"}, {"queue", "resume", "not a uri"}, {"queue", "pause"},
				{"queue", "pause", "sql://default/control-inbox-work"}} {
				_, stderr, code := ferry(t, dir, nil, append(args, "-c", "config.json")...)
				if code != 2 {
					t.Errorf("ferry %v: exit %d (%s), want 2", args, code, stderr)
				}
			}
		})
	}
}

// TestJudgeStates: a worker is ok, stopping, silent past reclaimAfter, or
// stale when the view is older than 3 intervals; an instance is active,
// standby or stale.
func TestJudgeStates(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	iv := 5 * time.Second
	v := queue.DistributorView{
		Instances: []queue.DistributorInstance{
			{Owner: "a", Active: true, Interval: iv, ReclaimAfter: time.Minute, Updated: now.Add(-time.Second)},
			{Owner: "b", Interval: iv, Updated: now.Add(-2 * time.Second)},
			{Owner: "c", Interval: iv, Updated: now.Add(-16 * time.Second)},
		},
		Workers: []queue.WorkerView{
			{ID: "ok", LastSeen: now.Add(-59 * time.Second), Updated: now.Add(-time.Second)},
			{ID: "stopping", Stopping: true, LastSeen: now, Updated: now},
			{ID: "silent", LastSeen: now.Add(-61 * time.Second), Updated: now},
			{ID: "stale", LastSeen: now, Updated: now.Add(-16 * time.Second)},
		},
	}
	dv := judge("d", "sql://x/ctl", v, now)
	for i, want := range []string{"active", "standby", "stale"} {
		if got := dv.Instances[i].State; got != want {
			t.Errorf("instance %s state %q, want %q", dv.Instances[i].Owner, got, want)
		}
	}
	for _, w := range dv.Workers {
		if w.State != w.ID {
			t.Errorf("worker %s state %q, want %q", w.ID, w.State, w.ID)
		}
	}
}
