package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrybus/ferry/internal/testdb"
)

// sendDir writes a migrated configuration on a fresh database of dialect
// in a new folder and returns the folder; mut changes the configuration.
func sendDir(t *testing.T, dialect string, mut func(map[string]any)) string {
	t.Helper()
	dir := t.TempDir()
	dsn := "sqlite://" + filepath.Join(dir, "ferry.db")
	if dialect == "postgres" {
		dsn = testdb.Postgres(t)
	}
	m := clusterConfig(dsn, "http://127.0.0.1:1/handle")
	if mut != nil {
		mut(m)
	}
	writeJSON(t, filepath.Join(dir, "config.json"), m)
	if _, stderr, code := ferry(t, dir, nil, "migrate", "-c", "config.json"); code != 0 {
		t.Fatalf("ferry migrate: exit %d: %s", code, stderr)
	}
	return dir
}

// readyIn is the ready count of uri by `ferry queue ls`.
func readyIn(t *testing.T, dir, uri string) int64 {
	t.Helper()
	for _, r := range queues(t, dir, "config.json") {
		if r.URI == uri {
			return r.Ready
		}
	}
	return 0
}

// TestSendPriorityRange: --priority outside the range of the priority
// column is the same usage error on both stores, naming the flag (it was a
// raw driver error on PostgreSQL, and stored on SQLite); the ends of the
// range are sent.
func TestSendPriorityRange(t *testing.T) {
	t.Parallel()
	stderrs := map[string]string{}
	for _, dialect := range testdb.Dialects() {
		dir := sendDir(t, dialect, nil)
		for _, p := range []int64{2147483647, -2147483648} {
			if _, stderr, code := ferry(t, dir, nil, "send", "-c", "config.json", "--type", "t", "--to", "sql://default/prio",
				"--priority", strconv.FormatInt(p, 10)); code != 0 {
				t.Errorf("%s: --priority %d: exit %d: %s", dialect, p, code, stderr)
			}
		}
		for _, p := range []int64{2147483648, -2147483649} {
			_, stderr, code := ferry(t, dir, nil, "send", "-c", "config.json", "--type", "t", "--to", "sql://default/prio",
				"--priority", strconv.FormatInt(p, 10))
			prefix := fmt.Sprintf("ferry: send: --priority %d: out of range", p)
			if code != 2 || !strings.HasPrefix(stderr, prefix) || !strings.Contains(stderr, "2147483647") {
				t.Errorf("%s: --priority %d: exit %d, stderr %q; want 2 and %q…", dialect, p, code, stderr, prefix)
			}
			stderrs[strconv.FormatInt(p, 10)+" "+dialect] = stderr
		}
		if n := readyIn(t, dir, "sql://default/prio"); n != 2 {
			t.Errorf("%s: %d messages in the queue, want the 2 in range", dialect, n)
		}
	}
	for _, p := range []string{"2147483648", "-2147483649"} {
		if a, b := stderrs[p+" sqlite"], stderrs[p+" postgres"]; a != b {
			t.Errorf("--priority %s: the stores differ:\nsqlite:   %q\npostgres: %q", p, a, b)
		}
	}
}

// TestSendBodyLimit: a body over the send limit (4 MiB by default,
// maxSendBodyBytes in the file) is a usage error naming the flag, the
// message type, the queue and the limit, and nothing is sent.
func TestSendBodyLimit(t *testing.T) {
	t.Parallel()
	dir := sendDir(t, "sqlite", nil)
	big := filepath.Join(dir, "big.json")
	body := append(append([]byte(`"`), bytes.Repeat([]byte("x"), 4<<20)...), '"') // 4 MiB + 2
	if err := os.WriteFile(big, body, 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(dir string, limit int, args ...string) {
		t.Helper()
		args = append([]string{"send", "-c", "config.json", "--type", "files.uploaded", "--to", "sql://default/big"}, args...)
		_, stderr, code := ferry(t, dir, nil, args...)
		if code != 2 || !strings.HasPrefix(stderr, "ferry: send: --body: ") {
			t.Errorf("ferry %s: exit %d, stderr %q; want 2 and an error about --body", strings.Join(args, " "), code, stderr)
		}
		for _, want := range []string{`"files.uploaded"`, "sql://default/big", "limit " + strconv.Itoa(limit), "maxSendBodyBytes"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("ferry %s: stderr %q does not name %s", strings.Join(args, " "), stderr, want)
			}
		}
		if n := readyIn(t, dir, "sql://default/big"); n != 0 {
			t.Errorf("%d messages sent, want none", n)
		}
	}
	check(dir, 4<<20, "--body", "@"+big)

	small := sendDir(t, "sqlite", func(m map[string]any) { m["maxSendBodyBytes"] = 100 })
	check(small, 100, "--body", `"`+strings.Repeat("y", 100)+`"`)
	if _, stderr, code := ferry(t, small, nil, "send", "-c", "config.json", "--type", "files.uploaded", "--to", "sql://default/ok",
		"--body", `"`+strings.Repeat("y", 98)+`"`); code != 0 {
		t.Errorf("a body of 100 bytes with a limit of 100: exit %d: %s", code, stderr)
	}
}

// TestSendInterrupted: SIGINT stops `ferry send --count N` after the batch
// under way; it prints how many messages it committed, exactly as many as
// the queue holds, and exits 130.
func TestSendInterrupted(t *testing.T) {
	t.Parallel()
	dir := sendDir(t, "sqlite", nil)
	const count = 50_000_000 // far more than can be sent before the signal
	p := start(t, dir, "send", "send", "-c", "config.json", "--type", "t", "--to", "sql://default/many", "--count", strconv.Itoa(count))
	waitFor(t, 60*time.Second, []*proc{p}, func() bool { return readyIn(t, dir, "sql://default/many") > 0 },
		func() string { return "the first messages in the queue" })
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatal("ferry send did not stop within 60s of SIGINT")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit code %d, want 130", code)
	}
	out, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`sent (\d+) of 50000000 message\(s\) of type t in .*: interrupted`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("output does not say how many were sent:\n%s", out)
	}
	if !strings.Contains(string(out), "interrupted by interrupt: "+string(m[1])+" of 50000000 message(s) committed") {
		t.Errorf("stderr does not say the send was interrupted:\n%s", out)
	}
	sent, _ := strconv.ParseInt(string(m[1]), 10, 64)
	if n := readyIn(t, dir, "sql://default/many"); n != sent || sent == 0 {
		t.Errorf("printed %d sent, the queue holds %d", sent, n)
	}
}
