package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/queue"
)

// confirmData is the confirmation step of an action: what it will do, to
// how many messages, and the form that does it.
type confirmData struct {
	Action  string // path of the action
	Verb    string // "Retry", "Discard", "Purge"
	What    string // the selection, in words
	Count   int64
	Hidden  []pair // the fields posted again
	Target  string // the queue acted on
	Back    string // where Cancel goes
	Warning string
}

// resultData reports what an action did.
type resultData struct {
	Message string
	Count   int64
	Error   string
	Back    string
}

// selection is the bus.Filter of an error-queue action's form, and its
// description: ids (one or selected), a failure group, or the filter.
func (h *Handler) selection(ctx context.Context, eq *bus.ErrorQueue, f errorForm) (bus.Filter, string, error) {
	flt, err := f.filter()
	if err != nil {
		return flt, "", err
	}
	switch f.Scope {
	case "ids":
		if len(f.IDs) == 0 {
			return flt, "", badRequest{"no message selected: tick at least one"}
		}
		if len(f.IDs) > MaxSelected {
			return flt, "", badRequest{fmt.Sprintf("%d messages selected: at most %d per action (use a group or the filter)", len(f.IDs), MaxSelected)}
		}
		n, err := eq.Count(ctx, bus.Filter{IDs: f.IDs})
		if err != nil {
			return flt, "", err
		}
		if n == 0 {
			return flt, "", notFound{fmt.Sprintf("no message %q in error queue %s (retried or discarded already?)", strings.Join(f.IDs, ", "), eq.URI())}
		}
		if len(f.IDs) == 1 {
			return bus.Filter{IDs: f.IDs}, "message " + sanitizeLine(f.IDs[0]), nil
		}
		return bus.Filter{IDs: f.IDs}, fmt.Sprintf("%d selected messages", len(f.IDs)), nil
	case "group":
		var ids []string
		var kind, text string
		_, more, err := scanMatching(ctx, eq, flt, func(m bus.FailedMessage) {
			if n := normalise(m.Error); groupKey(m.Kind, n) == f.Group {
				ids, kind, text = append(ids, m.ID), m.Kind, n
			}
		})
		if err != nil {
			return flt, "", err
		}
		what := fmt.Sprintf("the group [%s] %q", sanitizeLine(kind), sanitizeLine(text))
		if len(ids) == 0 {
			what = "the failure group"
		}
		if more {
			what += fmt.Sprintf(" among the first %d matching messages", MaxGroupScan)
		}
		if len(ids) == 0 {
			return bus.Filter{IDs: []string{}}, what, notFound{"no message left in " + what}
		}
		return bus.Filter{IDs: ids}, what, nil
	case "filter":
		if f.Type == "" && f.Error == "" && f.Kind == "" && f.Since == "" && f.Source == "" {
			return flt, "every message of the error queue", nil
		}
		return flt, "the messages matching the filter", nil
	}
	return flt, "", badRequest{fmt.Sprintf("scope %q: want ids, group or filter", f.Scope)}
}

// errorAction serves retry and discard: the confirmation step, then, with
// confirm=yes, the action and its count.
func (h *Handler) errorAction(w http.ResponseWriter, r *http.Request) {
	if !h.checkCSRF(w, r) {
		return
	}
	ctx := r.Context()
	retry := strings.HasSuffix(r.URL.Path, "/retry")
	f := readErrorForm(r)
	if f.Queue == "" {
		h.failErr(w, r, badRequest{"which error queue? the form names none"})
		return
	}
	eq, err := h.errorQueue(ctx, f.Queue)
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	if retry && f.To != "" {
		u, err := queue.ParseURI(f.To)
		if err != nil {
			h.failErr(w, r, badRequest{fmt.Sprintf("retry to %q: %v", f.To, err)})
			return
		}
		if _, err := h.conns.Store(ctx, u.Connection); err != nil {
			h.failErr(w, r, badRequest{fmt.Sprintf("retry to %q: %v", f.To, err)})
			return
		}
	}
	flt, what, err := h.selection(ctx, eq, f)
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	back := h.cfg.Prefix + "/errors?" + string(f.Query())
	if r.PostFormValue("confirm") != "yes" {
		n, err := eq.Count(ctx, flt)
		if err != nil {
			h.failErr(w, r, err)
			return
		}
		c := confirmData{Action: r.URL.Path, What: what, Count: int64(n), Target: eq.URI(), Back: back}
		c.Hidden = []pair{{"queue", f.Queue}, {"type", f.Type}, {"error", f.Error}, {"kind", f.Kind}, {"since", f.Since},
			{"source", f.Source}, {"scope", f.Scope}, {"group", f.Group}}
		for _, id := range f.IDs {
			c.Hidden = append(c.Hidden, pair{"id", id})
		}
		if retry {
			c.Verb = "Retry"
			if f.Reset {
				c.Hidden = append(c.Hidden, pair{"reset", "1"})
			}
			if f.To != "" {
				c.Hidden = append(c.Hidden, pair{"to", f.To})
			}
			c.Warning = retryWords(f)
		} else {
			c.Verb, c.Warning = "Discard", "Discarded messages are deleted for good."
		}
		h.render(w, r, http.StatusOK, "confirm", &page{Title: c.Verb + "?", Nav: "errors", Data: c})
		return
	}
	var n int
	res := resultData{Back: back}
	if retry {
		n, err = eq.Retry(ctx, flt, bus.RetryOptions{ResetFailures: f.Reset, To: f.To})
		res.Message = fmt.Sprintf("Returned %d message(s) from %s (%s).", n, eq.URI(), retryWords(f))
	} else {
		n, err = eq.Discard(ctx, flt, bus.DiscardOptions{})
		res.Message = fmt.Sprintf("Discarded %d message(s) from %s.", n, eq.URI())
	}
	res.Count = int64(n)
	h.log.Info("dashboard action", "action", r.URL.Path, "errorQueue", eq.URI(), "selection", what, "affected", n, "remote", r.RemoteAddr, "err", err)
	status := http.StatusOK
	if err != nil {
		res.Error = err.Error()
		status = http.StatusInternalServerError
		if errors.Is(err, bus.ErrNoSourceQueue) {
			status = http.StatusConflict
		}
	}
	h.render(w, r, status, "result", &page{Title: "Done", Nav: "errors", Data: res})
}

func retryWords(f errorForm) string {
	s := "each to the queue it failed in"
	if f.To != "" {
		s = "to " + sanitizeLine(f.To)
	}
	if f.Reset {
		return s + ", failure history cleared: full attempts again"
	}
	return s + ", failure history kept: one more failure parks it again"
}

// queueAction serves purge (confirmation first), pause and resume.
func (h *Handler) queueAction(w http.ResponseWriter, r *http.Request) {
	if !h.checkCSRF(w, r) {
		return
	}
	ctx := r.Context()
	uri := r.PostFormValue("uri")
	q, err := h.queueKnown(ctx, uri)
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	back := h.cfg.Prefix + "/queue?uri=" + urlQuery(q.URI())
	res := resultData{Back: back}
	switch {
	case strings.HasSuffix(r.URL.Path, "/purge"):
		if r.PostFormValue("confirm") != "yes" {
			c, err := q.Count(ctx)
			if err != nil {
				h.failErr(w, r, err)
				return
			}
			h.render(w, r, http.StatusOK, "confirm", &page{Title: "Purge?", Nav: "overview", Data: confirmData{
				Action: r.URL.Path, Verb: "Purge", What: "every message of the queue", Count: c.Total(), Target: q.URI(),
				Hidden: []pair{{"uri", q.URI()}}, Back: back, Warning: "Purged messages are deleted for good, in flight ones too."}})
			return
		}
		n, err := q.Purge(ctx)
		if err != nil {
			h.failErr(w, r, fmt.Errorf("purge %s: %w", q.URI(), err))
			return
		}
		res.Count, res.Message = n, fmt.Sprintf("Purged %d message(s) from %s.", n, q.URI())
	case strings.HasSuffix(r.URL.Path, "/pause"):
		if err := q.Store().PauseQueue(ctx, q.Name()); err != nil {
			h.failErr(w, r, fmt.Errorf("pause %s: %w", q.URI(), err))
			return
		}
		res.Message = fmt.Sprintf("Paused %s: its consumers stop taking messages within about a second.", q.URI())
	default:
		if err := q.Store().ResumeQueue(ctx, q.Name()); err != nil {
			h.failErr(w, r, fmt.Errorf("resume %s: %w", q.URI(), err))
			return
		}
		res.Message = fmt.Sprintf("Resumed %s.", q.URI())
	}
	h.log.Info("dashboard action", "action", r.URL.Path, "queue", q.URI(), "affected", res.Count, "remote", r.RemoteAddr)
	h.render(w, r, http.StatusOK, "result", &page{Title: "Done", Nav: "overview", Data: res})
}
