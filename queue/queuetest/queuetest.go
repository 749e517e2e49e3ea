// Package queuetest is the contract every queue store must pass, in the
// style of River's riverdrivertest: one body of tests that speaks only the
// queue interfaces (queue.Store, queue.Queue), run once per implementation.
//
// # Design
//
// An implementation's test file hands [Run] a [Driver]: a factory of stores
// on fresh, private databases, a way to open a second handle on the same
// database, the [Features] it declares, and hooks for the few things that
// cannot be done through the interfaces (writing a raw row the store's own
// encoder would refuse). From that the suite gets everything it needs:
//
//   - a store to test: Driver.Open, once per subtest, so that no test sees
//     another's data;
//   - a second handle on the same database: Driver.Reopen, to prove that
//     wake-ups cross connections and that uncommitted enqueues stay
//     invisible to other connections;
//   - a separate database: a second Driver.Open, for moves across databases.
//   - a store of another implementation: Driver.OpenOther, for moves
//     between implementations (optional).
//
// The suite holds no SQL and never asks which database it runs on: a test
// that needs more than the interfaces promise names a [Feature] (or a hook)
// and is skipped, saying which, when the driver does not declare it.
//
// Tests wait on conditions with deadlines; the few fixed waits left are
// there to prove that something does NOT happen before a time (a lease that
// was extended, a receiver that must be idle before it can be woken), and
// say so where they stand.
//
// The tests are grouped by area: enqueue.go, receive.go (receive and
// take), settle.go (ack, extend, release, started marks), move.go,
// browse.go (count, peek, find, delete, purge, queues), wake.go, locks.go,
// records.go (handled records, subscriptions, worker records), view.go
// (the distributor's view, paused queues) and
// migrations.go (schema, round trips).
package queuetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ferrybus/ferry/queue"
)

// MaxPoll is the idle poll ceiling every store given to the suite must
// have. It is large so that the wake-up tests can tell a wake-up from a poll.
const MaxPoll = 5 * time.Second

// ConnectionName is the connection name every store given to the suite must
// have; it shows in queue URIs (sql://test/QUEUE).
const ConnectionName = "test"

// Options are the store options the suite expects: its connection name and
// MaxPoll, with the schema applied on open.
func Options() queue.Options {
	return queue.Options{Name: ConnectionName, AutoMigrate: true, MaxPoll: MaxPoll}
}

// OpenStore opens dsn with [Options] via queue.Open and closes the store
// when t ends: the Open and Reopen of a driver for queue.Open's stores.
func OpenStore(t testing.TB, dsn string) queue.Store {
	t.Helper()
	return OpenStoreWith(t, dsn, Options())
}

// OpenStoreWith is OpenStore with other options (such as AutoMigrate off,
// for Driver.OpenUnmigrated).
func OpenStoreWith(t testing.TB, dsn string, opts queue.Options) queue.Store {
	t.Helper()
	s, err := queue.Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatalf("open %s: %v", queue.RedactDSN(dsn), err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

// Feature is a capability beyond the queue interfaces' minimum that a store
// declares; the tests that need it are skipped for a store that does not.
type Feature string

// The features the suite knows.
const (
	// TxEnqueue: EnqueueTx, AckTx, ClaimHandledTx and MarkHandledTx work
	// inside a transaction begun on Store.DB(), and take effect only if it
	// commits.
	TxEnqueue Feature = "TxEnqueue"
	// CrossProcessWake: an enqueue through another handle on the same
	// database (another process) wakes a waiting ReceiveWait at once.
	CrossProcessWake Feature = "CrossProcessWake"
	// WakeAtCommit: a transactional enqueue through the receiver's own
	// store wakes it when the transaction commits, and not before.
	WakeAtCommit Feature = "WakeAtCommit"
	// SessionLocks: a lock whose holder's LockSession closed is free at
	// once, whatever its lease says.
	SessionLocks Feature = "SessionLocks"
)

// Features is the set of features a driver declares.
type Features []Feature

// Has reports whether f is declared.
func (fs Features) Has(f Feature) bool { return slices.Contains(fs, f) }

// Driver is what an implementation gives the suite.
type Driver struct {
	// Open returns a store on a fresh, empty database private to t, with
	// the schema applied, connection name ConnectionName and MaxPoll
	// MaxPoll (see Options), closed when t ends. Every call returns a
	// different database. Required.
	Open func(t testing.TB) queue.Store
	// Reopen returns a second handle on the database of s, with
	// connections of its own, as another process would have. Required.
	Reopen func(t testing.TB, s queue.Store) queue.Store
	// OpenUnmigrated returns a store on a fresh database whose schema was
	// never applied. Nil skips the tests that need it.
	OpenUnmigrated func(t testing.TB) queue.Store
	// OpenOther returns a store of another implementation (another kind of
	// database) on a fresh database with Options, closed when t ends: moves
	// between it and Open's stores are tested both ways. Nil skips the
	// tests that need it.
	OpenOther func(t testing.TB) queue.Store
	// InsertRawRow writes a visible message messageID into queue queueName
	// of s with headers stored exactly as the given text, bypassing the
	// store's encoder (as a producer other than ferry would), with type "t",
	// priority 0 and body {}: the way to
	// test rows with malformed headers. Nil skips the tests that need it.
	InsertRawRow func(t testing.TB, s queue.Store, queueName, messageID, headers string)
	// Features are the capabilities the store declares.
	Features Features
}

// contractTest is one entry of the suite's table.
type contractTest struct {
	name string
	fn   func(t *testing.T, h *harness)
	// needs names the feature the test is about; without it the test is
	// skipped.
	needs Feature
}

// tests is the suite, run one by one.
var tests = []contractTest{
	// enqueue.go
	{name: "EnqueueReceiveOne", fn: testEnqueueReceiveOne},
	{name: "EnqueueReceiveMany", fn: testEnqueueReceiveMany},
	{name: "EnqueueValidation", fn: testEnqueueValidation},
	{name: "EnqueuePriorityRange", fn: testEnqueuePriorityRange},
	{name: "EnqueueTxCommit", fn: testEnqueueTxCommit, needs: TxEnqueue},
	{name: "EnqueueTxRollback", fn: testEnqueueTxRollback, needs: TxEnqueue},
	// receive.go
	{name: "ReceiveArguments", fn: testReceiveArguments},
	{name: "QueuesAreIsolated", fn: testQueuesAreIsolated},
	{name: "ConcurrentReceivers", fn: testConcurrentReceivers},
	{name: "LeaseExpiryRedelivers", fn: testLeaseExpiryRedelivers},
	{name: "MalformedHeadersDelivered", fn: testMalformedHeadersDelivered},
	{name: "DeferredVisibleAt", fn: testDeferredVisibleAt},
	{name: "PriorityOrder", fn: testPriorityOrder},
	{name: "ReceiveWaitReturnsReady", fn: testReceiveWaitReturnsReady},
	{name: "ReceiveWaitHonoursContext", fn: testReceiveWaitHonoursContext},
	{name: "WakeChannel", fn: testWakeChannel},
	{name: "Take", fn: testTake},
	{name: "TakeSkipsDeferredAndLeased", fn: testTakeSkipsDeferredAndLeased},
	{name: "ConcurrentTakers", fn: testConcurrentTakers},
	// settle.go
	{name: "AckLeaseLost", fn: testAckLeaseLost},
	{name: "AckBatch", fn: testAckBatch},
	{name: "AckMany", fn: testAckMany},
	{name: "AckTx", fn: testAckTx, needs: TxEnqueue},
	{name: "SettlePeekedRefused", fn: testSettlePeekedRefused},
	{name: "Extend", fn: testExtend},
	{name: "ReleaseDelay", fn: testReleaseDelay},
	{name: "ReleaseHeaders", fn: testReleaseHeaders},
	{name: "ReleaseUncount", fn: testReleaseUncount},
	{name: "ReleaseLeaseLost", fn: testReleaseLeaseLost},
	{name: "ReleaseLeased", fn: testReleaseLeased},
	{name: "ReleaseToken", fn: testReleaseToken},
	{name: "MarkStarted", fn: testMarkStarted},
	// move.go
	{name: "MoveSameDatabase", fn: testMoveSameDatabase},
	{name: "MoveAcrossDatabases", fn: testMoveAcrossDatabases},
	{name: "MoveLeaseLost", fn: testMoveLeaseLost},
	{name: "MoveReadySameDatabase", fn: testMoveReadySameDatabase},
	{name: "MoveReadyAcrossDatabases", fn: testMoveReadyAcrossDatabases},
	{name: "MoveReadyEndsStaleLease", fn: testMoveReadyEndsStaleLease},
	{name: "MoveReadyFenced", fn: testMoveReadyFenced},
	{name: "MoveReadyFencedAcrossDatabases", fn: testMoveReadyFencedAcrossDatabases},
	{name: "MoveReadyFencedMalformedHeaders", fn: testMoveReadyFencedMalformedHeaders},
	{name: "MoveReadyFencedHandoff", fn: testMoveReadyFencedHandoff},
	{name: "MoveReadyFencedHandoffLeaseEnds", fn: testMoveReadyFencedHandoffLeaseEnds},
	{name: "MoveReadyFencedHandoffAcrossDatabases", fn: testMoveReadyFencedHandoffAcrossDatabases},
	{name: "MoveReadyFencedRows", fn: testMoveReadyFencedRows},
	{name: "MoveReadyFencedRowsAcrossDatabases", fn: testMoveReadyFencedRowsAcrossDatabases},
	{name: "MoveReadyFencedRowsMalformedHeaders", fn: testMoveReadyFencedRowsMalformedHeaders},
	{name: "MoveReadyFencedRowsWakesAcrossConnections", fn: testMoveReadyFencedRowsWakesOtherHandle, needs: CrossProcessWake},
	{name: "MoveRowsSameDatabase", fn: testMoveRowsSameDatabase},
	{name: "MoveRowsAcrossDatabases", fn: testMoveRowsAcrossDatabases},
	{name: "MoveRowsAcrossImplementations", fn: testMoveRowsAcrossImplementations},
	{name: "MoveRowsBatched", fn: testMoveRowsBatched},
	// browse.go
	{name: "Count", fn: testCount},
	{name: "Peek", fn: testPeek},
	{name: "FindMessages", fn: testFindMessages},
	{name: "LastRowID", fn: testLastRowID},
	{name: "DeleteRows", fn: testDeleteRows},
	{name: "StoreQueues", fn: testStoreQueues},
	{name: "Purge", fn: testPurge},
	{name: "PurgeUnderInflow", fn: testPurgeUnderInflow},
	{name: "Expunge", fn: testExpunge},
	{name: "QueueNames", fn: testQueueNames},
	{name: "QueueHandle", fn: testQueueHandle},
	// locks.go
	{name: "LockAcquireRenewContend", fn: testLockAcquireRenewContend},
	{name: "LockContendedConcurrently", fn: testLockContendedConcurrently},
	{name: "LockExpiry", fn: testLockExpiry},
	{name: "LockTokenGrowsAcrossUnlock", fn: testLockTokenGrowsAcrossUnlock},
	{name: "LockFence", fn: testLockFence},
	{name: "LockSessionAlive", fn: testLockSessionAlive},
	{name: "LockFreeWhenSessionCloses", fn: testLockFreeWhenSessionCloses, needs: SessionLocks},
	// records.go
	{name: "HandledRecords", fn: testHandledRecords, needs: TxEnqueue},
	{name: "ClaimHandledRollback", fn: testClaimHandledRollback, needs: TxEnqueue},
	{name: "ClaimHandledConcurrently", fn: testClaimHandledConcurrently, needs: TxEnqueue},
	{name: "ForgetHandled", fn: testForgetHandled, needs: TxEnqueue},
	{name: "ForgetHandledBatched", fn: testForgetHandledBatched, needs: TxEnqueue},
	{name: "Subscriptions", fn: testSubscriptions},
	{name: "WorkerRecords", fn: testWorkerRecords},
	// view.go
	{name: "DistributorView", fn: testDistributorView},
	{name: "PauseQueue", fn: testPauseQueue},
	// migrations.go
	{name: "Migrated", fn: testMigrated},
	{name: "Unmigrated", fn: testUnmigrated},
	{name: "RoundTrips", fn: testRoundTrips},
	{name: "Errors", fn: testErrors},
	{name: "RowWrites", fn: testRowWrites},
}

// wakeTests mostly wait for a receiver to go idle: they run in parallel
// with each other, after the tests above.
var wakeTests = []contractTest{
	{name: "ReceiveWaitWakesOnEnqueue", fn: testWakeSameHandle},
	{name: "ReceiveWaitWakesAcrossConnections", fn: testWakeOtherHandle, needs: CrossProcessWake},
	{name: "ReceiveWaitWakesOnCommitAcrossConnections", fn: testWakeOnCommit, needs: CrossProcessWake},
	{name: "ReceiveWaitWakesOnCommitSameStore", fn: testWakeOnCommitSameStore, needs: WakeAtCommit},
}

// Run runs the contract suite against the stores d opens. Each subtest runs
// on databases of its own.
func Run(t *testing.T, d Driver) {
	if d.Open == nil || d.Reopen == nil {
		t.Fatal("queuetest: Driver.Open and Driver.Reopen are required")
	}
	h := &harness{d: d}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.require(t, tc.needs)
			tc.fn(t, h)
		})
	}
	for _, tc := range wakeTests {
		t.Run(tc.name, func(t *testing.T) {
			h.require(t, tc.needs)
			t.Parallel()
			tc.fn(t, h)
		})
	}
}

// harness hands the tests their stores and hooks.
type harness struct {
	d Driver
}

// require skips t when the driver lacks feature f ("" needs nothing).
func (h *harness) require(t *testing.T, f Feature) {
	t.Helper()
	if f != "" && !h.d.Features.Has(f) {
		t.Skipf("the store does not declare feature %s", f)
	}
}

// store opens a store on a fresh database and checks it has the options
// the suite relies on.
func (h *harness) store(t *testing.T) queue.Store {
	t.Helper()
	s := h.d.Open(t)
	if s.Name() != ConnectionName {
		t.Fatalf("Driver.Open: store named %q, want %q (see queuetest.Options)", s.Name(), ConnectionName)
	}
	q := mustQueue(t, s, "probe")
	if q.MaxPoll() != MaxPoll {
		t.Fatalf("Driver.Open: MaxPoll %s, want %s (see queuetest.Options)", q.MaxPoll(), MaxPoll)
	}
	return s
}

// reopen opens a second handle on the database of s.
func (h *harness) reopen(t *testing.T, s queue.Store) queue.Store {
	t.Helper()
	return h.d.Reopen(t, s)
}

// other opens a store of another implementation through the driver's
// hook, or skips t when the driver has none.
func (h *harness) other(t *testing.T) queue.Store {
	t.Helper()
	if h.d.OpenOther == nil {
		t.Skip("the driver has no OpenOther hook")
	}
	return h.d.OpenOther(t)
}

// insertRawRow writes a row with raw headers through the driver's hook, or
// skips t when the driver has none.
func (h *harness) insertRawRow(t *testing.T, s queue.Store, queueName, messageID, headers string) {
	t.Helper()
	if h.d.InsertRawRow == nil {
		t.Skip("the driver has no InsertRawRow hook")
	}
	h.d.InsertRawRow(t, s, queueName, messageID, headers)
}
