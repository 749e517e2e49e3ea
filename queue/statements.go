package queue

// statements is the SQL of a store's dialect, fetched once when the store
// opens, so that no statement text is built on the hot path (except the
// multi-row insert and, where pairs are separate arguments, the ack).
type statements struct {
	receive string
	take    string // destructive receive of soft state (Consumer.Take)
	// moveReady and moveFenced move visible rows; with moveNotifies and
	// fencedNotifies they also wake dst in other processes and return the
	// count as a row (see dialect.MoveReady).
	moveReady, moveFenced        string
	moveNotifies, fencedNotifies bool
	notify                       string
	ackMaxPairs                  int
	ack, ackMany                 string // ack when ackMaxPairs is 0

	// moveHandoff is moveFenced leasing the rows for their receiver, and
	// receiveGiven the receiver's read of them (see dialect.MoveHandoff).
	moveHandoff, receiveGiven string
	handoffNotifies           bool
	// The moves that return the moved rows (dialect.MoveReturning).
	moveReadyRet, moveFencedRet, moveHandoffRet string

	extend, release, moveOne, markStarted, ackOne, releaseLeased string
	releaseToken                                                 string

	count, peek, maxID, purge, queues, find string
	expunge                                 string

	moveRows, leaseRows, deleteLeasedRows, unleaseRows, deleteRows string

	lockAcquire, lockTakeOver, unlock, lockHeld string
	fenceCheck, fencePick, fenceMoveRow         string

	recordWorker, listWorkers, forgetWorker string
	subscribe, unsubscribe, subscriptions   string
	claimHandled, handled, forgetHandled    string
	migrateLock, migrateCreate, migrateRead string
	migrateRecord                           string

	// The distributor's view and paused queues (view.go, pause.go).
	viewRecord, viewPrune, viewForget, viewInstances string
	viewClear, viewInsert, viewWorkers               string
	pause, resume, pausedList                        string
}

func newStatements(d dialect) statements {
	st := statements{receive: d.Receive(), take: d.Take(), notify: d.Notify(), ackMaxPairs: d.AckMaxPairs(), ackMany: d.AckMany()}
	st.moveReady, st.moveNotifies = d.MoveReady(false)
	st.moveFenced, st.fencedNotifies = d.MoveReady(true)
	st.moveHandoff, st.handoffNotifies = d.MoveHandoff()
	st.receiveGiven = d.ReceiveGiven()
	st.moveReadyRet, st.moveFencedRet, st.moveHandoffRet = d.MoveReturning(false, false), d.MoveReturning(true, false), d.MoveReturning(true, true)
	if st.ackMaxPairs == 0 {
		st.ack = d.Ack(0)
	}
	st.extend, st.release, st.moveOne, st.markStarted, st.ackOne, st.releaseLeased = d.SettleSQL()
	st.releaseToken = d.ReleaseTokenSQL()
	st.count, st.peek, st.maxID, st.purge, st.queues, st.find = d.BrowseSQL()
	st.expunge = d.ExpungeSQL()
	st.moveRows, st.leaseRows, st.deleteLeasedRows, st.unleaseRows, st.deleteRows = d.RowSQL()
	st.lockAcquire, st.lockTakeOver, st.unlock, st.lockHeld = d.LockSQL()
	st.fenceCheck, st.fencePick, st.fenceMoveRow = d.FenceRowsSQL()
	st.recordWorker, st.listWorkers, st.forgetWorker = d.WorkerSQL()
	st.viewRecord, st.viewPrune, st.viewForget, st.viewInstances, st.viewClear, st.viewInsert, st.viewWorkers = d.ViewSQL()
	st.pause, st.resume, st.pausedList = d.PauseSQL()
	st.subscribe, st.unsubscribe, st.subscriptions = d.SubscriptionSQL()
	st.claimHandled, st.handled, st.forgetHandled = d.HandledSQL()
	st.migrateLock, st.migrateCreate, st.migrateRead, st.migrateRecord = d.MigrateSQL()
	return st
}
