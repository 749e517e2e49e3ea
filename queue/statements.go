package queue

import (
	"strings"

	"github.com/jmoiron/sqlx"
)

// columns read back for a delivery, in scan order.
const deliveryColumns = "id, message_id, type, priority, attempts, enqueued_at, visible_at, lease_token, headers, body"

// statements holds the SQL of one dialect, with placeholders already bound.
type statements struct {
	dialect   Dialect
	rebind    func(string) string
	receive   string
	extend    string
	release   string
	moveSame  string
	moveReady string
	// moveReadyNotify is moveReady with NOTIFY in the same statement (PostgreSQL).
	moveReadyNotify string
	count           string
	peek            string
	maxID           string
	purge           string
	queues          string
}

func newStatements(d Dialect, db *sqlx.DB) statements {
	st := statements{dialect: d, rebind: db.Rebind}
	r := db.Rebind
	switch d {
	case Postgres:
		// SKIP LOCKED lets concurrent receivers take disjoint rows without waiting.
		st.receive = r(`UPDATE ferry_messages m SET visible_at = ?, lease_token = ?, attempts = m.attempts + 1
FROM (SELECT id FROM ferry_messages WHERE queue = ? AND visible_at <= ?
      ORDER BY priority DESC, id LIMIT ? FOR UPDATE SKIP LOCKED) picked
WHERE m.id = picked.id
RETURNING m.id, m.message_id, m.type, m.priority, m.attempts, m.enqueued_at, m.visible_at, m.lease_token, m.headers, m.body`)
		st.moveReady = r(`UPDATE ferry_messages m SET queue = ?, lease_token = 0, attempts = 0, headers = (m.headers::jsonb || ?::jsonb)::text
FROM (SELECT id FROM ferry_messages WHERE queue = ? AND visible_at <= ?
      ORDER BY priority DESC, id LIMIT ? FOR UPDATE SKIP LOCKED) picked
WHERE m.id = picked.id`)
		// The same move that also wakes the destination's receivers, in one round trip.
		st.moveReadyNotify = r(`WITH moved AS (UPDATE ferry_messages m SET queue = ?, lease_token = 0, attempts = 0, headers = (m.headers::jsonb || ?::jsonb)::text
FROM (SELECT id FROM ferry_messages WHERE queue = ? AND visible_at <= ?
      ORDER BY priority DESC, id LIMIT ? FOR UPDATE SKIP LOCKED) picked
WHERE m.id = picked.id RETURNING 1),
counted AS (SELECT COUNT(*) AS n FROM moved)
SELECT counted.n FROM counted LEFT JOIN LATERAL (SELECT pg_notify(?, ?) WHERE counted.n > 0) woke ON true`)
	case SQLite:
		st.moveReady = `UPDATE ferry_messages SET queue = ?, lease_token = 0, attempts = 0, headers = json_patch(headers, ?)
WHERE id IN (SELECT id FROM ferry_messages WHERE queue = ? AND visible_at <= ?
      ORDER BY priority DESC, id LIMIT ?)`
		// One statement is atomic in SQLite: the write lock covers select and update.
		st.receive = `UPDATE ferry_messages SET visible_at = ?, lease_token = ?, attempts = attempts + 1
WHERE id IN (SELECT id FROM ferry_messages WHERE queue = ? AND visible_at <= ?
      ORDER BY priority DESC, id LIMIT ?)
RETURNING ` + deliveryColumns
	}
	st.extend = r(`UPDATE ferry_messages SET visible_at = ? WHERE id = ? AND lease_token = ?`)
	// New headers record an outcome (a failure): the count of handler
	// starts without one (MarkStarted) begins again.
	st.release = r(`UPDATE ferry_messages SET visible_at = ?, lease_token = 0, attempts = attempts - ?,
headers = COALESCE(?, headers), started = CASE WHEN CAST(? AS TEXT) IS NULL THEN started ELSE 0 END
WHERE id = ? AND lease_token = ?`)
	st.moveSame = r(`UPDATE ferry_messages SET queue = ?, visible_at = ?, lease_token = 0, attempts = 0, started = 0,
headers = COALESCE(?, headers) WHERE id = ? AND lease_token = ?`)
	st.count = r(`SELECT
 COALESCE(SUM(CASE WHEN visible_at <= ? THEN 1 ELSE 0 END), 0),
 COALESCE(SUM(CASE WHEN visible_at > ? AND lease_token = 0 THEN 1 ELSE 0 END), 0),
 COALESCE(SUM(CASE WHEN visible_at > ? AND lease_token <> 0 THEN 1 ELSE 0 END), 0)
FROM ferry_messages WHERE queue = ?`)
	st.peek = r(`SELECT ` + deliveryColumns + ` FROM ferry_messages WHERE queue = ? AND id > ? ORDER BY id LIMIT ?`)
	st.maxID = r(`SELECT COALESCE(MAX(id), 0) FROM ferry_messages WHERE queue = ?`)
	st.purge = r(`DELETE FROM ferry_messages WHERE id IN
 (SELECT id FROM ferry_messages WHERE queue = ? AND id <= ? ORDER BY id LIMIT ?)`)
	st.queues = r(`SELECT queue,
 COALESCE(SUM(CASE WHEN visible_at <= ? THEN 1 ELSE 0 END), 0),
 COALESCE(SUM(CASE WHEN visible_at > ? AND lease_token = 0 THEN 1 ELSE 0 END), 0),
 COALESCE(SUM(CASE WHEN visible_at > ? AND lease_token <> 0 THEN 1 ELSE 0 END), 0)
FROM ferry_messages GROUP BY queue ORDER BY queue`)
	return st
}

// insert builds a multi-row INSERT for n messages. On PostgreSQL the same
// round trip sends the wake-up notification (its two extra parameters come
// last) when notify is set.
func (st statements) insert(n int, notify bool) string {
	var b strings.Builder
	if st.dialect == Postgres && notify {
		b.WriteString("WITH ins AS (")
	}
	b.WriteString("INSERT INTO ferry_messages (queue, message_id, type, priority, visible_at, enqueued_at, headers, body) VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?)")
	}
	if st.dialect == Postgres && notify {
		b.WriteString(" RETURNING 1) SELECT pg_notify(?, ?)")
	}
	return st.rebind(b.String())
}

// ack builds a DELETE of n (id, lease_token) pairs.
func (st statements) ack(n int) string {
	if st.dialect == Postgres {
		// Arrays keep the statement text constant, whatever n is.
		return `DELETE FROM ferry_messages m USING unnest($1::bigint[], $2::bigint[]) AS a(id, tok)
WHERE m.id = a.id AND m.lease_token = a.tok`
	}
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
