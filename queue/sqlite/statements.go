package sqlite

import "strings"

// deliveryColumns are read back for a delivery, in the engine's scan order.
const deliveryColumns = "id, message_id, type, priority, attempts, enqueued_at, visible_at, lease_token, headers, body"

// One statement is atomic in SQLite: the write lock covers select and update.
const receive = `UPDATE ferry_messages SET visible_at = ?, lease_token = ?, attempts = attempts + 1
WHERE id IN (SELECT id FROM ferry_messages WHERE queue = ? AND visible_at <= ?
      ORDER BY priority DESC, id LIMIT ?)
RETURNING ` + deliveryColumns

// take deletes visible rows under the write lock, which covers the pick;
// the row is gone, so attempts count this delivery and the lease token is 0.
const take = `DELETE FROM ferry_messages
WHERE id IN (SELECT id FROM ferry_messages WHERE queue = ? AND visible_at <= ?
      ORDER BY priority DESC, id LIMIT ?)
RETURNING id, message_id, type, priority, attempts + 1, enqueued_at, visible_at, 0, headers, body`

// The moves of visible rows. The unfenced move starts the attempt count
// afresh; the fenced one (the distributor's) keeps it and acts only while
// the lock still has its token.
const (
	moveReady = `UPDATE ferry_messages SET queue = ?, lease_token = 0, attempts = 0, headers = json_patch(headers, ?)
WHERE id IN (SELECT id FROM ferry_messages WHERE queue = ? AND visible_at <= ?
      ORDER BY priority DESC, id LIMIT ?)`
	fencedMove = `UPDATE ferry_messages SET queue = ?, lease_token = 0, headers = json_patch(headers, ?)
WHERE id IN (SELECT id FROM ferry_messages WHERE queue = ? AND visible_at <= ?
      ORDER BY priority DESC, id LIMIT ?)` + ` AND EXISTS (SELECT 1 FROM ferry_locks WHERE name = ? AND token = ?)`
	// The fenced move that hands the rows over leased to their receiver:
	// the move is the delivery, so the receiver only reads them.
	handoffMove = `UPDATE ferry_messages SET queue = ?, lease_token = ?, visible_at = ?, attempts = attempts + 1,
 headers = json_patch(headers, ?)
WHERE id IN (SELECT id FROM ferry_messages WHERE queue = ? AND visible_at <= ?
      ORDER BY priority DESC, id LIMIT ?)` + ` AND EXISTS (SELECT 1 FROM ferry_locks WHERE name = ? AND token = ?)`
)

// receiveGiven reads the rows handed over to a lease token, except those
// the receiver holds already.
const receiveGiven = `SELECT ` + deliveryColumns + ` FROM ferry_messages
WHERE queue = ? AND lease_token = ? AND visible_at > ? AND id NOT IN (SELECT value FROM json_each(?))
ORDER BY priority DESC, id LIMIT ?`

// Receive leases visible rows.
func (d *Dialect) Receive() string { return receive }

// Take deletes visible rows and returns them.
func (d *Dialect) Take() string { return take }

// MoveReady moves visible rows; it wakes nobody itself.
func (d *Dialect) MoveReady(fenced bool) (string, bool) {
	if fenced {
		return fencedMove, false
	}
	return moveReady, false
}

// MoveHandoff moves visible rows leased to their receiver; it wakes nobody
// itself.
func (d *Dialect) MoveHandoff() (string, bool) { return handoffMove, false }

// MoveReturning is the move returning the moved rows (UPDATE … RETURNING,
// SQLite 3.35 and later); it wakes nobody itself.
func (d *Dialect) MoveReturning(fenced, handoff bool) string {
	const returning = ` RETURNING message_id, headers`
	switch {
	case handoff:
		return handoffMove + returning
	case fenced:
		return fencedMove + returning
	}
	return moveReady + returning
}

// ReceiveGiven reads the rows handed over to a lease token.
func (d *Dialect) ReceiveGiven() string { return receiveGiven }

// Insert is a multi-row INSERT of n messages (SQLite has no channel to notify).
func (d *Dialect) Insert(n int, _ bool) string {
	var b strings.Builder
	b.WriteString("INSERT INTO ferry_messages (queue, message_id, type, priority, visible_at, enqueued_at, headers, body) VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?)")
	}
	return b.String()
}

// Notify is "": other processes cannot be woken.
func (d *Dialect) Notify() string { return "" }

// AckMaxPairs bounds the pairs of one Ack statement.
func (d *Dialect) AckMaxPairs() int { return 400 }

// Ack deletes n (id, lease token) pairs.
func (d *Dialect) Ack(n int) string {
	var b strings.Builder
	b.WriteString("DELETE FROM ferry_messages WHERE (id, lease_token) IN (VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?)")
	}
	b.WriteString(")")
	return b.String()
}

// AckMany deletes the (id, lease token) pairs of a JSON array.
func (d *Dialect) AckMany() string {
	return `DELETE FROM ferry_messages WHERE (id, lease_token) IN
 (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)) RETURNING id`
}

// SettleSQL is the SQL of settling one delivery. New headers on release
// record an outcome (a failure): the count of handler starts without one
// (markStarted) begins again.
func (d *Dialect) SettleSQL() (extend, release, moveOne, markStarted, ackOne, releaseLeased string) {
	return `UPDATE ferry_messages SET visible_at = ? WHERE id = ? AND lease_token = ?`,
		`UPDATE ferry_messages SET visible_at = ?, lease_token = 0, attempts = attempts - ?,
headers = COALESCE(?, headers), started = CASE WHEN CAST(? AS TEXT) IS NULL THEN started ELSE 0 END
WHERE id = ? AND lease_token = ?`,
		`UPDATE ferry_messages SET queue = ?, visible_at = ?, lease_token = 0, attempts = 0, started = 0,
headers = COALESCE(?, headers) WHERE id = ? AND lease_token = ?`,
		`UPDATE ferry_messages SET started = started + 1 WHERE id = ? AND lease_token = ? RETURNING started`,
		`DELETE FROM ferry_messages WHERE id = ? AND lease_token = ?`,
		`UPDATE ferry_messages SET visible_at = ?, lease_token = 0
WHERE queue = ? AND lease_token <> 0 AND visible_at > ?`
}

// ReleaseTokenSQL ends the leases of a queue's messages held with one
// lease token (now, queue, token, now).
func (d *Dialect) ReleaseTokenSQL() string {
	return `UPDATE ferry_messages SET visible_at = ?, lease_token = 0
WHERE queue = ? AND lease_token = ? AND visible_at > ?`
}

// ExpungeSQL is the SQL of a queue's retention: rows visible since before
// a time, in bounded batches.
func (d *Dialect) ExpungeSQL() string {
	return `DELETE FROM ferry_messages WHERE queue = ? AND visible_at < ? AND id IN
 (SELECT id FROM ferry_messages WHERE queue = ? AND visible_at < ? ORDER BY id LIMIT ?)`
}

// BrowseSQL is the SQL of reading queues.
func (d *Dialect) BrowseSQL() (count, peek, maxID, purge, queues, find string) {
	return `SELECT
 COALESCE(SUM(CASE WHEN visible_at <= ? THEN 1 ELSE 0 END), 0),
 COALESCE(SUM(CASE WHEN visible_at > ? AND lease_token = 0 THEN 1 ELSE 0 END), 0),
 COALESCE(SUM(CASE WHEN visible_at > ? AND lease_token <> 0 THEN 1 ELSE 0 END), 0),
 COALESCE(MIN(CASE WHEN visible_at <= ? THEN enqueued_at END), 0)
FROM ferry_messages WHERE queue = ?`,
		`SELECT ` + deliveryColumns + ` FROM ferry_messages WHERE queue = ? AND id > ? ORDER BY id LIMIT ?`,
		`SELECT COALESCE(MAX(id), 0) FROM ferry_messages WHERE queue = ?`,
		`DELETE FROM ferry_messages WHERE id IN
 (SELECT id FROM ferry_messages WHERE queue = ? AND id <= ? ORDER BY id LIMIT ?)`,
		`SELECT queue,
 COALESCE(SUM(CASE WHEN visible_at <= ? THEN 1 ELSE 0 END), 0),
 COALESCE(SUM(CASE WHEN visible_at > ? AND lease_token = 0 THEN 1 ELSE 0 END), 0),
 COALESCE(SUM(CASE WHEN visible_at > ? AND lease_token <> 0 THEN 1 ELSE 0 END), 0)
FROM ferry_messages GROUP BY queue ORDER BY queue`,
		`SELECT ` + deliveryColumns + ` FROM ferry_messages WHERE queue = ? AND message_id IN (SELECT value FROM json_each(?)) ORDER BY id`
}

// RowSQL is the SQL of bulk row operations, the ids as a JSON array.
func (d *Dialect) RowSQL() (move, lease, deleteLeased, unlease, del string) {
	return `UPDATE ferry_messages SET queue = ?, visible_at = ?, lease_token = 0, attempts = 0, started = 0,
 headers = COALESCE((SELECT json_group_object(key, value) FROM json_each(ferry_messages.headers)
   WHERE key NOT IN (SELECT value FROM json_each(?))), '{}')
WHERE queue = ? AND id IN (SELECT value FROM json_each(?)) AND (lease_token = 0 OR visible_at <= ?)`,
		`UPDATE ferry_messages SET lease_token = ?, visible_at = ?
WHERE queue = ? AND id IN (SELECT value FROM json_each(?)) AND (lease_token = 0 OR visible_at <= ?)
RETURNING ` + deliveryColumns,
		`DELETE FROM ferry_messages WHERE lease_token = ? AND id IN (SELECT value FROM json_each(?))`,
		`UPDATE ferry_messages SET lease_token = 0, visible_at = ? WHERE lease_token = ? AND id IN (SELECT value FROM json_each(?))`,
		`DELETE FROM ferry_messages WHERE queue = ? AND id IN (SELECT value FROM json_each(?)) AND (lease_token = 0 OR visible_at <= ?)`
}

// lockAcquire takes or renews a lock: free when expired or released.
const lockAcquire = `INSERT INTO ferry_locks (name, owner, expires_at, token) VALUES (?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at,
 token = CASE WHEN ferry_locks.owner = excluded.owner THEN ferry_locks.token ELSE ferry_locks.token + 1 END
WHERE ferry_locks.owner = excluded.owner OR ferry_locks.expires_at < ?`

// LockSQL is the SQL of named locks; acquireTakeOver also takes the lock
// of a holder whose session file shows it died (DeadHolder).
func (d *Dialect) LockSQL() (acquire, acquireTakeOver, unlock, held string) {
	return lockAcquire + ` RETURNING token`,
		lockAcquire + ` OR ferry_locks.owner = ?` + ` RETURNING token`,
		`UPDATE ferry_locks SET owner = '', expires_at = 0 WHERE name = ? AND owner = ?`,
		`SELECT COUNT(*) FROM ferry_locks WHERE name = ? AND token = ?`
}

// FenceRowsSQL is the fenced move row by row; the write lock, held from
// BEGIN, keeps the fence and the rows still.
func (d *Dialect) FenceRowsSQL() (check, pick, moveRow string) {
	return `SELECT 1 FROM ferry_locks WHERE name = ? AND token = ?`,
		`SELECT id, message_id, headers FROM ferry_messages WHERE queue = ? AND visible_at <= ? ORDER BY priority DESC, id LIMIT ?`,
		`UPDATE ferry_messages SET queue = ?, lease_token = 0, headers = ? WHERE id = ?`
}

// WorkerSQL is the SQL of the distributor's worker records. An older
// session never replaces a newer one (session ids sort by start).
func (d *Dialect) WorkerSQL() (record, list, forget string) {
	return `INSERT INTO ferry_workers (control_queue, worker_id, session, inbox, last_seen)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (control_queue, worker_id) DO UPDATE SET session = excluded.session, inbox = excluded.inbox, last_seen = excluded.last_seen
WHERE excluded.session >= ferry_workers.session`,
		`SELECT worker_id, session, inbox, last_seen FROM ferry_workers
WHERE control_queue = ? ORDER BY worker_id`,
		`DELETE FROM ferry_workers WHERE control_queue = ? AND worker_id = ? AND session = ?`
}

// ViewSQL is the SQL of the distributor's view (see queue.DistributorViews).
func (d *Dialect) ViewSQL() (recordInstance, pruneInstances, forgetInstance, instances, clearWorkers, insertWorker, workers string) {
	return `INSERT INTO ferry_distributors (control_queue, owner, name, host, pid, active, interval_us, reclaim_after_us, updated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (control_queue, owner) DO UPDATE SET name = excluded.name, host = excluded.host, pid = excluded.pid,
active = excluded.active, interval_us = excluded.interval_us, reclaim_after_us = excluded.reclaim_after_us, updated = excluded.updated`,
		`DELETE FROM ferry_distributors WHERE control_queue = ? AND updated < ?`,
		`DELETE FROM ferry_distributors WHERE control_queue = ? AND owner = ?`,
		`SELECT owner, name, host, pid, active, interval_us, reclaim_after_us, updated FROM ferry_distributors
WHERE control_queue = ? ORDER BY active DESC, owner`,
		`DELETE FROM ferry_worker_view WHERE control_queue = ?`,
		`INSERT INTO ferry_worker_view (control_queue, worker_id, session, inbox, threads, idle, last_seen, depth, stopping, updated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		`SELECT worker_id, session, inbox, threads, idle, last_seen, depth, stopping, updated FROM ferry_worker_view
WHERE control_queue = ? ORDER BY worker_id`
}

// PauseSQL is the SQL of paused queues: pause (queue, paused at; an
// earlier pause is kept), resume (queue), list.
func (d *Dialect) PauseSQL() (pause, resume, list string) {
	return `INSERT INTO ferry_paused (queue, paused_at) VALUES (?, ?) ON CONFLICT (queue) DO NOTHING`,
		`DELETE FROM ferry_paused WHERE queue = ?`,
		`SELECT queue, paused_at FROM ferry_paused ORDER BY queue`
}

// SubscriptionSQL is the SQL of subscriptions.
func (d *Dialect) SubscriptionSQL() (subscribe, unsubscribe, list string) {
	return `INSERT INTO ferry_subscriptions (message_type, queue_uri, created_at) VALUES (?, ?, ?)
ON CONFLICT (message_type, queue_uri) DO NOTHING`,
		`DELETE FROM ferry_subscriptions WHERE message_type = ? AND queue_uri = ?`,
		`SELECT message_type, queue_uri FROM ferry_subscriptions ORDER BY message_type, queue_uri`
}

// HandledSQL is the SQL of handled records. Of several transactions
// claiming one id at once, the write lock orders them.
func (d *Dialect) HandledSQL() (claim, handled, forget string) {
	return `INSERT INTO ferry_handled (endpoint, message_id, handled_at) VALUES (?, ?, ?)
ON CONFLICT (endpoint, message_id) DO NOTHING`,
		`SELECT COUNT(*) FROM ferry_handled WHERE endpoint = ? AND message_id = ?`,
		`DELETE FROM ferry_handled WHERE handled_at < ? AND (endpoint, message_id) IN
 (SELECT endpoint, message_id FROM ferry_handled WHERE handled_at < ? LIMIT ?)`
}

// MigrateSQL is the SQL of migrating. No lock statement: the migration's
// transaction begins IMMEDIATE, which takes the write lock.
func (d *Dialect) MigrateSQL() (lock, create, versions, record string) {
	return "",
		`CREATE TABLE IF NOT EXISTS ferry_migrations (
version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`,
		"SELECT version FROM ferry_migrations",
		"INSERT INTO ferry_migrations (version, name, applied_at) VALUES (?, ?, ?)"
}
