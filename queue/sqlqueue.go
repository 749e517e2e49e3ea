package queue

import (
	"database/sql"
	"fmt"
	"math/rand/v2"

	"github.com/jmoiron/sqlx"
)

// The queue's operations are in files by role: enqueue.go, receive.go,
// settle.go, move.go, fence.go, browse.go and bulk.go.

// sqlQueue is a queue stored in a SQL database. It implements [Queue].
type sqlQueue struct {
	store *sqlStore
	name  string
}

var _ Queue = (*sqlQueue)(nil)

// Name is the queue's name within its store.
func (q *sqlQueue) Name() string { return q.name }

// URI is sql://CONNECTION/QUEUE.
func (q *sqlQueue) URI() string { return URI{Connection: q.store.opts.Name, Queue: q.name}.String() }

// Store is the database the queue lives in.
func (q *sqlQueue) Store() Store { return q.store }

func (q *sqlQueue) errorf(op string, err error) error {
	return fmt.Errorf("queue %s: %s: %w", q.URI(), op, err)
}

// local returns dst when it is a queue of q's own database, nil otherwise.
// A move within one database is one statement on both queues' rows; to
// another database (or another Queue implementation) it is an enqueue
// there and an ack here. Only this engine's queues can be told apart, so
// the type assertion lives here alone.
func (q *sqlQueue) local(dst Queue) *sqlQueue {
	if same, ok := dst.(*sqlQueue); ok && same.store == q.store {
		return same
	}
	return nil
}

func (q *sqlQueue) scan(rows *sqlx.Rows) ([]Delivery, error) {
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		var (
			d        Delivery
			enq, vis int64
			headers  string
		)
		if err := rows.Scan(&d.ID, &d.MessageID, &d.Type, &d.Priority, &d.Attempts, &enq, &vis, &d.LeaseToken, &headers, &d.Body); err != nil {
			return nil, err
		}
		d.Queue = q.name
		d.EnqueuedAt = fromMicros(enq)
		d.VisibleAt = fromMicros(vis)
		if h, err := decodeHeaders(headers); err != nil {
			d.HeadersErr = fmt.Errorf("headers %.200q: %w", headers, err)
			d.RawHeaders = headers
		} else {
			d.Headers = h
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

func (q *sqlQueue) oneRow(res sql.Result, op string, d Delivery) error {
	n, err := res.RowsAffected()
	if err != nil {
		return q.errorf(op+" "+d.MessageID, err)
	}
	if n == 0 {
		return q.errorf(op+" "+d.MessageID, ErrLeaseLost)
	}
	return nil
}

// checkLeased refuses to settle a delivery that carries no lease (lease
// token zero, as from Peek): the statements match on (id, lease_token) and
// would touch a message that nobody holds.
func (q *sqlQueue) checkLeased(op string, d Delivery) error {
	if d.LeaseToken == 0 {
		return q.errorf(op+" "+d.MessageID, ErrNotLeased)
	}
	return nil
}

// newLeaseToken returns a random non-zero token; zero means "not leased".
func newLeaseToken() int64 {
	for {
		if t := rand.Int64(); t != 0 {
			return t
		}
	}
}
