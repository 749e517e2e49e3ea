package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/config"
	"github.com/ferrybus/ferry/internal/logging"
	"github.com/ferrybus/ferry/queue"
	"github.com/spf13/cobra"
)

// errorFlags are the flags shared by the errors subcommands.
type errorFlags struct {
	queue, typ, text, kind, since, source string
	all                                   bool
}

func (f *errorFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.queue, "queue", "", "error queue URI (default: the configuration's error queue, when there is one)")
	fl.StringVar(&f.typ, "type", "", "only messages whose type matches this pattern (orders.*)")
	fl.StringVar(&f.text, "error", "", "only messages whose last error contains this text")
	fl.StringVar(&f.kind, "kind", "", "only messages whose last failure is of this kind: "+strings.Join(bus.Kinds(), ", "))
	fl.StringVar(&f.since, "since", "", "only messages that failed since: a duration ago (1h) or a time (RFC 3339)")
	fl.StringVar(&f.source, "source", "", "only messages that failed in this queue URI")
}

// filter builds the library filter from flags and ids.
func (f *errorFlags) filter(ids []string) (bus.Filter, error) {
	flt := bus.Filter{IDs: ids, Type: f.typ, Error: f.text, Kind: f.kind, SourceQueue: f.source}
	if f.kind != "" {
		known := false
		for _, k := range bus.Kinds() {
			known = known || k == f.kind
		}
		if !known {
			return flt, usagef("--kind %q: want one of %s", f.kind, strings.Join(bus.Kinds(), ", "))
		}
	}
	if f.since != "" {
		if d, err := time.ParseDuration(f.since); err == nil {
			flt.Since = time.Now().Add(-d)
		} else if t, err := time.Parse(time.RFC3339, f.since); err == nil {
			flt.Since = t
		} else {
			return flt, usagef("--since %q: want a duration (1h) or an RFC 3339 time", f.since)
		}
	}
	return flt, nil
}

// empty reports whether the filter selects everything.
func (f *errorFlags) empty(ids []string) bool {
	return len(ids) == 0 && f.typ == "" && f.text == "" && f.kind == "" && f.since == "" && f.source == ""
}

// errorQueueURI picks --queue, else the one error queue the configuration uses.
func errorQueueURI(cfg *config.Config, flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	seen := map[string]bool{}
	for _, ep := range cfg.Endpoints {
		if ep.Inbox != nil && ep.Inbox.ErrorQueue != "" {
			seen[ep.Inbox.ErrorQueue] = true
		}
		if ep.ControlInbox != nil && ep.ControlInbox.ErrorQueue != "" {
			seen[ep.ControlInbox.ErrorQueue] = true
		}
	}
	var uris []string
	for u := range seen {
		uris = append(uris, u)
	}
	sort.Strings(uris)
	switch len(uris) {
	case 1:
		return uris[0], nil
	case 0:
		return "", usagef("no error queue in the configuration: pass --queue URI")
	}
	return "", usagef("the configuration has %d error queues (%s): pass --queue URI", len(uris), strings.Join(uris, ", "))
}

func (a *app) openErrors(ctx context.Context, flag string) (*bus.ErrorQueue, func(), error) {
	cfg, _, conns, err := a.setup(ctx)
	if err != nil {
		return nil, nil, err
	}
	uri, err := errorQueueURI(cfg, flag)
	if err != nil {
		conns.Close()
		return nil, nil, err
	}
	if strings.Contains(uri, "{id}") {
		conns.Close()
		return nil, nil, usagef("error queue %q uses {id}: pass --queue with the id filled in", uri)
	}
	if _, err := openQueue(ctx, conns, "--queue", uri); err != nil {
		conns.Close()
		return nil, nil, err
	}
	eq, err := bus.OpenErrorQueue(ctx, conns, uri)
	if err != nil {
		conns.Close()
		return nil, nil, err
	}
	return eq, func() { conns.Close() }, nil
}

func (a *app) errorsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "errors", Short: "List, show, retry and discard messages in an error queue"}
	cmd.PersistentFlags().BoolVar(&a.jsonOut, "json", false, "print JSON")

	var lf errorFlags
	var limit int
	var after int64
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List failed messages, oldest first, with filters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			flt, err := lf.filter(nil)
			if err != nil {
				return err
			}
			eq, done, err := a.openErrors(ctx, lf.queue)
			if err != nil {
				return err
			}
			defer done()
			page, err := eq.List(ctx, bus.ListOptions{Filter: flt, After: after, Limit: limit})
			if err != nil {
				return err
			}
			if a.jsonOut {
				if page.Messages == nil {
					page.Messages = []bus.FailedMessage{}
				}
				return json.NewEncoder(a.stdout).Encode(page)
			}
			return printFailedList(a, page)
		},
	}
	lf.register(ls)
	ls.Flags().IntVar(&limit, "limit", 50, "page size")
	ls.Flags().Int64Var(&after, "after", 0, "continue after this row (from the previous page)")

	var sf errorFlags
	show := &cobra.Command{
		Use:   "show MESSAGE_ID",
		Short: "Show one failed message with its whole failure history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			eq, done, err := a.openErrors(ctx, sf.queue)
			if err != nil {
				return err
			}
			defer done()
			m, err := eq.Show(ctx, args[0])
			if errors.Is(err, bus.ErrNotFound) {
				return usagef("errors show: no message %q in %s", args[0], eq.URI())
			}
			if err != nil {
				return err
			}
			if a.jsonOut {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(m)
			}
			return printFailed(a, m)
		},
	}
	show.Flags().StringVar(&sf.queue, "queue", "", "error queue URI (default: the configuration's error queue)")

	var rf errorFlags
	var reset bool
	var to string
	retry := &cobra.Command{
		Use:   "retry [MESSAGE_ID…]",
		Short: "Return failed messages to the queue each failed in (by id, by filter, or --all)",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if rf.empty(args) && !rf.all {
				return usagef("errors retry: name message ids, set a filter, or pass --all")
			}
			if to != "" {
				if _, err := queue.ParseURI(to); err != nil {
					return flagErr("errors retry", "--to", to, err)
				}
			}
			flt, err := rf.filter(args)
			if err != nil {
				return err
			}
			eq, done, err := a.openErrors(ctx, rf.queue)
			if err != nil {
				return err
			}
			defer done()
			n, err := eq.Retry(ctx, flt, bus.RetryOptions{ResetFailures: reset, To: to})
			if to != "" && n == 0 && (errors.Is(err, queue.ErrInvalidURI) || errors.Is(err, queue.ErrUnknownConnection)) {
				return flagErr("errors retry", "--to", to, err)
			}
			if rerr := a.report(map[string]any{"returned": n, "errorQueue": eq.URI()}, "returned %d message(s) from %s\n", n, eq.URI()); rerr != nil {
				return rerr
			}
			return err
		},
	}
	rf.register(retry)
	retry.Flags().BoolVar(&rf.all, "all", false, "return every message of the error queue")
	retry.Flags().BoolVar(&reset, "reset", false, "clear the failure history: the message gets the full number of attempts again")
	retry.Flags().StringVar(&to, "to", "", "return to this queue URI instead of each message's source queue")

	var df errorFlags
	discard := &cobra.Command{
		Use:   "discard [MESSAGE_ID…]",
		Short: "Delete failed messages for good (by id, by filter, or --all)",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if df.empty(args) && !df.all {
				return usagef("errors discard: name message ids, set a filter, or pass --all")
			}
			flt, err := df.filter(args)
			if err != nil {
				return err
			}
			eq, done, err := a.openErrors(ctx, df.queue)
			if err != nil {
				return err
			}
			defer done()
			n, err := eq.Discard(ctx, flt, bus.DiscardOptions{})
			if err != nil {
				return err
			}
			return a.report(map[string]any{"discarded": n, "errorQueue": eq.URI()}, "discarded %d message(s) from %s\n", n, eq.URI())
		},
	}
	df.register(discard)
	discard.Flags().BoolVar(&df.all, "all", false, "discard every message of the error queue")

	cmd.AddCommand(ls, show, retry, discard)
	return cmd
}

// printFailedList prints a page of failed messages for a person. Every
// text is escaped (logging.Escape): error texts come from remote targets,
// and types, ids and queues from whoever wrote the row.
func printFailedList(a *app, page bus.ListPage) error {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROW\tMESSAGE ID\tTYPE\tSOURCE\tKIND\tFAILURES\tERROR")
	for _, m := range page.Messages {
		e := []rune(logging.Escape(m.Error))
		if len(e) > 70 {
			e = append(e[:67], []rune("...")...)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", m.Row, logging.Escape(m.ID), logging.Escape(m.Type),
			logging.Escape(m.SourceQueue), logging.Escape(m.Kind), m.Failures, string(e))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.Next != 0 {
		fmt.Fprintf(a.stdout, "(more: --after %d)\n", page.Next)
	}
	return nil
}

// printFailed prints one failed message for a person, every text escaped
// (see printFailedList); a stack keeps its lines, each escaped.
func printFailed(a *app, m *bus.FailedMessage) error {
	w := a.stdout
	q := logging.Escape
	e := m.Envelope
	fmt.Fprintf(w, "message   %s\ntype      %s\nsource    %s\nerror     %s\n", q(m.ID), q(m.Type), q(m.SourceQueue), q(m.Error))
	if e != nil {
		fmt.Fprintf(w, "sent      %s\ncorrelation %s\n", e.SentAt.Format(time.RFC3339Nano), q(e.CorrelationID))
		if len(e.Headers) > 0 {
			keys := make([]string, 0, len(e.Headers))
			for k := range e.Headers {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			pairs := make([]string, len(keys))
			for i, k := range keys {
				pairs[i] = q(k) + ":" + q(e.Headers[k])
			}
			fmt.Fprintf(w, "headers   map[%s]\n", strings.Join(pairs, " "))
		}
		fmt.Fprintf(w, "body      %s\n", q(string(e.Body)))
		fmt.Fprintf(w, "failures  %d\n", len(e.Failures))
		for i, f := range e.Failures {
			fmt.Fprintf(w, "  %d. %s  %s  [%s]  %s\n", i+1, f.At.Format(time.RFC3339Nano), q(f.Endpoint), q(f.Kind), q(f.Error))
			if f.Stack != "" {
				for _, line := range strings.Split(strings.TrimSpace(f.Stack), "\n") {
					fmt.Fprintf(w, "       %s\n", q(line))
				}
			}
		}
	}
	if m.HeaderErrors != "" {
		fmt.Fprintf(w, "header errors: %s\n", q(m.HeaderErrors))
	}
	return nil
}
