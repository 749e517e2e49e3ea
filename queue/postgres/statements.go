package postgres

import (
	"strings"

	"github.com/jmoiron/sqlx"
)

// The statements are written with ? and bound to $1, $2, … by dollar, once
// per store (the engine keeps them); Insert and Ack build theirs per call.

// dollar binds ? placeholders as $1, $2, ….
func dollar(q string) string { return sqlx.Rebind(sqlx.DOLLAR, q) }

// deliveryColumns are read back for a delivery, in the engine's scan order.
const deliveryColumns = "id, message_id, type, priority, attempts, enqueued_at, visible_at, lease_token, headers, body"

// SKIP LOCKED lets concurrent receivers take disjoint rows without waiting.
const receive = `UPDATE ferry_messages m SET visible_at = ?, lease_token = ?, attempts = m.attempts + 1
FROM (SELECT id FROM ferry_messages WHERE queue = ? AND visible_at <= ?
      ORDER BY priority DESC, id LIMIT ? FOR UPDATE SKIP LOCKED) picked
WHERE m.id = picked.id
RETURNING m.id, m.message_id, m.type, m.priority, m.attempts, m.enqueued_at, m.visible_at, m.lease_token, m.headers, m.body`

// take deletes what it picks: the same pick as receive, so concurrent
// takers (and receivers) get disjoint rows. The row is gone, so the
// returned attempts count this delivery and the lease token is 0.
const take = `DELETE FROM ferry_messages m
USING (SELECT id FROM ferry_messages WHERE queue = ? AND visible_at <= ?
      ORDER BY priority DESC, id LIMIT ? FOR UPDATE SKIP LOCKED) picked
WHERE m.id = picked.id
RETURNING m.id, m.message_id, m.type, m.priority, m.attempts + 1, m.enqueued_at, m.visible_at, 0, m.headers, m.body`

// The fence check, in the moving statement: FOR SHARE makes a concurrent
// change of hands wait for the move, or the move see it.
const fence = ` AND EXISTS (SELECT 1 FROM ferry_locks WHERE name = ? AND token = ? FOR SHARE)`

// The moves of visible rows wake the destination's receivers in the same
// round trip. The unfenced move starts the attempt count afresh; the
// fenced one (the distributor's) keeps it.
const (
	moveReadyNotify = `WITH moved AS (UPDATE ferry_messages m SET queue = ?, lease_token = 0, attempts = 0, headers = (m.headers::jsonb || ?::jsonb)::text
FROM (SELECT id FROM ferry_messages WHERE queue = ? AND visible_at <= ?
      ORDER BY priority DESC, id LIMIT ? FOR UPDATE SKIP LOCKED) picked
WHERE m.id = picked.id RETURNING 1),
counted AS (SELECT COUNT(*) AS n FROM moved)
SELECT counted.n FROM counted LEFT JOIN LATERAL (SELECT pg_notify(?, ?) WHERE counted.n > 0) woke ON true`
	fencedMoveNotify = `WITH moved AS (UPDATE ferry_messages m SET queue = ?, lease_token = 0, headers = (m.headers::jsonb || ?::jsonb)::text
FROM (SELECT id FROM ferry_messages WHERE queue = ? AND visible_at <= ?
      ORDER BY priority DESC, id LIMIT ? FOR UPDATE SKIP LOCKED) picked
WHERE m.id = picked.id` + fence + ` RETURNING 1),
counted AS (SELECT COUNT(*) AS n FROM moved)
SELECT counted.n FROM counted LEFT JOIN LATERAL (SELECT pg_notify(?, ?) WHERE counted.n > 0) woke ON true`
	// The fenced move that hands the rows over leased to their receiver:
	// the move is the delivery, so the receiver only reads them.
	handoffMoveNotify = `WITH moved AS (UPDATE ferry_messages m SET queue = ?, lease_token = ?, visible_at = ?, attempts = m.attempts + 1,
 headers = (m.headers::jsonb || ?::jsonb)::text
FROM (SELECT id FROM ferry_messages WHERE queue = ? AND visible_at <= ?
      ORDER BY priority DESC, id LIMIT ? FOR UPDATE SKIP LOCKED) picked
WHERE m.id = picked.id` + fence + ` RETURNING 1),
counted AS (SELECT COUNT(*) AS n FROM moved)
SELECT counted.n FROM counted LEFT JOIN LATERAL (SELECT pg_notify(?, ?) WHERE counted.n > 0) woke ON true`
)

// receiveGiven reads the rows handed over to a lease token, except those
// the receiver holds already.
const receiveGiven = `SELECT ` + deliveryColumns + ` FROM ferry_messages
WHERE queue = ? AND lease_token = ? AND visible_at > ? AND id <> ALL(?::bigint[])
ORDER BY priority DESC, id LIMIT ?`

// Receive leases visible rows.
func (d *Dialect) Receive() string { return dollar(receive) }

// Take deletes visible rows and returns them.
func (d *Dialect) Take() string { return dollar(take) }

// MoveReady moves visible rows and notifies dst, in one statement.
func (d *Dialect) MoveReady(fenced bool) (string, bool) {
	if fenced {
		return dollar(fencedMoveNotify), true
	}
	return dollar(moveReadyNotify), true
}

// MoveHandoff moves visible rows leased to their receiver and notifies dst,
// in one statement.
func (d *Dialect) MoveHandoff() (string, bool) { return dollar(handoffMoveNotify), true }

// MoveReturning is the move returning the moved rows instead of their
// count, waking dst in the same statement when any moved.
func (d *Dialect) MoveReturning(fenced, handoff bool) string {
	switch {
	case handoff:
		return dollar(returningRows(handoffMoveNotify))
	case fenced:
		return dollar(returningRows(fencedMoveNotify))
	}
	return dollar(returningRows(moveReadyNotify))
}

// returningRows turns a counting move (WITH moved AS (UPDATE … RETURNING
// 1), counted …) into the same move returning its rows. pg_notify runs
// once (a CTE with a volatile function is evaluated once) and only when a
// row moved; the join is an inner one because the planner removes a LEFT
// JOIN whose columns go unused, and the notification with it.
func returningRows(counting string) string {
	i := strings.Index(counting, " RETURNING 1),")
	if i < 0 {
		panic("postgres: not a counting move: " + counting)
	}
	return counting[:i] + ` RETURNING m.message_id, m.headers),
woke AS (SELECT pg_notify(?, ?) FROM (SELECT 1 FROM moved LIMIT 1) one)
SELECT moved.message_id, moved.headers FROM moved CROSS JOIN (SELECT COUNT(*) AS n FROM woke) w`
}

// ReceiveGiven reads the rows handed over to a lease token.
func (d *Dialect) ReceiveGiven() string { return dollar(receiveGiven) }

// Insert is a multi-row INSERT of n messages; with notify the same round
// trip sends the wake-up notification (its two parameters come last).
func (d *Dialect) Insert(n int, notify bool) string {
	var b strings.Builder
	if notify {
		b.WriteString("WITH ins AS (")
	}
	b.WriteString("INSERT INTO ferry_messages (queue, message_id, type, priority, visible_at, enqueued_at, headers, body) VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?)")
	}
	if notify {
		b.WriteString(" RETURNING 1) SELECT pg_notify(?, ?)")
	}
	return dollar(b.String())
}

// Notify wakes the receivers of a queue in every listening process.
func (d *Dialect) Notify() string { return "SELECT pg_notify($1, $2)" }

// ack deletes (id, lease token) pairs given as two arrays: the statement
// text is constant, whatever their number.
const ack = `DELETE FROM ferry_messages m USING unnest($1::bigint[], $2::bigint[]) AS a(id, tok)
WHERE m.id = a.id AND m.lease_token = a.tok`

// AckMaxPairs is 0: Ack takes the ids and tokens as two arrays.
func (d *Dialect) AckMaxPairs() int { return 0 }

// Ack deletes any number of pairs.
func (d *Dialect) Ack(int) string { return ack }

// AckMany is Ack returning the deleted ids.
func (d *Dialect) AckMany() string { return ack + " RETURNING m.id" }

// SettleSQL is the SQL of settling one delivery. New headers on release
// record an outcome (a failure): the count of handler starts without one
// (markStarted) begins again.
func (d *Dialect) SettleSQL() (extend, release, moveOne, markStarted, ackOne, releaseLeased string) {
	return dollar(`UPDATE ferry_messages SET visible_at = ? WHERE id = ? AND lease_token = ?`),
		dollar(`UPDATE ferry_messages SET visible_at = ?, lease_token = 0, attempts = attempts - ?,
headers = COALESCE(?, headers), started = CASE WHEN CAST(? AS TEXT) IS NULL THEN started ELSE 0 END
WHERE id = ? AND lease_token = ?`),
		dollar(`UPDATE ferry_messages SET queue = ?, visible_at = ?, lease_token = 0, attempts = 0, started = 0,
headers = COALESCE(?, headers) WHERE id = ? AND lease_token = ?`),
		dollar(`UPDATE ferry_messages SET started = started + 1 WHERE id = ? AND lease_token = ? RETURNING started`),
		dollar(`DELETE FROM ferry_messages WHERE id = ? AND lease_token = ?`),
		dollar(`UPDATE ferry_messages SET visible_at = ?, lease_token = 0
WHERE queue = ? AND lease_token <> 0 AND visible_at > ?`)
}

// ReleaseTokenSQL ends the leases of a queue's messages held with one
// lease token (now, queue, token, now).
func (d *Dialect) ReleaseTokenSQL() string {
	return dollar(`UPDATE ferry_messages SET visible_at = ?, lease_token = 0
WHERE queue = ? AND lease_token = ? AND visible_at > ?`)
}

// ExpungeSQL is the SQL of a queue's retention: rows visible since before
// a time, in bounded batches.
func (d *Dialect) ExpungeSQL() string {
	// The outer conditions are checked again on a row that changed while the
	// statement waited for it (leased meanwhile: kept).
	return dollar(`DELETE FROM ferry_messages WHERE queue = ? AND visible_at < ? AND id IN
 (SELECT id FROM ferry_messages WHERE queue = ? AND visible_at < ? ORDER BY id LIMIT ?)`)
}

// BrowseSQL is the SQL of reading queues.
func (d *Dialect) BrowseSQL() (count, peek, maxID, purge, queues, find string) {
	return dollar(`SELECT
 COALESCE(SUM(CASE WHEN visible_at <= ? THEN 1 ELSE 0 END), 0),
 COALESCE(SUM(CASE WHEN visible_at > ? AND lease_token = 0 THEN 1 ELSE 0 END), 0),
 COALESCE(SUM(CASE WHEN visible_at > ? AND lease_token <> 0 THEN 1 ELSE 0 END), 0),
 COALESCE(MIN(CASE WHEN visible_at <= ? THEN enqueued_at END), 0)
FROM ferry_messages WHERE queue = ?`),
		dollar(`SELECT ` + deliveryColumns + ` FROM ferry_messages WHERE queue = ? AND id > ? ORDER BY id LIMIT ?`),
		dollar(`SELECT COALESCE(MAX(id), 0) FROM ferry_messages WHERE queue = ?`),
		dollar(`DELETE FROM ferry_messages WHERE id IN
 (SELECT id FROM ferry_messages WHERE queue = ? AND id <= ? ORDER BY id LIMIT ?)`),
		dollar(`SELECT queue,
 COALESCE(SUM(CASE WHEN visible_at <= ? THEN 1 ELSE 0 END), 0),
 COALESCE(SUM(CASE WHEN visible_at > ? AND lease_token = 0 THEN 1 ELSE 0 END), 0),
 COALESCE(SUM(CASE WHEN visible_at > ? AND lease_token <> 0 THEN 1 ELSE 0 END), 0)
FROM ferry_messages GROUP BY queue ORDER BY queue`),
		`SELECT ` + deliveryColumns + ` FROM ferry_messages WHERE queue = $1 AND message_id = ANY($2::text[]) ORDER BY id`
}

// RowSQL is the SQL of bulk row operations, the ids as a bigint[].
func (d *Dialect) RowSQL() (move, lease, deleteLeased, unlease, del string) {
	return dollar(`UPDATE ferry_messages SET queue = ?, visible_at = ?, lease_token = 0, attempts = 0, started = 0,
 headers = (headers::jsonb - ?::text[])::text
WHERE queue = ? AND id = ANY(?::bigint[]) AND (lease_token = 0 OR visible_at <= ?)`),
		`UPDATE ferry_messages SET lease_token = $1, visible_at = $2
WHERE queue = $3 AND id = ANY($4::bigint[]) AND (lease_token = 0 OR visible_at <= $5)
RETURNING ` + deliveryColumns,
		`DELETE FROM ferry_messages WHERE lease_token = $1 AND id = ANY($2::bigint[])`,
		`UPDATE ferry_messages SET lease_token = 0, visible_at = $1 WHERE lease_token = $2 AND id = ANY($3::bigint[])`,
		`DELETE FROM ferry_messages WHERE queue = $1 AND id = ANY($2::bigint[]) AND (lease_token = 0 OR visible_at <= $3)`
}

// LockSQL is the SQL of named locks. The lock is free when it is expired
// or released, or when its holder has no session (see OpenSession): a
// holder whose session lock can be taken has no session any more.
func (d *Dialect) LockSQL() (acquire, acquireTakeOver, unlock, held string) {
	return dollar(`INSERT INTO ferry_locks (name, owner, expires_at, token) VALUES (?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at,
 token = CASE WHEN ferry_locks.owner = excluded.owner THEN ferry_locks.token ELSE ferry_locks.token + 1 END
WHERE ferry_locks.owner = excluded.owner OR ferry_locks.expires_at < ?` +
			` OR (CASE WHEN pg_try_advisory_lock(` + sessionKey("ferry_locks.name", "ferry_locks.owner") + `)
 THEN pg_advisory_unlock(` + sessionKey("ferry_locks.name", "ferry_locks.owner") + `) ELSE false END)` +
			` RETURNING token`),
		"",
		dollar(`UPDATE ferry_locks SET owner = '', expires_at = 0 WHERE name = ? AND owner = ?`),
		dollar(`SELECT COUNT(*) FROM ferry_locks WHERE name = ? AND token = ?`)
}

// FenceRowsSQL is the fenced move row by row; the fence is shared-locked
// and the rows locked, as in the bulk statement.
func (d *Dialect) FenceRowsSQL() (check, pick, moveRow string) {
	return dollar(`SELECT 1 FROM ferry_locks WHERE name = ? AND token = ? FOR SHARE`),
		dollar(`SELECT id, message_id, headers FROM ferry_messages WHERE queue = ? AND visible_at <= ? ORDER BY priority DESC, id LIMIT ? FOR UPDATE SKIP LOCKED`),
		dollar(`UPDATE ferry_messages SET queue = ?, lease_token = 0, headers = ? WHERE id = ?`)
}

// WorkerSQL is the SQL of the distributor's worker records. An older
// session never replaces a newer one (session ids sort by start).
func (d *Dialect) WorkerSQL() (record, list, forget string) {
	return dollar(`INSERT INTO ferry_workers (control_queue, worker_id, session, inbox, last_seen)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (control_queue, worker_id) DO UPDATE SET session = excluded.session, inbox = excluded.inbox, last_seen = excluded.last_seen
WHERE excluded.session >= ferry_workers.session`),
		dollar(`SELECT worker_id, session, inbox, last_seen FROM ferry_workers
WHERE control_queue = ? ORDER BY worker_id`),
		dollar(`DELETE FROM ferry_workers WHERE control_queue = ? AND worker_id = ? AND session = ?`)
}

// ViewSQL is the SQL of the distributor's view (see queue.DistributorViews).
func (d *Dialect) ViewSQL() (recordInstance, pruneInstances, forgetInstance, instances, clearWorkers, insertWorker, workers string) {
	return dollar(`INSERT INTO ferry_distributors (control_queue, owner, name, host, pid, active, interval_us, reclaim_after_us, updated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (control_queue, owner) DO UPDATE SET name = excluded.name, host = excluded.host, pid = excluded.pid,
active = excluded.active, interval_us = excluded.interval_us, reclaim_after_us = excluded.reclaim_after_us, updated = excluded.updated`),
		dollar(`DELETE FROM ferry_distributors WHERE control_queue = ? AND updated < ?`),
		dollar(`DELETE FROM ferry_distributors WHERE control_queue = ? AND owner = ?`),
		dollar(`SELECT owner, name, host, pid, active, interval_us, reclaim_after_us, updated FROM ferry_distributors
WHERE control_queue = ? ORDER BY active DESC, owner`),
		dollar(`DELETE FROM ferry_worker_view WHERE control_queue = ?`),
		dollar(`INSERT INTO ferry_worker_view (control_queue, worker_id, session, inbox, threads, idle, last_seen, depth, stopping, updated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		dollar(`SELECT worker_id, session, inbox, threads, idle, last_seen, depth, stopping, updated FROM ferry_worker_view
WHERE control_queue = ? ORDER BY worker_id`)
}

// PauseSQL is the SQL of paused queues: pause (queue, paused at; an
// earlier pause is kept), resume (queue), list.
func (d *Dialect) PauseSQL() (pause, resume, list string) {
	return dollar(`INSERT INTO ferry_paused (queue, paused_at) VALUES (?, ?) ON CONFLICT (queue) DO NOTHING`),
		dollar(`DELETE FROM ferry_paused WHERE queue = ?`),
		`SELECT queue, paused_at FROM ferry_paused ORDER BY queue`
}

// SubscriptionSQL is the SQL of subscriptions.
func (d *Dialect) SubscriptionSQL() (subscribe, unsubscribe, list string) {
	return dollar(`INSERT INTO ferry_subscriptions (message_type, queue_uri, created_at) VALUES (?, ?, ?)
ON CONFLICT (message_type, queue_uri) DO NOTHING`),
		dollar(`DELETE FROM ferry_subscriptions WHERE message_type = ? AND queue_uri = ?`),
		`SELECT message_type, queue_uri FROM ferry_subscriptions ORDER BY message_type, queue_uri`
}

// HandledSQL is the SQL of handled records. Of several transactions
// claiming one id at once, the others wait for the first at the INSERT.
func (d *Dialect) HandledSQL() (claim, handled, forget string) {
	return dollar(`INSERT INTO ferry_handled (endpoint, message_id, handled_at) VALUES (?, ?, ?)
ON CONFLICT (endpoint, message_id) DO NOTHING`),
		dollar(`SELECT COUNT(*) FROM ferry_handled WHERE endpoint = ? AND message_id = ?`),
		dollar(`DELETE FROM ferry_handled WHERE handled_at < ? AND (endpoint, message_id) IN
 (SELECT endpoint, message_id FROM ferry_handled WHERE handled_at < ? LIMIT ?)`)
}

// MigrateSQL is the SQL of migrating. The lock is an advisory lock scoped
// to the schema, so tests in separate schemas do not wait on each other.
func (d *Dialect) MigrateSQL() (lock, create, versions, record string) {
	return `SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.ferry_migrations'))`,
		`CREATE TABLE IF NOT EXISTS ferry_migrations (
version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`,
		"SELECT version FROM ferry_migrations",
		dollar("INSERT INTO ferry_migrations (version, name, applied_at) VALUES (?, ?, ?)")
}
