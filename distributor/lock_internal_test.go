package distributor

import (
	"context"
	"github.com/ferrybus/ferry/internal/testkit"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor/control"
	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/queue"
)

// crash stops d as kill -9 would: its loops end and its connections close
// (with them its lock session), but it never releases the lock.
func crash(d *Distributor) {
	d.cancel()
	d.wg.Wait()
}

func pgConns(t *testing.T) *queue.Connections {
	t.Helper()
	conns := queue.NewConnections(map[string]string{"default": testdb.Postgres(t)},
		queue.Options{AutoMigrate: true, MaxPoll: 50 * time.Millisecond, Logger: itQuiet})
	t.Cleanup(func() { conns.Close() })
	return conns
}

// A distributor restarted after a crash is active again long before its
// predecessor's lease would have ended: the dead process's database session,
// and its claim on the lock, ended with it.
func TestRestartedDistributorIsActiveBeforeLockTTL(t *testing.T) {
	for _, dialect := range testdb.Dialects() {
		t.Run(dialect, func(t *testing.T) { testRestartedDistributorIsActiveBeforeLockTTL(t, dialect) })
	}
}

func testRestartedDistributorIsActiveBeforeLockTTL(t *testing.T, dialect string) {
	conns := queue.NewConnections(map[string]string{"default": testdb.DSN(t, dialect)},
		queue.Options{AutoMigrate: true, MaxPoll: 50 * time.Millisecond, Logger: itQuiet})
	t.Cleanup(func() { conns.Close() })
	const ttl = time.Minute
	first := newIT(t, conns, Config{LockTTL: ttl})
	startIT(t, first)
	testkit.Eventually(t, 20*time.Second, "first distributor active", first.Active)
	crash(first)

	second := newIT(t, conns, Config{LockTTL: ttl})
	startIT(t, second)
	// Far shorter than the TTL: waiting out the lease would fail this.
	testkit.Eventually(t, ttl/3, "restarted distributor active", second.Active)

	// And it distributes.
	enqueue(t, conns, itInbox, 3)
	wq := "sql://default/it-w-work"
	session := bus.NewID()
	second.onAvailable(context.Background(), control.ThreadAvailable{WorkerID: "w", Session: session, Inbox: wq, SentAt: time.Now(), ValidFor: time.Hour})
	testkit.Eventually(t, 20*time.Second, "messages moved by the restarted distributor", func() bool { return testkit.Count(t, conns, wq).Total() == 3 })
}

// A distributor that lost its lock without noticing (its session was cut
// and another took over while it was not renewing) moves nothing more:
// the move statement itself checks the lock's token.
func TestDistributorThatLostItsLockMovesNothing(t *testing.T) {
	ctx := context.Background()
	conns := pgConns(t)
	// A long TTL: it renews (and would notice) only every 20 minutes.
	d := newIT(t, conns, Config{LockTTL: time.Hour})
	var moves atomic.Int64
	d.hooks.afterMove = func(n int, err error) { moves.Add(1) }
	startIT(t, d)
	testkit.Eventually(t, 20*time.Second, "distributor active", d.Active)

	store := d.control.Inbox().Store()
	var pid int
	err := testkit.SQLX(store).GetContext(ctx, &pid, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
 AND ((classid::bigint << 32) | objid::bigint) = `+`hashtextextended(current_schema() || ':ferry_lock:' || $1 || ':' || $2, 0)`,
		d.lockName(), d.owner)
	if err != nil {
		t.Fatalf("find the lock session: %v", err)
	}
	if _, err := store.DB().ExecContext(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	thief, err := store.OpenLockSession(ctx, d.lockName(), "thief")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { thief.Close() })
	testkit.Eventually(t, 20*time.Second, "another owner to take the lock", func() bool {
		tok, err := store.AcquireLock(ctx, d.lockName(), "thief", time.Hour)
		return err == nil && tok != 0
	})
	if !d.Active() {
		t.Fatal("the distributor noticed the loss; the test needs it not to")
	}

	enqueue(t, conns, itInbox, 5)
	wq := "sql://default/it-w-work"
	before := moves.Load()
	d.onAvailable(ctx, control.ThreadAvailable{WorkerID: "w", Session: bus.NewID(), Inbox: wq, SentAt: time.Now(), ValidFor: time.Hour})
	testkit.Eventually(t, 20*time.Second, "a move attempt", func() bool { return moves.Load() > before })
	if c := testkit.Count(t, conns, wq); c.Total() != 0 {
		t.Fatalf("a distributor without the lock moved %d messages", c.Total())
	}
	if c := testkit.Count(t, conns, itInbox); c.Ready != 5 {
		t.Fatalf("inbox holds %d ready, want 5", c.Ready)
	}
}

// A standby takes over from an active distributor that died long before
// the dead one's lease would have ended.
func TestStandbyTakesOverBeforeLockTTL(t *testing.T) {
	conns := pgConns(t)
	const ttl = time.Minute
	active := newIT(t, conns, Config{LockTTL: ttl})
	startIT(t, active)
	testkit.Eventually(t, 20*time.Second, "first distributor active", active.Active)
	standby := newIT(t, conns, Config{LockTTL: ttl})
	var polls atomic.Int64
	standby.hooks.lockPolled = func(held bool) { polls.Add(1) }
	startIT(t, standby)
	testkit.Eventually(t, 20*time.Second, "the standby to try the lock", func() bool { return polls.Load() > 0 })
	if standby.Active() {
		t.Fatal("standby active while the first distributor lives")
	}
	crash(active)
	testkit.Eventually(t, ttl/3, "the standby active", standby.Active)
}
