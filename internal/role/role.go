// Package role is how ferry's roles built on a bus endpoint (the worker and
// the distributor) follow and steer its threads. Being internal, it is not
// part of bus's API: code outside ferry cannot construct its Hooks, so it
// cannot set bus.Config's Role field.
package role

import (
	"context"
	"time"
)

// Hooks let a role follow and steer an endpoint's threads. A role passes
// them in bus.Config.Role; each func it sets is optional and must not
// block, and may be set until the endpoint starts.
type Hooks struct {
	// Idle is called with the threads that found the inbox empty: they wait
	// for work. It is called again after each empty receive.
	Idle func(threads []int)
	// ThreadBusy is called when thread is given a message.
	ThreadBusy func(thread int)
	// Resized is called when SetThreads (or Reconfigure) changes how many
	// threads a running endpoint has, before a new thread is reported idle;
	// threads are numbered 0 to threads-1.
	Resized func(threads int)
	// Retired is called with threads that SetThreads stopped (each once it
	// was idle): they wait for work no more.
	Retired func(threads []int)
	// Gate, when set, is asked before each receive; while it returns false
	// the inbox does not receive (a distributor that prefers its workers).
	Gate func() bool
	// Take makes the inbox consume destructively: each receive takes (and
	// deletes) a batch in one statement (queue.Consumer.Take) instead of
	// leasing it, and nothing is acked, renewed or given back. A message
	// whose handling fails, or that fails a pre-check (decode error, no
	// handler, expired…), cannot be retried or moved to the error queue —
	// it is gone — so it is logged and counted as discarded; one lost in a
	// crash between the take and its handler is lost without a trace. Only
	// for soft state that its sender renews (the distributor's control
	// inbox: availabilities and heartbeats are repeated every interval).
	// Not with an idempotent inbox. Read at bus.New.
	Take bool

	// Handoff, when not zero, is the lease token under which a distributor
	// hands this endpoint its work already leased (queue.Handoff): the
	// endpoint then reads those messages (queue.Consumer.ReceiveGiven)
	// before it leases any, and at Stop gives back those it never read.
	// The worker sets a new one for each session, before Start.
	Handoff int64
	// Lease is set by bus.New to the endpoint's inbox lease: what a role
	// asks its handed-over work to be leased for.
	Lease time.Duration

	// Abandon is set by bus.New: it stops the endpoint as a crash would,
	// for failure tests. It stops receiving and cancels the handlers'
	// context at once, and leaves every message the endpoint holds leased,
	// to come back only when its lease ends. worker.New replaces it with
	// the crash of the whole worker (no Stopping, no more announcements).
	Abandon func()
}

// untracedKey marks a context whose sends are ferry's own control traffic.
type untracedKey struct{}

// Untraced returns ctx marked so that what an endpoint sends with it gets
// no trace span (a worker's announcements: soft state, renewed all the time).
func Untraced(ctx context.Context) context.Context {
	return context.WithValue(ctx, untracedKey{}, true)
}

// IsUntraced reports whether ctx was marked by Untraced.
func IsUntraced(ctx context.Context) bool {
	v, _ := ctx.Value(untracedKey{}).(bool)
	return v
}
