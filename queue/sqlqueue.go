package queue

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// insertChunk bounds rows per INSERT (8 parameters each) to stay under the
// parameter limits of both databases.
const insertChunk = 1000

// ackChunk bounds pairs per DELETE on SQLite.
const ackChunk = 400

// purgeChunk bounds rows per DELETE in Purge, to keep transactions short.
const purgeChunk = 5000

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

// Enqueue stores messages in the queue: all of them or, on error, none.
func (q *sqlQueue) Enqueue(ctx context.Context, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	defer q.store.lockWrites()()
	if len(msgs) <= insertChunk {
		woke, err := q.enqueue(ctx, q.store.db, msgs)
		if err != nil {
			return err
		}
		if woke {
			q.store.signals.fire(q.name)
		}
		return nil
	}
	// Several INSERTs: one transaction keeps the call all or nothing.
	tx, err := q.store.db.BeginTx(ctx, nil)
	if err != nil {
		return q.errorf("enqueue", fmt.Errorf("begin: %w", err))
	}
	woke, err := q.enqueue(ctx, tx, msgs)
	if err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return q.errorf("enqueue", fmt.Errorf("commit: %w", err))
	}
	if woke {
		q.store.signals.fire(q.name)
	}
	return nil
}

// EnqueueTx stores messages inside the caller's transaction (a *sql.Tx or
// *sqlx.Tx on this queue's database): they exist only if it commits. On
// PostgreSQL receivers, in this process too, are woken at commit by the
// notification the INSERT carries; on SQLite this process's receivers are
// signalled at once and find the messages once the caller has committed, at
// their next poll at the latest.
func (q *sqlQueue) EnqueueTx(ctx context.Context, tx Execer, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	woke, err := q.enqueue(ctx, tx, msgs)
	if err != nil {
		return err
	}
	if woke && q.store.dialect == SQLite {
		q.store.signals.fire(q.name)
	}
	return nil
}

// enqueue inserts msgs with ex and reports whether any of them is visible
// now, so that receivers in this process should be woken. Every message is
// checked before the first INSERT, so a bad one stores nothing.
func (q *sqlQueue) enqueue(ctx context.Context, ex Execer, msgs []Message) (bool, error) {
	now := time.Now()
	headers := make([]string, len(msgs))
	for i, m := range msgs {
		if m.MessageID == "" {
			return false, q.errorf("enqueue", fmt.Errorf("message %d of %d has no MessageID", i+1, len(msgs)))
		}
		if err := CheckPriority(m.Priority); err != nil {
			return false, q.errorf("enqueue "+m.MessageID, err)
		}
		h, err := encodeHeaders(m.Headers)
		if err != nil {
			return false, q.errorf("enqueue "+m.MessageID, err)
		}
		headers[i] = h
	}
	woke := false
	for start := 0; start < len(msgs); start += insertChunk {
		chunk := msgs[start:min(start+insertChunk, len(msgs))]
		args := make([]any, 0, len(chunk)*8+2)
		notify := false
		for i, m := range chunk {
			vis := m.VisibleAt
			if vis.IsZero() || !vis.After(now) {
				vis = now
				notify = true
			}
			body := m.Body
			if body == nil {
				body = []byte{}
			}
			args = append(args, q.name, m.MessageID, m.Type, m.Priority, micros(vis), micros(now), headers[start+i], body)
		}
		if notify && q.store.dialect == Postgres {
			args = append(args, q.store.channel, q.name)
		}
		q.store.ops.Add(1)
		if _, err := ex.ExecContext(ctx, q.store.q.insert(len(chunk), notify), args...); err != nil {
			return false, q.errorf("enqueue", err)
		}
		woke = woke || notify
	}
	return woke, nil
}

// Receive leases up to max visible messages, highest priority then oldest first.
func (q *sqlQueue) Receive(ctx context.Context, max int, lease time.Duration) ([]Delivery, error) {
	if max <= 0 {
		return nil, nil
	}
	if lease <= 0 {
		return nil, q.errorf("receive", fmt.Errorf("lease must be positive, got %s", lease))
	}
	now := time.Now()
	token := newLeaseToken()
	unlock := q.store.lockWrites()
	q.store.ops.Add(1)
	rows, err := q.store.consumeQuery(ctx, q.store.q.receive, micros(now.Add(lease)), token, q.name, micros(now), max)
	if err != nil {
		unlock()
		return nil, q.errorf("receive", err)
	}
	ds, err := q.scan(rows)
	unlock()
	if err != nil {
		return nil, q.errorf("receive", err)
	}
	sort.Slice(ds, func(i, j int) bool {
		if ds[i].Priority != ds[j].Priority {
			return ds[i].Priority > ds[j].Priority
		}
		return ds[i].ID < ds[j].ID
	})
	return ds, nil
}

// Wake returns a channel closed at the next enqueue signal for this queue.
// Take it before Receive, so that a message enqueued in between is not missed.
func (q *sqlQueue) Wake() <-chan struct{} {
	return q.store.wake(q.name)
}

// minPoll is the first idle wait of ReceiveWait; it doubles up to MaxPoll.
const minPoll = 10 * time.Millisecond

// ReceiveWait leases up to max visible messages, waiting while there are none
// until a wake-up arrives or an idle poll interval passes (doubling from 10ms
// to the store's MaxPoll). It returns at least one message, or ctx's error.
func (q *sqlQueue) ReceiveWait(ctx context.Context, max int, lease time.Duration) ([]Delivery, error) {
	poll := minPoll
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		wake := q.Wake()
		// A cancelled ctx must not cut a receive short: the database could
		// lease rows whose result the driver then drops.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		ds, err := q.Receive(rctx, max, lease)
		cancel()
		if err != nil || len(ds) > 0 {
			return ds, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if timer == nil {
			timer = time.NewTimer(poll)
		} else {
			timer.Reset(poll)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wake:
			poll = minPoll
		case <-timer.C:
			poll = min(2*poll, q.store.opts.MaxPoll)
		}
	}
}

// Extend renews the lease of d to end lease from now.
func (q *sqlQueue) Extend(ctx context.Context, d Delivery, lease time.Duration) error {
	if err := q.checkLeased("extend", d); err != nil {
		return err
	}
	res, err := q.store.execConsume(ctx, q.store.q.extend, micros(time.Now().Add(lease)), d.ID, d.LeaseToken)
	if err != nil {
		return q.errorf("extend "+d.MessageID, err)
	}
	return q.oneRow(res, "extend", d)
}

// Ack removes handled messages.
func (q *sqlQueue) Ack(ctx context.Context, ds ...Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	for _, d := range ds {
		if err := q.checkLeased("ack", d); err != nil {
			return err
		}
	}
	var deleted int64
	if q.store.dialect == Postgres {
		ids := make([]int64, len(ds))
		toks := make([]int64, len(ds))
		for i, d := range ds {
			ids[i], toks[i] = d.ID, d.LeaseToken
		}
		q.store.ops.Add(1)
		res, err := q.store.consume.ExecContext(ctx, q.store.q.ack(len(ds)), pq.Array(ids), pq.Array(toks))
		if err != nil {
			return q.errorf("ack", err)
		}
		deleted, _ = res.RowsAffected()
	} else {
		defer q.store.lockWrites()()
		for start := 0; start < len(ds); start += ackChunk {
			chunk := ds[start:min(start+ackChunk, len(ds))]
			args := make([]any, 0, 2*len(chunk))
			for _, d := range chunk {
				args = append(args, d.ID, d.LeaseToken)
			}
			q.store.ops.Add(1)
			res, err := q.store.db.ExecContext(ctx, q.store.q.ack(len(chunk)), args...)
			if err != nil {
				return q.errorf("ack", err)
			}
			n, _ := res.RowsAffected()
			deleted += n
		}
	}
	if deleted != int64(len(ds)) {
		if len(ds) == 1 {
			return q.errorf("ack "+ds[0].MessageID, ErrLeaseLost)
		}
		return q.errorf("ack", fmt.Errorf("%d of %d messages: %w", int64(len(ds))-deleted, len(ds), ErrLeaseLost))
	}
	return nil
}

// Release gives a leased message back to the queue.
func (q *sqlQueue) Release(ctx context.Context, d Delivery, opts ReleaseOptions) error {
	if err := q.checkLeased("release", d); err != nil {
		return err
	}
	var headers any // NULL keeps the stored headers
	if opts.Headers != nil {
		h, err := encodeHeaders(opts.Headers)
		if err != nil {
			return q.errorf("release "+d.MessageID, err)
		}
		headers = h
	}
	uncount := 0
	if opts.Uncount {
		uncount = 1
	}
	res, err := q.store.execConsume(ctx, q.store.q.release, micros(time.Now().Add(opts.Delay)), uncount, headers, headers, d.ID, d.LeaseToken)
	if err != nil {
		return q.errorf("release "+d.MessageID, err)
	}
	if err := q.oneRow(res, "release", d); err != nil {
		return err
	}
	if opts.Delay <= 0 {
		q.store.notify(ctx, q.name)
	}
	return nil
}

// Move takes a leased message off this queue and into dst: one UPDATE when
// dst is in the same database, enqueue then ack otherwise (at least once).
// Either way the message starts afresh in dst: visible now, not leased, its
// attempt count zero.
func (q *sqlQueue) Move(ctx context.Context, d Delivery, dst Queue, headers map[string]string) error {
	if err := q.checkLeased("move", d); err != nil {
		return err
	}
	if same, ok := dst.(*sqlQueue); ok && same.store == q.store {
		var h any
		if headers != nil {
			enc, err := encodeHeaders(headers)
			if err != nil {
				return q.errorf("move "+d.MessageID, err)
			}
			h = enc
		}
		res, err := q.store.execConsume(ctx, q.store.q.moveSame, same.name, micros(time.Now()), h, d.ID, d.LeaseToken)
		if err != nil {
			return q.errorf("move "+d.MessageID+" to "+dst.URI(), err)
		}
		if err := q.oneRow(res, "move", d); err != nil {
			return err
		}
		q.store.notify(ctx, same.name)
		return nil
	}
	m := d.Message
	m.VisibleAt = time.Time{}
	if headers != nil {
		m.Headers = headers
	}
	if err := dst.Enqueue(ctx, m); err != nil {
		return q.errorf("move "+d.MessageID+" to "+dst.URI(), err)
	}
	return q.Ack(ctx, d)
}

// MoveReady moves up to limit visible messages, in receive order, to dst and
// returns how many it moved. Within one database it is a single UPDATE that
// also merges setHeaders (when not nil) into each message's headers; across
// databases the messages are received, enqueued in dst, then acked. As with
// Move, they start afresh in dst: not leased (the holder of a lease that had
// ended can no longer ack, extend or release them), attempt count zero.
func (q *sqlQueue) MoveReady(ctx context.Context, dst Queue, limit int, setHeaders map[string]string) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	if same, ok := dst.(*sqlQueue); ok && same.store == q.store {
		patch, err := encodeHeaders(setHeaders)
		if err != nil {
			return 0, q.errorf("move to "+dst.URI(), err)
		}
		if q.store.dialect == Postgres {
			var n int
			q.store.ops.Add(1)
			err := q.store.consumeQueryRow(ctx, q.store.q.moveReadyNotify, same.name, patch, q.name, micros(time.Now()), limit,
				q.store.channel, same.name).Scan(&n)
			if err != nil {
				return 0, q.errorf("move to "+dst.URI(), err)
			}
			if n > 0 {
				q.store.signals.fire(same.name)
			}
			return n, nil
		}
		res, err := q.store.exec(ctx, q.store.q.moveReady, same.name, patch, q.name, micros(time.Now()), limit)
		if err != nil {
			return 0, q.errorf("move to "+dst.URI(), err)
		}
		n, _ := res.RowsAffected()
		if n > 0 {
			q.store.notify(ctx, same.name)
		}
		return int(n), nil
	}
	ds, err := q.Receive(ctx, limit, time.Minute)
	if err != nil || len(ds) == 0 {
		return 0, err
	}
	msgs := make([]Message, len(ds))
	for i, d := range ds {
		msgs[i] = d.Message
		msgs[i].VisibleAt = time.Time{}
		if setHeaders != nil {
			h := make(map[string]string, len(d.Headers)+len(setHeaders))
			for k, v := range d.Headers {
				h[k] = v
			}
			for k, v := range setHeaders {
				h[k] = v
			}
			msgs[i].Headers = h
		}
	}
	if err := dst.Enqueue(ctx, msgs...); err != nil {
		// Give them back at once rather than waiting for the lease to end.
		for _, d := range ds {
			_ = q.Release(ctx, d, ReleaseOptions{Uncount: true})
		}
		return 0, q.errorf("move to "+dst.URI(), err)
	}
	if err := q.Ack(ctx, ds...); err != nil {
		return len(ds), err
	}
	return len(ds), nil
}

// Count returns the number of messages by state.
func (q *sqlQueue) Count(ctx context.Context) (Counts, error) {
	now := micros(time.Now())
	var c Counts
	q.store.ops.Add(1)
	err := q.store.db.QueryRowxContext(ctx, q.store.q.count, now, now, now, q.name).Scan(&c.Ready, &c.Deferred, &c.InFlight)
	if err != nil {
		return Counts{}, q.errorf("count", err)
	}
	return c, nil
}

// Peek lists up to limit messages with row id above afterID, in id order,
// in any state, without leasing them.
func (q *sqlQueue) Peek(ctx context.Context, afterID int64, limit int) ([]Delivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	q.store.ops.Add(1)
	rows, err := q.store.db.QueryxContext(ctx, q.store.q.peek, q.name, afterID, limit)
	if err != nil {
		return nil, q.errorf("peek", err)
	}
	ds, err := q.scan(rows)
	if err != nil {
		return nil, q.errorf("peek", err)
	}
	return ds, nil
}

// Purge deletes every message that was in the queue when it started, in
// batches, and returns how many it deleted. Messages enqueued while it runs
// are kept, so it ends even under steady inflow.
func (q *sqlQueue) Purge(ctx context.Context) (int64, error) {
	var maxID int64
	if err := q.store.db.GetContext(ctx, &maxID, q.store.q.maxID, q.name); err != nil {
		return 0, q.errorf("purge", err)
	}
	var total int64
	for {
		res, err := q.store.exec(ctx, q.store.q.purge, q.name, maxID, purgeChunk)
		if err != nil {
			return total, q.errorf("purge", err)
		}
		n, _ := res.RowsAffected()
		total += n
		if n < purgeChunk {
			return total, nil
		}
	}
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

// execConsume runs a consumer-side write (lease, release, move) on the
// consume pool, serialised on SQLite.
func (s *sqlStore) execConsume(ctx context.Context, query string, args ...any) (sql.Result, error) {
	defer s.lockWrites()()
	s.ops.Add(1)
	return s.consume.ExecContext(ctx, query, args...)
}

// exec runs a write on the pool, serialised on SQLite.
func (s *sqlStore) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	defer s.lockWrites()()
	s.ops.Add(1)
	return s.db.ExecContext(ctx, query, args...)
}

func encodeHeaders(h map[string]string) (string, error) {
	if len(h) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(h)
	if err != nil {
		return "", fmt.Errorf("headers: %w", err)
	}
	return string(b), nil
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

// AckTx removes a handled message inside the caller's transaction on this
// queue's database: the ack takes effect only if the transaction commits.
func (q *sqlQueue) AckTx(ctx context.Context, tx Execer, d Delivery) error {
	if err := q.checkLeased("ack", d); err != nil {
		return err
	}
	q.store.ops.Add(1)
	res, err := tx.ExecContext(ctx, q.store.db.Rebind(`DELETE FROM ferry_messages WHERE id = ? AND lease_token = ?`), d.ID, d.LeaseToken)
	if err != nil {
		return q.errorf("ack "+d.MessageID, err)
	}
	return q.oneRow(res, "ack", d)
}
