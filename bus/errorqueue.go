package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/ferrybus/ferry/queue"
)

// ErrNotFound is returned (wrapped) by ErrorQueue.Show when no message has the id.
var ErrNotFound = errors.New("bus: message not found")

// ErrNoSourceQueue is returned (wrapped) by ErrorQueue.Retry when messages
// record no source queue and RetryOptions.To names none: they stay put.
var ErrNoSourceQueue = errors.New("bus: no source queue recorded")

// ErrorQueue lists, shows, returns and discards the messages of one error
// queue. Its methods are safe for concurrent use. Bulk operations read the
// queue a page at a time and act on each page with one statement per
// destination, so they touch any number of messages in few round trips.
type ErrorQueue struct {
	conns *queue.Connections
	q     queue.Queue

	// BatchSize is the number of messages read, moved or deleted per
	// statement. Default queue.DefaultBatchSize (1000).
	BatchSize int
}

// OpenErrorQueue returns the error queue at uri (sql://CONNECTION/QUEUE),
// resolving it, and the source queues its messages return to, with conns.
func OpenErrorQueue(ctx context.Context, conns *queue.Connections, uri string) (*ErrorQueue, error) {
	q, err := conns.Queue(ctx, uri)
	if err != nil {
		return nil, fmt.Errorf("bus: error queue %s: %w", uri, err)
	}
	return &ErrorQueue{conns: conns, q: q}, nil
}

// URI is the error queue's address.
func (eq *ErrorQueue) URI() string { return eq.q.URI() }

// Queue is the underlying queue.
func (eq *ErrorQueue) Queue() queue.Queue { return eq.q }

func (eq *ErrorQueue) batch() int {
	if eq.BatchSize <= 0 {
		return queue.DefaultBatchSize
	}
	return eq.BatchSize
}

func (eq *ErrorQueue) errorf(format string, args ...any) error {
	return fmt.Errorf("bus: error queue %s: "+format, append([]any{eq.q.URI()}, args...)...)
}

// Filter selects messages of an error queue. Every condition that is set
// must hold; the zero Filter selects every message.
type Filter struct {
	// IDs are message ids (envelope ids); empty: any.
	IDs []string `json:"ids,omitempty"`
	// Type is a message type pattern (path.Match: "orders.*").
	Type string `json:"type,omitempty"`
	// Error is text the last failure's error must contain.
	Error string `json:"error,omitempty"`
	// Kind is the kind of the last failure: one of the Kind constants
	// ("error", "panic", "decode", "no-handler", "expired", "permanent",
	// "oversize", "poison").
	Kind string `json:"kind,omitempty"`
	// Since keeps messages whose last failure was at or after it.
	Since time.Time `json:"since,omitzero"`
	// Before keeps messages whose last failure was before it.
	Before time.Time `json:"before,omitzero"`
	// SourceQueue is the URI of the queue the messages failed in.
	SourceQueue string `json:"sourceQueue,omitempty"`
}

func (f Filter) validate() error {
	if f.Type != "" {
		if _, err := path.Match(f.Type, ""); err != nil {
			return fmt.Errorf("filter type: bad pattern %q", f.Type)
		}
	}
	return nil
}

func (f Filter) match(m *FailedMessage) bool {
	if f.Type != "" {
		if ok, _ := path.Match(f.Type, m.Type); !ok {
			return false
		}
	}
	if f.Error != "" && !strings.Contains(m.Error, f.Error) {
		return false
	}
	if f.Kind != "" && m.Kind != f.Kind {
		return false
	}
	if !f.Since.IsZero() && m.FailedAt.Before(f.Since) {
		return false
	}
	if !f.Before.IsZero() && !m.FailedAt.Before(f.Before) {
		return false
	}
	if f.SourceQueue != "" && m.SourceQueue != f.SourceQueue {
		return false
	}
	return true
}

// FailedMessage is a message of an error queue, summarised.
type FailedMessage struct {
	// Row is the store's row id: the paging cursor of List.
	Row int64 `json:"row"`
	// ID is the message (envelope) id.
	ID string `json:"id"`
	// Type is the message type name.
	Type string `json:"type"`
	// SourceQueue is the URI of the queue the message failed in.
	SourceQueue string `json:"sourceQueue,omitempty"`
	// Error is the last failure's error text.
	Error string `json:"error"`
	// Kind is the last failure's kind.
	Kind string `json:"kind,omitempty"`
	// FailedAt is the time of the last failure.
	FailedAt time.Time `json:"failedAt,omitzero"`
	// Failures is the number of failed attempts recorded.
	Failures int `json:"failures"`
	// EnqueuedAt is when the row was first stored.
	EnqueuedAt time.Time `json:"enqueuedAt"`
	// BodyBytes is the size of the body.
	BodyBytes int `json:"bodyBytes"`
	// Envelope is the whole message, its failure history decoded: set by Show only.
	Envelope *Envelope `json:"envelope,omitempty"`
	// HeaderErrors reports reserved headers that could not be decoded: set by Show only.
	HeaderErrors string `json:"headerErrors,omitempty"`
}

// needsHistory reports whether the filter reads the failure history.
func (f Filter) needsHistory() bool {
	return f.Kind != "" || !f.Since.IsZero() || !f.Before.IsZero()
}

// failedMessage summarises a row of the error queue; without history it
// skips decoding the failure history (Failures, Kind and FailedAt stay
// zero) unless the error text is only there. Malformed failure history is
// tolerated: the row must stay listable to be repaired.
func failedMessage(d queue.Delivery, history bool) FailedMessage {
	m := FailedMessage{
		Row:         d.ID,
		ID:          d.MessageID,
		Type:        d.Type,
		SourceQueue: d.Headers[HeaderSourceQueue],
		Error:       d.Headers[HeaderError],
		EnqueuedAt:  d.EnqueuedAt,
		BodyBytes:   len(d.Body),
	}
	if !history && m.Error != "" {
		return m
	}
	var fs []Failure
	if h := d.Headers[HeaderFailures]; h != "" && json.Unmarshal([]byte(h), &fs) == nil && len(fs) > 0 {
		last := fs[len(fs)-1]
		m.Failures = len(fs)
		m.Kind = last.Kind
		m.FailedAt = last.At
		if m.Error == "" {
			m.Error = last.Error
		}
	}
	return m
}

// ListOptions select a page of List.
type ListOptions struct {
	Filter
	// After is a cursor: only messages with Row above it are listed. Pass
	// the previous page's Next to continue.
	After int64 `json:"after,omitempty"`
	// Limit bounds the page. Default 100.
	Limit int `json:"limit,omitempty"`
}

// ListPage is one page of List.
type ListPage struct {
	// Messages match the filter, in row (arrival) order.
	Messages []FailedMessage `json:"messages"`
	// Next is the After of the next page, or zero when there is none. A
	// next page may turn out empty.
	Next int64 `json:"next,omitempty"`
}

// List returns a page of the messages that match opts.Filter, oldest first.
func (eq *ErrorQueue) List(ctx context.Context, opts ListOptions) (ListPage, error) {
	limit := opts.Limit
	if limit <= 0 {
		limit = 100
	}
	page := ListPage{Messages: []FailedMessage{}}
	err := eq.scan(ctx, opts.Filter, opts.After, true, func(ms []FailedMessage) (bool, error) {
		for _, m := range ms {
			page.Messages = append(page.Messages, m)
			if len(page.Messages) == limit {
				page.Next = m.Row
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return ListPage{}, err
	}
	return page, nil
}

// Count returns how many messages match f.
func (eq *ErrorQueue) Count(ctx context.Context, f Filter) (int, error) {
	n := 0
	err := eq.scan(ctx, f, 0, false, func(ms []FailedMessage) (bool, error) {
		n += len(ms)
		return false, nil
	})
	return n, err
}

// Show returns the message with id, its envelope and whole failure history
// decoded. It wraps ErrNotFound when the queue holds no such message.
func (eq *ErrorQueue) Show(ctx context.Context, id string) (*FailedMessage, error) {
	ds, err := eq.q.FindMessages(ctx, []string{id})
	if err != nil {
		return nil, eq.errorf("show %s: %w", id, err)
	}
	if len(ds) == 0 {
		return nil, eq.errorf("show %s: %w", id, ErrNotFound)
	}
	d := ds[0]
	m := failedMessage(d, true)
	env, err := envelopeFrom(d, eq.q.URI())
	if err != nil {
		m.HeaderErrors = err.Error()
	}
	if env.Headers != nil {
		// The error queue's own bookkeeping is in the summary.
		delete(env.Headers, HeaderSourceQueue)
		delete(env.Headers, HeaderError)
		if len(env.Headers) == 0 {
			env.Headers = nil
		}
	}
	m.Envelope = env
	return &m, nil
}

// RetryOptions say how Retry returns messages.
type RetryOptions struct {
	// ResetFailures clears the failure history, so the message gets the
	// retry policy's full number of attempts again. Without it the history
	// is kept and a message that fails once more is parked at once.
	ResetFailures bool `json:"resetFailures,omitempty"`
	// To, when set, is the queue URI messages go to instead of the source
	// queue each one recorded.
	To string `json:"to,omitempty"`
	// Progress, when set, is called after each batch with the running
	// total of messages returned.
	Progress func(done int) `json:"-"`
}

// Retry returns the messages that match f to the queue each failed in
// (header ferry.source-queue), or to opts.To, and reports how many it
// returned. They are visible at once, their delivery count is zero and the
// error queue's headers (ferry.source-queue, ferry.error) are removed; the
// failure history is kept unless opts.ResetFailures. Messages with no
// recorded source are left in place and reported with ErrNoSourceQueue.
func (eq *ErrorQueue) Retry(ctx context.Context, f Filter, opts RetryOptions) (int, error) {
	drop := []string{HeaderSourceQueue, HeaderError}
	if opts.ResetFailures {
		drop = append(drop, HeaderFailures)
	}
	var to queue.Queue
	if opts.To != "" {
		var err error
		if to, err = eq.conns.Queue(ctx, opts.To); err != nil {
			return 0, eq.errorf("retry to %s: %w", opts.To, err)
		}
	}
	dsts := map[string]queue.Queue{}
	done, orphans := 0, 0
	err := eq.scan(ctx, f, 0, false, func(ms []FailedMessage) (bool, error) {
		groups := map[queue.Queue][]int64{}
		var order []queue.Queue
		for _, m := range ms {
			dst := to
			if dst == nil {
				src := m.SourceQueue
				if src == "" {
					orphans++
					continue
				}
				if dst = dsts[src]; dst == nil {
					q, err := eq.conns.Queue(ctx, src)
					if err != nil {
						return true, eq.errorf("retry %s to its source queue %s: %w", m.ID, src, err)
					}
					dst, dsts[src] = q, q
				}
			}
			if _, ok := groups[dst]; !ok {
				order = append(order, dst)
			}
			groups[dst] = append(groups[dst], m.Row)
		}
		for _, dst := range order {
			_, err := eq.q.MoveRows(ctx, groups[dst], dst, queue.BulkOptions{
				BatchSize:   eq.batch(),
				DropHeaders: drop,
				OnBatch: func(n int) {
					done += n
					if opts.Progress != nil {
						opts.Progress(done)
					}
				},
			})
			if err != nil {
				return true, eq.errorf("retry %d message(s) to %s: %w", len(groups[dst]), dst.URI(), err)
			}
		}
		return false, nil
	})
	if err != nil {
		return done, err
	}
	if orphans > 0 {
		return done, eq.errorf("%d message(s) left in place: %w (retry them with a destination)", orphans, ErrNoSourceQueue)
	}
	return done, nil
}

// DiscardOptions say how Discard reports progress.
type DiscardOptions struct {
	// Progress, when set, is called after each batch with the running
	// total of messages discarded.
	Progress func(done int) `json:"-"`
}

// Discard deletes the messages that match f and reports how many it deleted.
func (eq *ErrorQueue) Discard(ctx context.Context, f Filter, opts DiscardOptions) (int, error) {
	done := 0
	err := eq.scan(ctx, f, 0, false, func(ms []FailedMessage) (bool, error) {
		ids := make([]int64, len(ms))
		for i, m := range ms {
			ids[i] = m.Row
		}
		_, err := eq.q.DeleteRows(ctx, ids, queue.BulkOptions{
			BatchSize: eq.batch(),
			OnBatch: func(n int) {
				done += n
				if opts.Progress != nil {
					opts.Progress(done)
				}
			},
		})
		if err != nil {
			return true, eq.errorf("discard %d message(s): %w", len(ids), err)
		}
		return false, nil
	})
	return done, err
}

// scan calls fn with the messages that match f and whose row is above
// after, a page of at most BatchSize at a time, in row order, until fn says
// stop. With summaries the messages are complete; without, only what f
// and the bulk operations read is decoded. Messages that arrive while it runs are not visited, so it ends
// under steady inflow.
func (eq *ErrorQueue) scan(ctx context.Context, f Filter, after int64, summaries bool, fn func([]FailedMessage) (stop bool, err error)) error {
	if err := f.validate(); err != nil {
		return eq.errorf("%w", err)
	}
	batch := eq.batch()
	history := summaries || f.needsHistory()
	pick := func(ds []queue.Delivery) []FailedMessage {
		var out []FailedMessage
		for _, d := range ds {
			if d.ID <= after {
				continue
			}
			m := failedMessage(d, history)
			if f.match(&m) {
				out = append(out, m)
			}
		}
		return out
	}
	if len(f.IDs) > 0 {
		for start := 0; start < len(f.IDs); start += batch {
			ds, err := eq.q.FindMessages(ctx, f.IDs[start:min(start+batch, len(f.IDs))])
			if err != nil {
				return eq.errorf("find messages: %w", err)
			}
			if ms := pick(ds); len(ms) > 0 {
				if stop, err := fn(ms); stop || err != nil {
					return err
				}
			}
		}
		return nil
	}
	last, err := eq.q.LastRowID(ctx)
	if err != nil {
		return eq.errorf("%w", err)
	}
	for cursor := after; cursor < last; {
		ds, err := eq.q.Peek(ctx, cursor, batch)
		if err != nil {
			return eq.errorf("%w", err)
		}
		if len(ds) == 0 {
			return nil
		}
		cursor = ds[len(ds)-1].ID
		for len(ds) > 0 && ds[len(ds)-1].ID > last {
			ds = ds[:len(ds)-1]
		}
		if ms := pick(ds); len(ms) > 0 {
			if stop, err := fn(ms); stop || err != nil {
				return err
			}
		}
	}
	return nil
}
