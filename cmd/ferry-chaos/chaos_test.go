package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestChaosShort runs the short version of every scenario against the ferry
// binary built from this module: SQLite always, the PostgreSQL scenarios on
// a throwaway cluster (root and pg_createcluster needed; required when
// FERRY_REQUIRE_POSTGRES=1, skipped otherwise). It asserts what the suite
// promises — nothing lost, every duplicate explained by a kill -9, every
// scenario drained without errors — and only logs the timings.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos suite takes minutes; skipped with -short")
	}
	var o options
	o.defaults(true)
	o.source = "../.."
	o.requirePG = os.Getenv("FERRY_REQUIRE_POSTGRES") == "1"
	o.log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	results, skipped, err := runSuite(ctx, &o)
	var table strings.Builder
	printTable(&table, results)
	t.Logf("chaos results:\n%s", table.String())
	for _, s := range skipped {
		t.Logf("skipped: %s", s)
	}
	if err != nil {
		t.Fatalf("chaos suite: %v", err)
	}
	want := 0
	for _, s := range scenarios() {
		if !s.pgOnly {
			want++ // the SQLite variant
		}
		if len(skipped) == 0 {
			want++
		}
	}
	if len(results) != want {
		t.Errorf("%d scenario runs, want %d", len(results), want)
	}
	for _, r := range results {
		name := r.Scenario + "/" + r.Store
		if r.Err != nil {
			t.Errorf("%s: %v", name, r.Err)
		}
		if r.Messages == 0 {
			t.Errorf("%s: no message was sent", name)
		}
		if r.Lost != 0 {
			t.Errorf("%s: %d messages lost", name, r.Lost)
		}
		if !r.Drained || r.Stuck != 0 {
			t.Errorf("%s: not drained: %d messages still in a queue", name, r.Stuck)
		}
		if r.Unexplained != 0 {
			t.Errorf("%s: %d duplicates not explained by a kill -9", name, r.Unexplained)
		}
	}
}

// testWriter sends the suite's progress log to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestChaosCountsLoss checks that the suite's accounting can fail: a fault
// that deletes unhandled messages behind ferry's back must show as lost.
func TestChaosCountsLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ferry processes; skipped with -short")
	}
	var o options
	o.defaults(true)
	o.window = 6 * time.Second
	o.drainTimeout = 20 * time.Second
	o.log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	dir := t.TempDir()
	o.ferry = filepath.Join(dir, "ferry")
	build := exec.Command("go", "build", "-o", o.ferry, "./cmd/ferry")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	const deleted = 5
	sabotage := scenario{name: "sabotage", window: func(o *options) time.Duration { return o.window },
		rate: func(o *options) int { return o.rate },
		fault: func(ctx context.Context, e *env) (string, error) {
			// With the workers dead, messages wait unleased.
			for _, w := range []string{"w1", "w2"} {
				if err := e.kill9(w); err != nil {
					return "", err
				}
			}
			if err := sleep(ctx, 2*time.Second); err != nil {
				return "", err
			}
			db, err := sql.Open("sqlite3", "file:"+filepath.Join(e.dir, "ferry.db")+"?_busy_timeout=10000")
			if err != nil {
				return "", err
			}
			defer db.Close()
			res, err := db.ExecContext(ctx, `DELETE FROM ferry_messages WHERE id IN (SELECT id FROM ferry_messages
				WHERE lease_token = 0 AND CAST(body AS TEXT) LIKE '{"n":%' LIMIT ?)`, deleted)
			if err != nil {
				return "", err
			}
			if n, _ := res.RowsAffected(); n != deleted {
				return "", fmt.Errorf("deleted %d rows, want %d", n, deleted)
			}
			for _, w := range []string{"w1", "w2"} {
				if err := e.start(w, "worker", "--id", w); err != nil {
					return "", err
				}
			}
			return "", sleep(ctx, 2*time.Second)
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r := runScenario(ctx, &o, sabotage, "sqlite", nil, dir, "")
	if r.Lost != deleted {
		t.Errorf("lost = %d, want the %d deleted messages (result %+v)", r.Lost, deleted, r)
	}
	if r.Drained {
		t.Errorf("a scenario with lost messages counts as drained")
	}
}

// TestDuplicateClasses checks how an extra handling is explained.
func TestDuplicateClasses(t *testing.T) {
	t0 := time.Now()
	kills := []event{{proc: "w1", at: t0.Add(time.Second), dead: t0.Add(1100 * time.Millisecond)}}
	outages := [][2]time.Time{{t0.Add(10 * time.Second), t0.Add(20 * time.Second)}}
	cases := []struct {
		name          string
		h             handling
		killed, outed bool
	}{
		{"just before the kill", handling{worker: "w1", at: t0.Add(500 * time.Millisecond)}, true, false},
		{"recorded while the killed process died", handling{worker: "w1", at: t0.Add(1050 * time.Millisecond)}, true, false},
		{"long before the kill", handling{worker: "w1", at: t0.Add(-5 * time.Second)}, false, false},
		{"another worker", handling{worker: "w2", at: t0.Add(500 * time.Millisecond)}, false, false},
		{"after the kill", handling{worker: "w1", at: t0.Add(2 * time.Second)}, false, false},
		{"just before the outage", handling{worker: "w2", at: t0.Add(9 * time.Second)}, false, true},
		{"during the outage", handling{worker: "w2", at: t0.Add(15 * time.Second)}, false, true},
		{"after the outage", handling{worker: "w2", at: t0.Add(21 * time.Second)}, false, false},
	}
	for _, c := range cases {
		if got := killedAfter(kills, c.h); got != c.killed {
			t.Errorf("%s: killedAfter = %v, want %v", c.name, got, c.killed)
		}
		if got := inOutage(outages, c.h); got != c.outed {
			t.Errorf("%s: inOutage = %v, want %v", c.name, got, c.outed)
		}
	}
}
