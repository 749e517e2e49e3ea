package queuetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ferrybus/ferry/queue"
)

// testMigrated: a store from Driver.Open has its schema: nothing is
// pending, and migrating again applies nothing.
func testMigrated(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	if pending, err := s.PendingMigrations(ctx); err != nil || len(pending) != 0 {
		t.Fatalf("PendingMigrations of a migrated store = %v, %v; want none", pending, err)
	}
	if n, err := s.MigrateCount(ctx); err != nil || n != 0 {
		t.Fatalf("MigrateCount of a migrated store = %d, %v; want 0", n, err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate of a migrated store: %v", err)
	}
	if pending, err := h.reopen(t, s).PendingMigrations(ctx); err != nil || len(pending) != 0 {
		t.Fatalf("PendingMigrations from another handle = %v, %v; want none", pending, err)
	}
}

// testUnmigrated: a database never migrated says so (ErrUnmigrated);
// MigrateCount applies every migration, once; the store then works.
func testUnmigrated(t *testing.T, h *harness) {
	if h.d.OpenUnmigrated == nil {
		t.Skip("the driver has no OpenUnmigrated hook")
	}
	ctx := t.Context()
	s := h.d.OpenUnmigrated(t)
	if pending, err := s.PendingMigrations(ctx); !errors.Is(err, queue.ErrUnmigrated) {
		t.Fatalf("PendingMigrations of an unmigrated database = %v, %v; want ErrUnmigrated", pending, err)
	}
	n, err := s.MigrateCount(ctx)
	if err != nil || n == 0 {
		t.Fatalf("MigrateCount of an unmigrated database = %d, %v; want every migration applied", n, err)
	}
	if pending, err := s.PendingMigrations(ctx); err != nil || len(pending) != 0 {
		t.Fatalf("PendingMigrations after MigrateCount = %v, %v; want none", pending, err)
	}
	if again, err := s.MigrateCount(ctx); err != nil || again != 0 {
		t.Fatalf("second MigrateCount = %d, %v; want 0", again, err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate after MigrateCount: %v", err)
	}
	q := mustQueue(t, s, "after-migrate")
	enqueue(t, q, msg("migrated", 0))
	if err := q.Ack(ctx, receiveOne(t, q, time.Minute)); err != nil {
		t.Fatal(err)
	}
}

// testRoundTrips: every queue operation adds to the store's count of
// statements sent, and only to its own handle's.
func testRoundTrips(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	other := h.reopen(t, s)
	q, dst := mustQueue(t, s, "trips"), mustQueue(t, s, "trips-dst")
	otherBefore := other.RoundTrips()
	last := s.RoundTrips()
	step := func(op string, fn func() error) {
		t.Helper()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		now := s.RoundTrips()
		if now <= last {
			t.Errorf("RoundTrips after %s = %d, want above %d", op, now, last)
		}
		last = now
	}
	step("Enqueue", func() error { return q.Enqueue(ctx, msgs("trips", 3)...) })
	var ds []queue.Delivery
	step("Receive", func() (err error) { ds, err = q.Receive(ctx, 3, time.Hour); return err })
	if len(ds) != 3 {
		t.Fatalf("received %d, want 3", len(ds))
	}
	step("Extend", func() error { return q.Extend(ctx, ds[0], time.Hour) })
	step("Ack", func() error { return q.Ack(ctx, ds[0]) })
	step("AckMany", func() error { _, err := q.AckMany(ctx, ds[1:2]); return err })
	step("Release", func() error { return q.Release(ctx, ds[2], queue.ReleaseOptions{}) })
	step("MoveReady", func() error { _, err := q.MoveReady(ctx, dst, 10, nil); return err })
	d := receiveOne(t, dst, time.Hour)
	last = s.RoundTrips()
	step("Move", func() error { return dst.Move(ctx, d, q, nil) })
	if got := other.RoundTrips(); got != otherBefore {
		t.Errorf("RoundTrips of another handle moved from %d to %d", otherBefore, got)
	}
}

// testErrors: the store counts the statements that fail, and neither
// successful ones nor those their caller cancelled.
func testErrors(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	q := mustQueue(t, s, "errs")
	before := s.Errors()
	enqueue(t, q, msg("errs", 0))
	if err := q.Ack(ctx, receiveOne(t, q, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Count(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.Errors(); got != before {
		t.Fatalf("Errors after successful statements = %d, want %d", got, before)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := q.Count(cancelled); err == nil {
		t.Fatal("Count with a cancelled context succeeded")
	}
	if got := s.Errors(); got != before {
		t.Fatalf("Errors after a cancelled statement = %d, want %d", got, before)
	}
	late, stop := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer stop()
	if _, err := q.Count(late); err == nil {
		t.Fatal("Count past its deadline succeeded")
	}
	if got := s.Errors(); got != before+1 {
		t.Fatalf("Errors after a statement past its deadline = %d, want %d", got, before+1)
	}
}

// testRowWrites: the store counts the rows its queue operations write, one
// per message inserted, leased, renewed, released, moved or deleted, and
// nothing for reads; only on its own handle.
func testRowWrites(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.store(t)
	other := h.reopen(t, s)
	q, dst := mustQueue(t, s, "writes"), mustQueue(t, s, "writes-dst")
	otherBefore := other.RowWrites()
	last := s.RowWrites()
	step := func(op string, want int64, fn func() error) {
		t.Helper()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		now := s.RowWrites()
		if now-last != want {
			t.Errorf("RowWrites after %s grew by %d, want %d", op, now-last, want)
		}
		last = now
	}
	step("Enqueue", 3, func() error { return q.Enqueue(ctx, msgs("writes", 3)...) })
	var ds []queue.Delivery
	step("Receive", 3, func() (err error) { ds, err = q.Receive(ctx, 3, time.Hour); return err })
	if len(ds) != 3 {
		t.Fatalf("received %d, want 3", len(ds))
	}
	step("Count", 0, func() error { _, err := q.Count(ctx); return err })
	step("Peek", 0, func() error { _, err := q.Peek(ctx, 0, 10); return err })
	step("Extend", 1, func() error { return q.Extend(ctx, ds[0], time.Hour) })
	step("Ack", 1, func() error { return q.Ack(ctx, ds[0]) })
	step("AckMany", 1, func() error { _, err := q.AckMany(ctx, ds[1:2]); return err })
	step("Release", 1, func() error { return q.Release(ctx, ds[2], queue.ReleaseOptions{}) })
	step("MoveReady", 1, func() error { _, err := q.MoveReady(ctx, dst, 10, nil); return err })
	step("ReceiveGiven", 0, func() error { _, err := dst.ReceiveGiven(ctx, 1, 10, nil); return err })
	d := receiveOne(t, dst, time.Hour)
	last = s.RowWrites()
	step("Move", 1, func() error { return dst.Move(ctx, d, q, nil) })
	if got := other.RowWrites(); got != otherBefore {
		t.Errorf("RowWrites of another handle moved from %d to %d", otherBefore, got)
	}
}
