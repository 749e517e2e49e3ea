package queue

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/lib/pq"
)

// AckMany removes handled messages in one statement (per 400 on SQLite) and
// reports which of them it removed, by row id: a delivery missing from the
// result had lost its lease. It lets a caller ack for many threads at once
// and still tell each thread its own outcome.
func (q *sqlQueue) AckMany(ctx context.Context, ds []Delivery) (map[int64]bool, error) {
	acked := make(map[int64]bool, len(ds))
	// A delivery without a lease is never acked: it is reported as not
	// removed, like one whose lease was lost.
	if slices.ContainsFunc(ds, func(d Delivery) bool { return d.LeaseToken == 0 }) {
		ds = slices.DeleteFunc(slices.Clone(ds), func(d Delivery) bool { return d.LeaseToken == 0 })
	}
	if len(ds) == 0 {
		return acked, nil
	}
	scan := func(query string, args ...any) error {
		q.store.ops.Add(1)
		rows, err := q.store.consumeQuery(ctx, query, args...)
		if err != nil {
			return q.errorf("ack", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return q.errorf("ack", err)
			}
			acked[id] = true
		}
		if err := rows.Err(); err != nil {
			return q.errorf("ack", err)
		}
		return nil
	}
	if q.store.dialect == Postgres {
		ids := make([]int64, len(ds))
		toks := make([]int64, len(ds))
		for i, d := range ds {
			ids[i], toks[i] = d.ID, d.LeaseToken
		}
		return acked, scan(q.store.q.ack(len(ds))+" RETURNING m.id", pq.Array(ids), pq.Array(toks))
	}
	// One constant statement, whatever the batch: the pairs travel as a
	// JSON array, so SQLite's statement cache keeps it compiled.
	var b strings.Builder
	b.WriteByte('[')
	for i, d := range ds {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('[')
		b.WriteString(strconv.FormatInt(d.ID, 10))
		b.WriteByte(',')
		b.WriteString(strconv.FormatInt(d.LeaseToken, 10))
		b.WriteByte(']')
	}
	b.WriteByte(']')
	defer q.store.lockWrites()()
	return acked, scan(sqliteAckJSON, b.String())
}

// sqliteAckJSON deletes the (id, lease token) pairs of a JSON array.
const sqliteAckJSON = `DELETE FROM ferry_messages WHERE (id, lease_token) IN
 (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)) RETURNING id`
