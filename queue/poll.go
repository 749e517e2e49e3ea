package queue

import "time"

// MaxPoll is the longest an idle receiver of this queue should wait between
// polls when no wake-up arrives (the store's Options.MaxPoll).
func (q *sqlQueue) MaxPoll() time.Duration { return q.store.opts.MaxPoll }
