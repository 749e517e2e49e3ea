package distributor

import (
	"time"

	"github.com/ferrybus/ferry/queue"
)

// StaleIntervals is how many of its recording intervals a recorded view may
// miss before it is called stale.
const StaleIntervals = 3

// ViewStates judges a recorded view (queue.Store.DistributorView) as of
// now, for `ferry workers` and the dashboard: each instance is "active",
// "standby" or "stale" (not recorded for StaleIntervals of its interval),
// each worker "ok", "stopping", "silent" (not heard from for the
// distributor's ReclaimAfter: its queue is being returned) or "stale" (the
// view of it is old: no active distributor records). The states are in
// the view's order.
func ViewStates(v queue.DistributorView, now time.Time) (instances, workers []string) {
	every, reclaim := DefaultViewInterval, time.Duration(0)
	for i, inst := range v.Instances {
		if i == 0 || inst.Active {
			every, reclaim = inst.Interval, inst.ReclaimAfter
		}
	}
	instances = make([]string, 0, len(v.Instances))
	for _, inst := range v.Instances {
		state := "standby"
		if inst.Active {
			state = "active"
		}
		if now.Sub(inst.Updated) > StaleIntervals*inst.Interval {
			state = "stale"
		}
		instances = append(instances, state)
	}
	workers = make([]string, 0, len(v.Workers))
	for _, w := range v.Workers {
		state := "ok"
		switch {
		case now.Sub(w.Updated) > StaleIntervals*every:
			state = "stale"
		case w.Stopping:
			state = "stopping"
		case reclaim > 0 && now.Sub(w.LastSeen) > reclaim:
			state = "silent"
		}
		workers = append(workers, state)
	}
	return instances, workers
}
