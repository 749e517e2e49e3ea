package queue

import (
	"context"
	"fmt"
	"time"
)

// WorkerRecord is a worker session as a distributor last saw it.
type WorkerRecord struct {
	ID       string    `db:"worker_id"`
	Session  string    `db:"session"`
	Inbox    string    `db:"inbox"`
	LastSeen time.Time `db:"-"`
	Seen     int64     `db:"last_seen"`
}

// RecordWorker stores (or refreshes) a worker session of the distributor
// whose control queue is controlQueue. An older session never replaces a
// newer one (session ids sort by start).
func (s *sqlStore) RecordWorker(ctx context.Context, controlQueue string, w WorkerRecord) error {
	_, err := s.exec(ctx, s.db.Rebind(`INSERT INTO ferry_workers (control_queue, worker_id, session, inbox, last_seen)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (control_queue, worker_id) DO UPDATE SET session = excluded.session, inbox = excluded.inbox, last_seen = excluded.last_seen
WHERE excluded.session >= ferry_workers.session`), controlQueue, w.ID, w.Session, w.Inbox, micros(w.LastSeen))
	if err != nil {
		return fmt.Errorf("queue: record worker %s of %s: %w", w.ID, controlQueue, err)
	}
	return nil
}

// Workers lists the worker sessions recorded for a control queue.
func (s *sqlStore) Workers(ctx context.Context, controlQueue string) ([]WorkerRecord, error) {
	var out []WorkerRecord
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT worker_id, session, inbox, last_seen FROM ferry_workers
WHERE control_queue = ? ORDER BY worker_id`), controlQueue)
	if err != nil {
		return nil, fmt.Errorf("queue: list workers of %s: %w", controlQueue, err)
	}
	for i := range out {
		out[i].LastSeen = fromMicros(out[i].Seen)
	}
	return out, nil
}

// ForgetWorker removes a worker's record if it still holds session.
func (s *sqlStore) ForgetWorker(ctx context.Context, controlQueue, workerID, session string) error {
	_, err := s.exec(ctx, s.db.Rebind(`DELETE FROM ferry_workers WHERE control_queue = ? AND worker_id = ? AND session = ?`),
		controlQueue, workerID, session)
	if err != nil {
		return fmt.Errorf("queue: forget worker %s of %s: %w", workerID, controlQueue, err)
	}
	return nil
}

// ReleaseLeased ends every lease held on the queue's messages and returns
// how many it ended. It is for a consumer that owns the queue alone, such
// as a worker's own work queue, when it starts a new session: what its
// predecessor held is handled now rather than when those leases run out.
// Delivery counts are kept, so each comes back as a redelivery.
func (q *sqlQueue) ReleaseLeased(ctx context.Context) (int, error) {
	now := micros(time.Now())
	res, err := q.store.execConsume(ctx, q.store.db.Rebind(`UPDATE ferry_messages SET visible_at = ?, lease_token = 0
WHERE queue = ? AND lease_token <> 0 AND visible_at > ?`), now, q.name, now)
	if err != nil {
		return 0, q.errorf("release leased", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, q.errorf("release leased", err)
	}
	if n > 0 {
		q.store.notify(ctx, q.name)
	}
	return int(n), nil
}
