package testkit

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// pollEvery is how often Eventually checks its condition: short, so tests
// do not wait long after the condition holds.
const pollEvery = 5 * time.Millisecond

// Eventually waits until cond holds, failing the test after timeout with
// what it was waiting for.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := Poll(context.Background(), timeout, pollEvery, cond); err != nil {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// Poll checks cond every interval until it holds, and returns an error when
// timeout passes first or ctx ends. cond runs on the caller's goroutine, so
// it may call t.Fatal.
func Poll(ctx context.Context, timeout, every time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}
