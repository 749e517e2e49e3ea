package queue

import (
	"context"
	"time"
)

// Move takes a leased message off this queue and into dst: one UPDATE when
// dst is in the same database, enqueue then ack otherwise (at least once).
// Either way the message starts afresh in dst: visible now, not leased, its
// attempt count zero.
func (q *sqlQueue) Move(ctx context.Context, d Delivery, dst Queue, headers map[string]string) error {
	if err := q.checkLeased("move", d); err != nil {
		return err
	}
	if same := q.local(dst); same != nil {
		var h any
		if headers != nil {
			enc, err := encodeHeaders(headers)
			if err != nil {
				return q.errorf("move "+d.MessageID, err)
			}
			h = enc
		}
		res, err := q.store.execConsume(ctx, q.store.q.moveOne, same.name, micros(time.Now()), h, d.ID, d.LeaseToken)
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
	n, _, err := q.moveReady(ctx, dst, limit, setHeaders, false)
	return n, err
}

// moveReady is MoveReady; with rows it also returns the moved rows.
func (q *sqlQueue) moveReady(ctx context.Context, dst Queue, limit int, setHeaders map[string]string, rows bool) (int, []Moved, error) {
	if limit <= 0 {
		return 0, nil, nil
	}
	if same := q.local(dst); same != nil {
		patch, err := encodeHeaders(setHeaders)
		if err != nil {
			return 0, nil, q.errorf("move to "+dst.URI(), err)
		}
		if rows {
			args := []any{same.name, patch, q.name, micros(time.Now()), limit}
			if q.store.q.moveNotifies {
				args = append(args, q.store.channel, same.name)
			}
			moved, err := q.store.queryMoved(ctx, q.store.q.moveReadyRet, args...)
			if err != nil {
				return 0, nil, q.errorf("move to "+dst.URI(), err)
			}
			if len(moved) > 0 {
				q.store.woke(ctx, same.name, q.store.q.moveNotifies)
			}
			return len(moved), moved, nil
		}
		if q.store.q.moveNotifies {
			var n int
			q.store.ops.Add(1)
			err := q.store.consumeQueryRow(ctx, q.store.q.moveReady, same.name, patch, q.name, micros(time.Now()), limit,
				q.store.channel, same.name).Scan(&n)
			q.store.failed(ctx, err)
			if err != nil {
				return 0, nil, q.errorf("move to "+dst.URI(), err)
			}
			q.store.wrote(int64(n))
			if n > 0 {
				q.store.signals.fire(same.name)
			}
			return n, nil, nil
		}
		res, err := q.store.exec(ctx, q.store.q.moveReady, same.name, patch, q.name, micros(time.Now()), limit)
		if err != nil {
			return 0, nil, q.errorf("move to "+dst.URI(), err)
		}
		n, _ := res.RowsAffected()
		if n > 0 {
			q.store.notify(ctx, same.name)
		}
		return int(n), nil, nil
	}
	ds, err := q.Receive(ctx, limit, time.Minute)
	if err != nil || len(ds) == 0 {
		return 0, nil, err
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
		return 0, nil, q.errorf("move to "+dst.URI(), err)
	}
	var moved []Moved
	if rows {
		moved = make([]Moved, len(msgs))
		for i, m := range msgs {
			moved[i] = Moved{MessageID: m.MessageID, Headers: m.Headers}
		}
	}
	if err := q.Ack(ctx, ds...); err != nil {
		return len(ds), moved, err
	}
	return len(ds), moved, nil
}
