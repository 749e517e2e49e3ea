package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ferrybus/ferry/internal/logging"
	"github.com/ferrybus/ferry/queue"
	"github.com/spf13/cobra"
)

func (a *app) queueCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "queue", Short: "Inspect and repair queues: ls, peek, purge, move, pause, resume"}
	cmd.PersistentFlags().BoolVar(&a.jsonOut, "json", false, "print JSON")

	ls := &cobra.Command{
		Use:   "ls",
		Short: "List every configured queue and every queue found in the databases, with counts and paused state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, _, conns, err := a.setup(ctx)
			if err != nil {
				return err
			}
			defer conns.Close()
			list, err := listQueues(ctx, cfg, conns)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return json.NewEncoder(a.stdout).Encode(list)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "QUEUE\tREADY\tDEFERRED\tIN FLIGHT\tPAUSED\tCONFIGURED AS")
			yes := func(b bool) string {
				if b {
					return "PAUSED"
				}
				return "-"
			}
			for _, r := range list.Queues {
				as := strings.Join(r.Roles, ", ")
				if as == "" {
					as = "-"
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", logging.Escape(r.URI), r.Ready, r.Deferred, r.InFlight, yes(r.Paused), as)
			}
			t := list.Total
			fmt.Fprintf(tw, "TOTAL (%d queues)\t%d\t%d\t%d\t%d paused\t\n", t.Queues, t.Ready, t.Deferred, t.InFlight, t.Paused)
			return tw.Flush()
		},
	}

	pause := &cobra.Command{
		Use:   "pause URI",
		Short: "Pause a queue: its endpoints receive nothing and distributors move nothing from or to it, until resumed",
		Args:  cobra.ExactArgs(1),
		RunE: a.withQueues([]string{"URI"}, func(ctx context.Context, qs []queue.Queue) error {
			q := qs[0]
			if err := a.checkPausable(q.URI()); err != nil {
				return err
			}
			if err := q.Store().PauseQueue(ctx, q.Name()); err != nil {
				return err
			}
			return a.report(map[string]any{"paused": q.URI()}, "paused %s (its consumers stop taking messages within about a second)\n", q.URI())
		}),
	}
	resume := &cobra.Command{
		Use:   "resume URI",
		Short: "Resume a paused queue",
		Args:  cobra.ExactArgs(1),
		RunE: a.withQueues([]string{"URI"}, func(ctx context.Context, qs []queue.Queue) error {
			q := qs[0]
			if err := q.Store().ResumeQueue(ctx, q.Name()); err != nil {
				return err
			}
			return a.report(map[string]any{"resumed": q.URI()}, "resumed %s\n", q.URI())
		}),
	}

	var limit int
	var after int64
	peek := &cobra.Command{
		Use:   "peek URI",
		Short: "Show messages of a queue without taking them",
		Args:  cobra.ExactArgs(1),
		RunE: a.withQueues([]string{"URI"}, func(ctx context.Context, qs []queue.Queue) error {
			q := qs[0]
			ds, err := q.Peek(ctx, after, limit)
			if err != nil {
				return err
			}
			if a.jsonOut {
				type msg struct {
					ID        int64             `json:"id"`
					MessageID string            `json:"messageId"`
					Type      string            `json:"type"`
					Priority  int               `json:"priority"`
					Attempts  int               `json:"attempts"`
					Enqueued  time.Time         `json:"enqueuedAt"`
					Visible   time.Time         `json:"visibleAt"`
					Leased    bool              `json:"leased"`
					Headers   map[string]string `json:"headers,omitempty"`
					Body      json.RawMessage   `json:"body"`
				}
				out := []msg{}
				for _, d := range ds {
					body := json.RawMessage(d.Body)
					if !json.Valid(d.Body) {
						b, _ := json.Marshal(string(d.Body))
						body = b
					}
					out = append(out, msg{d.ID, d.MessageID, d.Type, d.Priority, d.Attempts, d.EnqueuedAt, d.VisibleAt,
						d.LeaseToken != 0 && d.VisibleAt.After(time.Now()), d.Headers, body})
				}
				return json.NewEncoder(a.stdout).Encode(out)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ROW\tMESSAGE ID\tTYPE\tATTEMPTS\tSTATE\tBODY")
			for _, d := range ds {
				state := "ready"
				if d.VisibleAt.After(time.Now()) {
					state = "deferred"
					if d.LeaseToken != 0 {
						state = "in flight"
					}
				}
				// Escaped: bodies and ids come from whoever sent the message.
				body := []rune(logging.Escape(string(d.Body)))
				if len(body) > 60 {
					body = append(body[:57], []rune("...")...)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", d.ID, logging.Escape(d.MessageID), logging.Escape(d.Type), d.Attempts, state, string(body))
			}
			return tw.Flush()
		}),
	}
	peek.Flags().IntVar(&limit, "limit", 20, "how many messages")
	peek.Flags().Int64Var(&after, "after", 0, "start after this row id (paging)")

	purge := &cobra.Command{
		Use:   "purge URI",
		Short: "Delete every message that is in the queue now",
		Args:  cobra.ExactArgs(1),
		RunE: a.withQueues([]string{"URI"}, func(ctx context.Context, qs []queue.Queue) error {
			q := qs[0]
			n, err := q.Purge(ctx)
			if err != nil {
				return err
			}
			return a.report(map[string]any{"purged": n, "queue": q.URI()}, "purged %d message(s) from %s\n", n, q.URI())
		}),
	}

	var moveLimit int
	move := &cobra.Command{
		Use:   "move SRC_URI DST_URI",
		Short: "Move ready messages from one queue to another (one UPDATE per batch within a database)",
		Args:  cobra.ExactArgs(2),
		RunE: a.withQueues([]string{"SRC_URI", "DST_URI"}, func(ctx context.Context, qs []queue.Queue) error {
			src, dst := qs[0], qs[1]
			total := 0
			for moveLimit <= 0 || total < moveLimit {
				batch := 1000
				if moveLimit > 0 {
					batch = min(batch, moveLimit-total)
				}
				n, err := src.MoveReady(ctx, dst, batch, nil)
				total += n
				if err != nil {
					return err
				}
				if n < batch {
					break
				}
			}
			return a.report(map[string]any{"moved": total, "from": src.URI(), "to": dst.URI()}, "moved %d message(s) from %s to %s\n", total, src.URI(), dst.URI())
		}),
	}
	move.Flags().IntVar(&moveLimit, "limit", 0, "move at most this many (default: all ready)")
	cmd.AddCommand(ls, peek, purge, move, pause, resume)
	return cmd
}

// withQueues is the RunE of a command whose arguments are queue URIs
// (named for errors): it sets up configuration and connections, resolves
// the URIs, runs fn and closes the connections.
func (a *app) withQueues(names []string, fn func(ctx context.Context, qs []queue.Queue) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, uris []string) error {
		ctx := cmd.Context()
		_, _, conns, err := a.setup(ctx)
		if err != nil {
			return err
		}
		defer conns.Close()
		qs := make([]queue.Queue, len(uris))
		for i, u := range uris {
			if qs[i], err = openQueue(ctx, conns, names[i], u); err != nil {
				return err
			}
		}
		return fn(ctx, qs)
	}
}

// report prints v as JSON with --json, else the formatted line.
func (a *app) report(v any, format string, args ...any) error {
	if a.jsonOut {
		return json.NewEncoder(a.stdout).Encode(v)
	}
	_, err := fmt.Fprintf(a.stdout, format, args...)
	return err
}

// checkPausable refuses to pause a distributor's control queue: with its
// announcements unread, the distributor would take every worker for
// silent and return their queues. Pause the distributor's inbox instead.
func (a *app) checkPausable(uri string) error {
	cfg, err := a.load()
	if err != nil {
		return err
	}
	for _, role := range configuredQueues(cfg)[uri] {
		if strings.HasSuffix(role, ".controlInbox") || strings.HasSuffix(role, ".worker.distributorControlQueue") {
			return usagef("%s is a distributor's control queue (%s): paused, its workers would look silent and have their queues returned; pause the distributor's inbox instead", uri, role)
		}
	}
	return nil
}
