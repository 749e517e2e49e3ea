package queue

import (
	"context"
	"fmt"
	"time"
)

// The distributor's view (DistributorViews): what each distributor
// instance records of itself and of the worker sessions it knows, for
// `ferry workers`. Soft state: rewritten whole every few seconds.

// DistributorInstance is one distributor process on a control queue, as it
// last recorded itself.
type DistributorInstance struct {
	// ControlQueue is the URI of the control queue the instance serves.
	ControlQueue string `json:"controlQueue"`
	// Owner is the instance's lock owner id, unique per process start.
	Owner string `json:"owner"`
	// Name is the distributor endpoint's name.
	Name string `json:"name"`
	// Host and PID say where the instance runs.
	Host string `json:"host"`
	PID  int    `json:"pid"`
	// Active is true for the instance holding the control queue, false
	// for a standby.
	Active bool `json:"active"`
	// Interval is how often the instance records itself: a record older
	// than a few intervals is stale.
	Interval time.Duration `json:"interval"`
	// ReclaimAfter is the distributor's silence limit for workers.
	ReclaimAfter time.Duration `json:"reclaimAfter"`
	// Updated is when the instance last recorded itself.
	Updated time.Time `json:"updated"`
}

// WorkerView is one worker session as the active distributor saw it.
type WorkerView struct {
	// ID and Session identify the worker session.
	ID      string `json:"id"`
	Session string `json:"session"`
	// Queue is the URI of the worker's work queue.
	Queue string `json:"queue"`
	// Threads is how many threads the worker said it has (0: not known,
	// its Started was not seen); Idle is how many of them wait for work.
	Threads int `json:"threads"`
	Idle    int `json:"idle"`
	// LastSeen is when the distributor last heard from the session.
	LastSeen time.Time `json:"lastSeen"`
	// Depth is how many messages its work queue holds; -1 when the count
	// failed or timed out.
	Depth int64 `json:"depth"`
	// Stopping is set once the session said it is stopping.
	Stopping bool `json:"stopping"`
	// Updated is when this view of the session was recorded.
	Updated time.Time `json:"updated"`
}

// DistributorView is what is recorded for one control queue.
type DistributorView struct {
	// Instances are the distributor processes, the active one first.
	Instances []DistributorInstance `json:"instances"`
	// Workers are the worker sessions the active distributor knew, by id.
	Workers []WorkerView `json:"workers"`
}

// RecordDistributor stores or refreshes inst and prunes the instances of
// its control queue not updated since pruneBefore.
func (s *sqlStore) RecordDistributor(ctx context.Context, inst DistributorInstance, pruneBefore time.Time) error {
	if _, err := s.exec(ctx, s.q.viewRecord, inst.ControlQueue, inst.Owner, inst.Name, inst.Host, inst.PID,
		boolInt(inst.Active), inst.Interval.Microseconds(), inst.ReclaimAfter.Microseconds(), micros(inst.Updated)); err != nil {
		return fmt.Errorf("queue: record distributor %s of %s: %w", inst.Owner, inst.ControlQueue, err)
	}
	if _, err := s.exec(ctx, s.q.viewPrune, inst.ControlQueue, micros(pruneBefore)); err != nil {
		return fmt.Errorf("queue: prune distributors of %s: %w", inst.ControlQueue, err)
	}
	return nil
}

// ForgetDistributor deletes an instance's record.
func (s *sqlStore) ForgetDistributor(ctx context.Context, controlQueue, owner string) error {
	if _, err := s.exec(ctx, s.q.viewForget, controlQueue, owner); err != nil {
		return fmt.Errorf("queue: forget distributor %s of %s: %w", owner, controlQueue, err)
	}
	return nil
}

// RecordWorkerView replaces the recorded worker sessions of controlQueue.
func (s *sqlStore) RecordWorkerView(ctx context.Context, controlQueue string, updated time.Time, ws []WorkerView) error {
	defer s.lockWrites()()
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("queue: record worker view of %s: %w", controlQueue, err)
	}
	defer tx.Rollback()
	s.ops.Add(1)
	res, err := tx.ExecContext(ctx, s.q.viewClear, controlQueue)
	if err != nil {
		return fmt.Errorf("queue: record worker view of %s: %w", controlQueue, err)
	}
	s.wroteResult(res)
	for _, w := range ws {
		s.ops.Add(1)
		if _, err := tx.ExecContext(ctx, s.q.viewInsert, controlQueue, w.ID, w.Session, w.Queue, w.Threads, w.Idle,
			micros(w.LastSeen), w.Depth, boolInt(w.Stopping), micros(updated)); err != nil {
			return fmt.Errorf("queue: record worker view of %s: worker %s: %w", controlQueue, w.ID, err)
		}
		s.wrote(1)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("queue: record worker view of %s: commit: %w", controlQueue, err)
	}
	return nil
}

// DistributorView reads the instances and worker sessions of controlQueue.
func (s *sqlStore) DistributorView(ctx context.Context, controlQueue string) (DistributorView, error) {
	v := DistributorView{Instances: []DistributorInstance{}, Workers: []WorkerView{}}
	rows, err := s.db.QueryContext(ctx, s.q.viewInstances, controlQueue)
	if err != nil {
		return v, fmt.Errorf("queue: read distributors of %s: %w", controlQueue, err)
	}
	defer rows.Close()
	for rows.Next() {
		inst := DistributorInstance{ControlQueue: controlQueue}
		var active int
		var interval, reclaim, updated int64
		if err := rows.Scan(&inst.Owner, &inst.Name, &inst.Host, &inst.PID, &active, &interval, &reclaim, &updated); err != nil {
			return v, fmt.Errorf("queue: read distributors of %s: %w", controlQueue, err)
		}
		inst.Active = active != 0
		inst.Interval, inst.ReclaimAfter = time.Duration(interval)*time.Microsecond, time.Duration(reclaim)*time.Microsecond
		inst.Updated = fromMicros(updated)
		v.Instances = append(v.Instances, inst)
	}
	if err := rows.Err(); err != nil {
		return v, fmt.Errorf("queue: read distributors of %s: %w", controlQueue, err)
	}
	rows.Close()
	wrows, err := s.db.QueryContext(ctx, s.q.viewWorkers, controlQueue)
	if err != nil {
		return v, fmt.Errorf("queue: read worker view of %s: %w", controlQueue, err)
	}
	defer wrows.Close()
	for wrows.Next() {
		var w WorkerView
		var stopping int
		var seen, updated int64
		if err := wrows.Scan(&w.ID, &w.Session, &w.Queue, &w.Threads, &w.Idle, &seen, &w.Depth, &stopping, &updated); err != nil {
			return v, fmt.Errorf("queue: read worker view of %s: %w", controlQueue, err)
		}
		w.Stopping = stopping != 0
		w.LastSeen, w.Updated = fromMicros(seen), fromMicros(updated)
		v.Workers = append(v.Workers, w)
	}
	if err := wrows.Err(); err != nil {
		return v, fmt.Errorf("queue: read worker view of %s: %w", controlQueue, err)
	}
	return v, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
