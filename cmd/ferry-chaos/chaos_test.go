package main

import (
	"context"
	"log/slog"
	"os"
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
