package queue_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// Environment of the consumer child process of TestMultiProcessSQLite.
const (
	mpEnvRole = "FERRY_QUEUE_TEST_ROLE" // "consumer" in the child
	mpEnvDSN  = "FERRY_QUEUE_TEST_DSN"
	mpEnvOut  = "FERRY_QUEUE_TEST_OUT" // file of handled MessageIDs, one per line
	mpEnvGo   = "FERRY_QUEUE_TEST_GO"  // file whose creation lets the consumers go on
)

const mpQueue = "shared"

// TestHelperProcess is not a test: it is the consumer process that
// TestMultiProcessSQLite starts by re-running the test binary. It receives
// and acks messages until its stdin closes, writing each MessageID it acked
// to the file named by FERRY_QUEUE_TEST_OUT; it creates OUT.ready once it is
// receiving. Its first non-empty batch it holds (leased, unacked) and marks
// with OUT.got until the file named by FERRY_QUEUE_TEST_GO exists: the
// parent lets both go only once each holds a batch, so each consumer's share
// is certain instead of left to timing.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(mpEnvRole) != "consumer" {
		t.Skip("the consumer process of TestMultiProcessSQLite")
	}
	if err := mpConsume(os.Getenv(mpEnvDSN), os.Getenv(mpEnvOut), os.Getenv(mpEnvGo)); err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(3)
	}
}

func mpConsume(dsn, outPath, goPath string) error {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() { // the parent closes our stdin to stop us
		io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	s, err := queue.Open(ctx, dsn, queue.Options{AutoMigrate: true, MaxPoll: 50 * time.Millisecond})
	if err != nil {
		return err
	}
	defer s.Close()
	q, err := s.Queue(mpQueue)
	if err != nil {
		return err
	}
	f, err := os.Create(outPath)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	if err := os.WriteFile(outPath+".ready", nil, 0o644); err != nil {
		return err
	}
	held := false
	for {
		ds, err := q.ReceiveWait(ctx, 10, time.Minute)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return err
		}
		if !held && len(ds) > 0 {
			held = true
			if err := mpHold(ctx, outPath+".got", goPath); err != nil {
				return err
			}
		}
		if err := q.Ack(context.Background(), ds...); err != nil {
			return err
		}
		for _, d := range ds {
			fmt.Fprintln(w, d.MessageID)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// mpHold marks that this consumer holds a batch and waits for the parent's
// go file.
func mpHold(ctx context.Context, gotPath, goPath string) error {
	if err := os.WriteFile(gotPath, nil, 0o644); err != nil {
		return err
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if _, err := os.Stat(goPath); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped while waiting for %s", goPath)
		case <-t.C:
		}
	}
}

type mpChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    string
	output bytes.Buffer
	done   chan error
}

// TestMultiProcessSQLite runs two consumer processes on one SQLite file:
// together they must handle every message exactly once, and each must have
// handled some (each holds its first batch until both have one).
func TestMultiProcessSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	ctx := context.Background()
	dsn := testdb.SQLite(t)
	s, err := queue.Open(ctx, dsn, queue.Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q, err := s.Queue(mpQueue)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	goPath := filepath.Join(dir, "go")
	children := make([]*mpChild, 2)
	for i := range children {
		c := &mpChild{out: filepath.Join(dir, fmt.Sprintf("consumer-%d.txt", i)), done: make(chan error, 1)}
		c.cmd = exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		c.cmd.Env = append(os.Environ(), mpEnvRole+"=consumer", mpEnvDSN+"="+dsn, mpEnvOut+"="+c.out, mpEnvGo+"="+goPath)
		c.cmd.Stdout = &c.output
		c.cmd.Stderr = &c.output
		if c.stdin, err = c.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := c.cmd.Start(); err != nil {
			t.Fatalf("start consumer %d: %v", i, err)
		}
		go func() { c.done <- c.cmd.Wait() }()
		children[i] = c
	}
	t.Cleanup(func() {
		for _, c := range children {
			c.cmd.Process.Kill() // a no-op once it has exited
		}
	})
	// exited fails the test when a consumer ended before it was told to.
	exited := func() {
		for i, c := range children {
			select {
			case err := <-c.done:
				t.Fatalf("consumer %d exited early (%v):\n%s", i, err, c.output.String())
			default:
			}
		}
	}
	testkit.Eventually(t, 2*time.Minute, "both consumers to be ready", func() bool {
		exited()
		for _, c := range children {
			if _, err := os.Stat(c.out + ".ready"); err != nil {
				return false
			}
		}
		return true
	})

	const n = 3000
	all := make(map[string]bool, n)
	for start := 0; start < n; start += 100 {
		batch := make([]queue.Message, 100)
		for i := range batch {
			id := fmt.Sprintf("mp-%05d", start+i)
			batch[i] = queue.Message{MessageID: id, Body: []byte(id)}
			all[id] = true
		}
		if err := q.Enqueue(ctx, batch...); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}
	testkit.Eventually(t, 2*time.Minute, "each consumer to hold a batch", func() bool {
		exited()
		for _, c := range children {
			if _, err := os.Stat(c.out + ".got"); err != nil {
				return false
			}
		}
		return true
	})
	if err := os.WriteFile(goPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 2*time.Minute, "the consumers to drain the queue", func() bool {
		exited()
		c, err := q.Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c.Total() == 0
	})
	for _, c := range children {
		c.stdin.Close()
	}
	for i, c := range children {
		select {
		case err := <-c.done:
			if err != nil {
				t.Fatalf("consumer %d: %v\n%s", i, err, c.output.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("consumer %d did not stop", i)
		}
	}

	seen := map[string]int{}
	counts := make([]int, len(children))
	for i, c := range children {
		data, err := os.ReadFile(c.out)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range strings.Fields(string(data)) {
			if prev, ok := seen[id]; ok {
				t.Errorf("%s handled by consumer %d and consumer %d", id, prev, i)
			}
			if !all[id] {
				t.Errorf("consumer %d handled unknown message %q", i, id)
			}
			seen[id] = i
			counts[i]++
		}
	}
	for id := range all {
		if _, ok := seen[id]; !ok {
			t.Errorf("%s was lost", id)
		}
	}
	for i, k := range counts {
		if k == 0 {
			t.Errorf("consumer %d handled nothing: the test proves nothing about sharing", i)
		}
	}
	t.Logf("messages per consumer: %v", counts)
}
