package queue

import (
	"context"
	"fmt"
	"time"
)

// The distributor's storage (WorkerRecords): the worker sessions a
// distributor knows, kept so that a new active distributor starts with them.

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
	_, err := s.exec(ctx, s.q.recordWorker, controlQueue, w.ID, w.Session, w.Inbox, micros(w.LastSeen))
	if err != nil {
		return fmt.Errorf("queue: record worker %s of %s: %w", w.ID, controlQueue, err)
	}
	return nil
}

// Workers lists the worker sessions recorded for a control queue.
func (s *sqlStore) Workers(ctx context.Context, controlQueue string) ([]WorkerRecord, error) {
	var out []WorkerRecord
	err := s.db.SelectContext(ctx, &out, s.q.listWorkers, controlQueue)
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
	_, err := s.exec(ctx, s.q.forgetWorker, controlQueue, workerID, session)
	if err != nil {
		return fmt.Errorf("queue: forget worker %s of %s: %w", workerID, controlQueue, err)
	}
	return nil
}
