package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferrybus/ferry/internal/testdb"
)

// TestBench runs every mode of `ferry bench` briefly on both stores and
// checks what it reports.
func TestBench(t *testing.T) {
	t.Parallel()
	for _, dialect := range testdb.Dialects() {
		for _, mode := range [][]string{
			{"--mode", "raw", "--drain", "300", "--threads", "2", "--checkpoint"},
			{"--mode", "direct", "--drain", "300", "--workers", "2", "--threads", "2", "--depth", "200", "--checkpoint"},
			{"--mode", "distributed", "--drain", "300", "--workers", "2", "--threads", "2", "--send-count", "4"},
			{"--mode", "distributed", "--drain", "300", "--workers", "2", "--threads", "2", "--send-count", "4", "--trace"},
			{"--mode", "distributed", "--rate", "200", "--duration", "1s", "--workers", "1", "--threads", "2"},
			{"--mode", "distributed", "--drain", "300", "--workers", "2", "--threads", "2", "--handler-delay", "1ms", "--slow-worker", "2"},
			{"--mode", "distributed", "--drain", "300", "--workers", "2", "--threads", "2", "--metrics"},
		} {
			t.Run(dialect+" "+strings.Join(mode, " "), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				db := "sqlite://" + filepath.Join(dir, "bench.db")
				if dialect == "postgres" {
					db = testdb.Postgres(t)
				}
				args := append([]string{"bench", "--json", "--db", db}, mode...)
				out, stderr, code := ferry(t, dir, nil, args...)
				if code != 0 {
					t.Fatalf("ferry %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
				}
				var r struct {
					Mode       string             `json:"mode"`
					Messages   int                `json:"messages"`
					PerSecond  float64            `json:"messagesPerSecond"`
					LatencyP50 float64            `json:"latencyP50Ms"`
					CPUSeconds float64            `json:"cpuSeconds"`
					PeakRSSMB  float64            `json:"peakRssMB"`
					Depth      int                `json:"depth"`
					Shares     map[string]float64 `json:"shares"`
					SlowWorker string             `json:"slowWorker"`
					Metrics    int                `json:"metricsBytes"`
				}
				if err := json.Unmarshal([]byte(out), &r); err != nil {
					t.Fatalf("output is not JSON: %v\n%s", err, out)
				}
				want := 300
				if mode[3] == "200" && mode[2] == "--rate" {
					want = 200
				}
				if r.Mode != mode[1] || r.Messages != want || r.PerSecond <= 0 || r.PeakRSSMB <= 0 {
					t.Errorf("result %+v: want mode %s, %d messages, a rate and an RSS", r, mode[1], want)
				}
				if r.Mode != "raw" && r.LatencyP50 <= 0 {
					t.Errorf("no latency measured: %+v", r)
				}
				// Every worker (or endpoint) has a share, and they add up.
				if r.Mode != "raw" {
					sum := 0.0
					for _, v := range r.Shares {
						sum += v
					}
					workers := mode[slices.Index(mode, "--workers")+1]
					if fmt.Sprint(len(r.Shares)) != workers || sum < 0.99 || sum > 1.01 {
						t.Errorf("shares %v: want one per worker (%s), adding up to 1", r.Shares, workers)
					}
				}
				if strings.Contains(strings.Join(mode, " "), "--slow-worker") && r.SlowWorker != "w1" {
					t.Errorf("slow worker %q, want w1 (the last)", r.SlowWorker)
				}
				if withMetrics := slices.Contains(mode, "--metrics"); withMetrics != (r.Metrics > 0) {
					t.Errorf("metrics scrape of %d bytes, want one exactly with --metrics", r.Metrics)
				}
				if strings.Contains(strings.Join(mode, " "), "--depth") && r.Depth != 200 {
					t.Errorf("depth %d, want 200", r.Depth)
				}
			})
		}
	}
}
