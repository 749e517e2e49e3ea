package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ferrybus/ferry/internal/config"
	"github.com/ferrybus/ferry/queue"
)

// queueRow is one queue of `ferry queue ls`.
type queueRow struct {
	URI string `json:"uri"`
	queue.Counts
	// Paused is set for a queue paused with `ferry queue pause`.
	Paused bool `json:"paused"`
	// Roles say where the configuration names the queue
	// ("distributor.inbox", "worker.errorQueue", "route"…); none for a
	// queue only found in a database.
	Roles []string `json:"roles"`
	// Pattern is set for a configured URI with {id} (no worker of it
	// recorded yet); its counts are zero.
	Pattern bool `json:"pattern,omitempty"`
}

// queueTotal sums the rows of `ferry queue ls`.
type queueTotal struct {
	Queues   int   `json:"queues"`
	Ready    int64 `json:"ready"`
	Deferred int64 `json:"deferred"`
	InFlight int64 `json:"inFlight"`
	Paused   int   `json:"paused"`
}

// queueList is `ferry queue ls --json`.
type queueList struct {
	Queues []queueRow `json:"queues"`
	Total  queueTotal `json:"total"`
}

// maxListed bounds the rows of `ferry queue ls`.
const maxListed = 100_000

// configuredQueues maps each queue URI the configuration names to its
// roles; URIs with {id} are patterns.
func configuredQueues(cfg *config.Config) map[string][]string {
	out := map[string][]string{}
	add := func(uri, role string) {
		if uri != "" && !slices.Contains(out[uri], role) {
			out[uri] = append(out[uri], role)
		}
	}
	for _, name := range cfg.EndpointNames() {
		ep := cfg.Endpoints[name]
		if ep.Inbox != nil {
			add(ep.Inbox.WorkQueue, name+".inbox")
			add(ep.Inbox.ErrorQueue, name+".errorQueue")
		}
		if ep.ControlInbox != nil {
			add(ep.ControlInbox.WorkQueue, name+".controlInbox")
			add(ep.ControlInbox.ErrorQueue, name+".controlInbox.errorQueue")
		}
		if ep.Worker != nil {
			add(ep.Worker.DistributorControlQueue, name+".worker.distributorControlQueue")
		}
	}
	for _, r := range cfg.Routes {
		add(r.Queue, "route")
	}
	return out
}

// listQueues is every configured queue, the recorded workers' queues of
// {id} patterns, and every other queue holding messages or paused in the
// databases, by URI, with a total.
func listQueues(ctx context.Context, cfg *config.Config, conns *queue.Connections) (queueList, error) {
	rows := map[string]*queueRow{}
	row := func(uri string) *queueRow {
		r, ok := rows[uri]
		if !ok {
			r = &queueRow{URI: uri, Roles: []string{}}
			rows[uri] = r
		}
		return r
	}
	configured := configuredQueues(cfg)
	var patterns []string
	for uri, roles := range configured {
		if strings.Contains(uri, "{id}") {
			patterns = append(patterns, uri)
			continue
		}
		row(uri).Roles = roles
	}
	// A pattern's queues are those of the workers the distributors recorded.
	matched := map[string]bool{}
	for _, name := range distributorEndpoints(cfg) {
		control := cfg.Endpoints[name].ControlInbox.WorkQueue
		q, err := openQueue(ctx, conns, "endpoints."+name+".controlInbox.workQueue", control)
		if err != nil {
			return queueList{}, err
		}
		recs, err := q.Store().Workers(ctx, q.URI())
		if err != nil {
			return queueList{}, fmt.Errorf("endpoint %q: %w", name, err)
		}
		for _, rec := range recs {
			for _, p := range patterns {
				pre, suf, _ := strings.Cut(p, "{id}")
				if len(rec.Inbox) > len(pre)+len(suf) && strings.HasPrefix(rec.Inbox, pre) && strings.HasSuffix(rec.Inbox, suf) {
					r := row(rec.Inbox)
					for _, role := range configured[p] {
						if !slices.Contains(r.Roles, role) {
							r.Roles = append(r.Roles, role)
						}
					}
					matched[p] = true
				}
			}
		}
	}
	for _, p := range patterns {
		if !matched[p] {
			r := row(p)
			r.Roles, r.Pattern = configured[p], true
		}
	}
	for _, name := range conns.Names() {
		s, err := conns.Store(ctx, name)
		if err != nil {
			return queueList{}, err
		}
		qs, err := s.Queues(ctx)
		if err != nil {
			return queueList{}, fmt.Errorf("connection %q: %w", name, err)
		}
		for _, q := range qs {
			row(queue.URI{Connection: name, Queue: q.Name}.String()).Counts = q.Counts
		}
		ps, err := s.Paused(ctx)
		if err != nil {
			return queueList{}, fmt.Errorf("connection %q: %w", name, err)
		}
		for _, p := range ps {
			row(queue.URI{Connection: name, Queue: p.Name}.String()).Paused = true
		}
	}
	list := queueList{Queues: []queueRow{}}
	for _, uri := range slices.Sorted(maps.Keys(rows)) {
		if len(list.Queues) == maxListed {
			break
		}
		r := rows[uri]
		slices.Sort(r.Roles)
		list.Queues = append(list.Queues, *r)
		t := &list.Total
		t.Queues++
		t.Ready += r.Ready
		t.Deferred += r.Deferred
		t.InFlight += r.InFlight
		if r.Paused {
			t.Paused++
		}
	}
	return list, nil
}
