package waiter

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestIdleDoublesUpToMaxPollAndWakeResets(t *testing.T) {
	w := New(Bounds{MinPoll: time.Millisecond, MaxPoll: 4 * time.Millisecond})
	ctx := context.Background()
	for _, want := range []time.Duration{2, 4, 4} {
		if _, r := IdleOr[int](ctx, w, nil, nil); r != Polled {
			t.Fatalf("idle ended by %v, want Polled", r)
		}
		if w.poll != want*time.Millisecond {
			t.Fatalf("poll %s, want %s", w.poll, want*time.Millisecond)
		}
	}
	wake := make(chan struct{}, 1)
	wake <- struct{}{}
	if _, r := IdleOr[int](ctx, w, wake, nil); r != Woken || w.poll != time.Millisecond {
		t.Fatalf("woken: %v, poll %s; want Woken and MinPoll", r, w.poll)
	}
	other := make(chan int, 1)
	other <- 7
	w.poll = time.Hour
	if v, r := IdleOr(ctx, w, nil, other); r != Other || v != 7 || w.poll != time.Hour {
		t.Fatalf("other: %v %d, poll %s; want Other 7, poll unchanged", r, v, w.poll)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if w.Idle(cctx, nil) {
		t.Fatal("Idle on an ended context reported true")
	}
}

func TestBackoffRun(t *testing.T) {
	w := New(Bounds{MinPoll: time.Millisecond, MaxPoll: time.Millisecond})
	now := time.Now()
	var waits []time.Duration
	for i := range 6 {
		wait, first := w.Failed(now)
		if first != (i == 0) {
			t.Fatalf("failure %d: first %v", i, first)
		}
		waits = append(waits, wait)
	}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i := range want {
		if waits[i] != want[i]*time.Millisecond {
			t.Fatalf("waits %v, want %v ms", waits, want)
		}
	}
	down, n, ended := w.Recovered(now.Add(time.Second))
	if !ended || n != 6 || down != time.Second {
		t.Fatalf("recovered: %s %d %v", down, n, ended)
	}
	if _, _, ended := w.Recovered(now); ended {
		t.Fatal("a second success ended a run again")
	}
	if wait, first := w.Failed(now); !first || wait != DefaultMinBackoff {
		t.Fatalf("new run: %s %v", wait, first)
	}
}

func TestReceiveWaitsUntilSomething(t *testing.T) {
	w := New(Bounds{MinPoll: time.Millisecond, MaxPoll: 2 * time.Millisecond})
	calls := 0
	got, err := Receive(context.Background(), w, func() <-chan struct{} { return nil }, func(context.Context) ([]int, error) {
		calls++
		if calls < 3 {
			return nil, nil
		}
		return []int{calls}, nil
	})
	if err != nil || len(got) != 1 || got[0] != 3 {
		t.Fatalf("Receive = %v, %v; want [3]", got, err)
	}
	boom := errors.New("boom")
	if _, err := Receive(context.Background(), w, func() <-chan struct{} { return nil }, func(context.Context) ([]int, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("Receive = %v, want boom", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := Receive(ctx, w, func() <-chan struct{} { return nil }, func(context.Context) ([]int, error) { return nil, nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive on an idle source = %v, want DeadlineExceeded", err)
	}
}
