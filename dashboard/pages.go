package dashboard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor"
	"github.com/ferrybus/ferry/queue"
)

// queueRow is one queue of the overview.
type queueRow struct {
	URI        string
	Connection string
	Name       string
	Roles      []string
	Pattern    bool
	queue.Counts
	Paused     bool
	ErrorQueue bool
	Depth      chart
	held       bool // the store listed it as holding messages
}

// overviewCounters bounds the queues the overview counts at once.
const overviewCounters = 4

// countRows counts the queues of uris the store listed as holding
// messages, overviewCounters at a time: one statement per such queue (the
// oldest ready message is not in the store's queue list). The others are
// empty, their counts zero.
func (h *Handler) countRows(ctx context.Context, uris []string, rows map[string]*queueRow) error {
	names := h.conns.Names()
	sem := make(chan struct{}, overviewCounters)
	errs := make([]error, len(uris))
	var wg sync.WaitGroup
	for i, uri := range uris {
		r := rows[uri]
		if r.Pattern || !slices.Contains(names, r.Connection) {
			continue
		}
		r.Depth = h.sampler.depth(uri)
		if !r.held {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			q, err := h.conns.Queue(ctx, uri)
			if err == nil {
				r.Counts, err = q.Count(ctx)
			}
			if err != nil {
				errs[i] = fmt.Errorf("count %s: %w", uri, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// connRow is one connection of the overview with its enqueue rate.
type connRow struct {
	Name  string
	Rate  chart
	Error string
}

type overviewData struct {
	Queues      []queueRow
	ErrorQueues []queueRow
	Connections []connRow
	Truncated   bool
	Interval    time.Duration
	Span        string // the time the charts cover
	Taken       time.Time
}

// overviewOf gathers every configured queue, the workers' queues of {id}
// patterns, and every queue holding messages or paused, with counts.
func (h *Handler) overviewOf(ctx context.Context) (overviewData, error) {
	d := overviewData{Interval: h.cfg.SampleInterval, Span: h.sampler.span(), Taken: time.Now()}
	rows := map[string]*queueRow{}
	row := func(uri string) *queueRow {
		r, ok := rows[uri]
		if !ok {
			r = &queueRow{URI: uri, Roles: []string{}}
			if u, err := queue.ParseURI(uri); err == nil {
				r.Connection, r.Name = u.Connection, u.Queue
			}
			rows[uri] = r
		}
		return r
	}
	var patterns []string
	for uri, roles := range h.cfg.Queues {
		if strings.Contains(uri, "{id}") {
			patterns = append(patterns, uri)
			continue
		}
		row(uri).Roles = slices.Clone(roles)
	}
	for _, uri := range h.cfg.ErrorQueues {
		if !strings.Contains(uri, "{id}") {
			row(uri).ErrorQueue = true
		}
	}
	matched := map[string]bool{}
	for _, dist := range h.cfg.Distributors {
		q, err := h.conns.Queue(ctx, dist.ControlQueue)
		if err != nil {
			return d, fmt.Errorf("distributor %q: %w", dist.Endpoint, err)
		}
		v, err := q.Store().DistributorView(ctx, q.URI())
		if err != nil {
			continue // the workers page says why; the overview still shows the rest
		}
		for _, w := range v.Workers {
			for _, p := range patterns {
				pre, suf, _ := strings.Cut(p, "{id}")
				if len(w.Queue) > len(pre)+len(suf) && strings.HasPrefix(w.Queue, pre) && strings.HasSuffix(w.Queue, suf) {
					r := row(w.Queue)
					for _, role := range h.cfg.Queues[p] {
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
			r.Roles, r.Pattern = slices.Clone(h.cfg.Queues[p]), true
		}
	}
	for _, name := range h.conns.Names() {
		c := connRow{Name: name, Rate: h.sampler.enqueueRate(name)}
		s, err := h.conns.Store(ctx, name)
		if err != nil {
			c.Error = err.Error()
			d.Connections = append(d.Connections, c)
			continue
		}
		d.Connections = append(d.Connections, c)
		qs, err := s.Queues(ctx)
		if err != nil {
			return d, fmt.Errorf("connection %q: %w", name, err)
		}
		for _, q := range qs {
			row(queue.URI{Connection: name, Queue: q.Name}.String()).held = true
		}
		ps, err := s.Paused(ctx)
		if err != nil {
			return d, fmt.Errorf("connection %q: %w", name, err)
		}
		for _, p := range ps {
			row(queue.URI{Connection: name, Queue: p.Name}.String()).Paused = true
		}
	}
	uris := slices.Sorted(maps.Keys(rows))
	if len(uris) > MaxQueues {
		uris, d.Truncated = uris[:MaxQueues], true
	}
	if err := h.countRows(ctx, uris, rows); err != nil {
		return d, err
	}
	for _, uri := range uris {
		r := rows[uri]
		sort.Strings(r.Roles)
		if r.ErrorQueue {
			d.ErrorQueues = append(d.ErrorQueues, *r)
		} else {
			d.Queues = append(d.Queues, *r)
		}
	}
	return d, nil
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request) {
	d, err := h.overviewOf(r.Context())
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "overview", &page{Title: "Overview", Nav: "overview", Data: d})
}

func (h *Handler) overviewFragment(w http.ResponseWriter, r *http.Request) {
	d, err := h.overviewOf(r.Context())
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	h.renderBlock(w, r, http.StatusOK, "overview", "overview-body", &page{Data: d})
}

// Workers page.

type instanceRow struct {
	queue.DistributorInstance
	State string
}

type workerRow struct {
	queue.WorkerView
	State string
}

type distributorRow struct {
	Endpoint     string
	ControlQueue string
	Error        string
	Instances    []instanceRow
	Workers      []workerRow
}

// judge gives each instance and worker its state as of now: the rules of
// `ferry workers` (distributor.ViewStates).
func judge(v queue.DistributorView, now time.Time) ([]instanceRow, []workerRow) {
	is, wss := distributor.ViewStates(v, now)
	insts := []instanceRow{}
	for i, inst := range v.Instances {
		insts = append(insts, instanceRow{inst, is[i]})
	}
	ws := []workerRow{}
	for i, w := range v.Workers {
		ws = append(ws, workerRow{w, wss[i]})
	}
	return insts, ws
}

func (h *Handler) workersOf(ctx context.Context) []distributorRow {
	out := []distributorRow{}
	for _, dist := range h.cfg.Distributors {
		row := distributorRow{Endpoint: dist.Endpoint, ControlQueue: dist.ControlQueue}
		q, err := h.conns.Queue(ctx, dist.ControlQueue)
		if err == nil {
			var v queue.DistributorView
			v, err = q.Store().DistributorView(ctx, q.URI())
			if err == nil {
				row.Instances, row.Workers = judge(v, time.Now())
			} else if queue.IsMissingTable(err) {
				err = fmt.Errorf("the database lacks the distributor's view (migration 0008): run 'ferry migrate': %w", err)
			}
		}
		if err != nil {
			row.Error = err.Error()
		}
		out = append(out, row)
	}
	return out
}

func (h *Handler) workers(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "workers", &page{Title: "Distributors and workers", Nav: "workers", Data: h.workersOf(r.Context())})
}

func (h *Handler) workersFragment(w http.ResponseWriter, r *http.Request) {
	h.renderBlock(w, r, http.StatusOK, "workers", "workers-body", &page{Data: h.workersOf(r.Context())})
}

// Error queue pages.

// errorForm is the filter and selection of the error-queue page and its actions.
type errorForm struct {
	Queue, Type, Error, Kind, Since, Source string
	Group                                   string // a failure group's key (groupKey)
	Scope                                   string // ids, group or filter
	IDs                                     []string
	Reset                                   bool
	To                                      string
}

func readErrorForm(r *http.Request) errorForm {
	get := r.FormValue
	return errorForm{Queue: get("queue"), Type: get("type"), Error: get("error"), Kind: get("kind"), Since: get("since"),
		Source: get("source"), Group: get("group"), Scope: get("scope"),
		IDs: r.Form["id"], Reset: get("reset") == "on" || get("reset") == "1", To: strings.TrimSpace(get("to"))}
}

// filter is the form's bus.Filter (without ids).
func (f errorForm) filter() (bus.Filter, error) {
	flt := bus.Filter{Type: f.Type, Error: f.Error, Kind: f.Kind, SourceQueue: f.Source}
	if f.Kind != "" && !slices.Contains(bus.Kinds(), f.Kind) {
		return flt, badRequest{fmt.Sprintf("kind %q: want one of %s", f.Kind, strings.Join(bus.Kinds(), ", "))}
	}
	if f.Since != "" {
		if d, err := time.ParseDuration(f.Since); err == nil {
			flt.Since = time.Now().Add(-d)
		} else if t, err := time.Parse(time.RFC3339, f.Since); err == nil {
			flt.Since = t
		} else {
			return flt, badRequest{fmt.Sprintf("since %q: want a duration (1h) or an RFC 3339 time", f.Since)}
		}
	}
	return flt, nil
}

// Query is the form's filter as a query string, for links.
func (f errorForm) Query() template.URL {
	v := urlValues{}
	v.add("queue", f.Queue)
	v.add("type", f.Type)
	v.add("error", f.Error)
	v.add("kind", f.Kind)
	v.add("since", f.Since)
	v.add("source", f.Source)
	return template.URL(v.encode()) // url.Values.Encode escaped every value
}

// errorQueue opens the form's error queue: the one named, else the only
// one configured. Unknown queues are 404.
func (h *Handler) errorQueue(ctx context.Context, name string) (*bus.ErrorQueue, error) {
	if name == "" {
		switch len(h.cfg.ErrorQueues) {
		case 0:
			return nil, badRequest{"no error queue is configured: pass ?queue=URI"}
		case 1:
			name = h.cfg.ErrorQueues[0]
		default:
			return nil, nil // the page offers the choice
		}
	}
	if _, err := h.queueKnown(ctx, name); err != nil {
		return nil, err
	}
	return bus.OpenErrorQueue(ctx, h.conns, name)
}

// group is a failure group: messages whose last failure has one kind and
// one error text once numbers are set aside.
type group struct {
	Key        string
	Kind, Text string
	Count      int
	Example    string // one message's full error text
	First      time.Time
	Last       time.Time
}

type groupsView struct {
	Groups    []group
	Other     int // messages of the groups beyond MaxGroups
	Scanned   int
	Truncated bool // more than MaxGroupScan matched: the figures are of the first ones
}

// normalise is an error text with its digits set aside, cut to 200
// characters: "order 123 timed out after 5s" and "order 77 timed out
// after 6s" fall in one group.
func normalise(s string) string {
	var b strings.Builder
	digits := false
	n := 0
	for _, r := range s {
		if n == 200 {
			b.WriteString("…")
			break
		}
		if r >= '0' && r <= '9' {
			if !digits {
				b.WriteByte('#')
				n++
			}
			digits = true
			continue
		}
		digits = false
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// groupKey names a failure group in forms: a hash, so that the form
// carries no remote text.
func groupKey(kind, text string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + text))
	return hex.EncodeToString(sum[:12])
}

// scanMatching reads up to MaxGroupScan messages matching flt and calls fn
// with each; it reports whether more matched.
func scanMatching(ctx context.Context, eq *bus.ErrorQueue, flt bus.Filter, fn func(m bus.FailedMessage)) (scanned int, more bool, err error) {
	return scanFrom(ctx, eq, flt, 0, MaxGroupScan, fn)
}

// scanFrom reads up to limit messages matching flt with rows above after
// and calls fn with each; it reports whether more matched.
func scanFrom(ctx context.Context, eq *bus.ErrorQueue, flt bus.Filter, after int64, limit int, fn func(m bus.FailedMessage)) (scanned int, more bool, err error) {
	for scanned < limit {
		page, err := eq.List(ctx, bus.ListOptions{Filter: flt, After: after, Limit: min(1000, limit-scanned)})
		if err != nil {
			return scanned, false, err
		}
		for _, m := range page.Messages {
			fn(m)
		}
		scanned += len(page.Messages)
		if page.Next == 0 {
			return scanned, false, nil
		}
		after = page.Next
	}
	return scanned, true, nil
}

// groupTally is the failure groups of the messages scanned so far.
type groupTally struct {
	byKey   map[[2]string]group
	scanned int
	more    bool // the scan stopped at MaxGroupScan
}

func (t *groupTally) add(m bus.FailedMessage) {
	k := [2]string{m.Kind, normalise(m.Error)}
	g, ok := t.byKey[k]
	if !ok {
		g = group{Key: groupKey(k[0], k[1]), Kind: k[0], Text: k[1], Example: m.Error, First: m.FailedAt}
	}
	g.Count++
	if m.FailedAt.Before(g.First) {
		g.First = m.FailedAt
	}
	if m.FailedAt.After(g.Last) {
		g.Last = m.FailedAt
	}
	t.byKey[k] = g
}

// scan adds the messages matching flt with rows above after, up to
// MaxGroupScan in all.
func (t *groupTally) scan(ctx context.Context, eq *bus.ErrorQueue, flt bus.Filter, after int64) (int, error) {
	n, more, err := scanFrom(ctx, eq, flt, after, MaxGroupScan-t.scanned, t.add)
	t.scanned += n
	t.more = t.more || more
	return n, err
}

// view is the tally as the page shows it: the MaxGroups largest groups.
func (t *groupTally) view() groupsView {
	gv := groupsView{Scanned: t.scanned, Truncated: t.more}
	for _, g := range t.byKey {
		gv.Groups = append(gv.Groups, g)
	}
	sort.Slice(gv.Groups, func(i, j int) bool {
		a, b := gv.Groups[i], gv.Groups[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Kind+a.Text < b.Kind+b.Text
	})
	if len(gv.Groups) > MaxGroups {
		for _, g := range gv.Groups[MaxGroups:] {
			gv.Other += g.Count
		}
		gv.Groups = gv.Groups[:MaxGroups]
	}
	return gv
}

func groupsOf(ctx context.Context, eq *bus.ErrorQueue, flt bus.Filter) (groupsView, error) {
	t := groupTally{byKey: map[[2]string]group{}}
	if _, err := t.scan(ctx, eq, flt, 0); err != nil {
		return groupsView{}, err
	}
	return t.view(), nil
}

type errorListData struct {
	Form     errorForm
	Queues   []string // offered when none is chosen
	URI      string
	Total    int
	Matching int
	Groups   groupsView
	// GroupsAge is how old the remembered Matching and Groups are; zero
	// when just counted.
	GroupsAge time.Duration
	Page      bus.ListPage
	Limit     int
	Kinds     []string
}

func pageLimit(r *http.Request) (int, error) {
	s := r.FormValue("limit")
	if s == "" {
		return DefaultPageSize, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxPageSize {
		return 0, badRequest{fmt.Sprintf("limit %q: want a number from 1 to %d", s, MaxPageSize)}
	}
	return n, nil
}

func formCursor(r *http.Request) (int64, error) {
	s := r.FormValue("after")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, badRequest{fmt.Sprintf("after %q: want a row number", s)}
	}
	return n, nil
}

// groupsAndCounts fills d's Total (the queue's own count), Matching and
// Groups: one scan, remembered a few seconds (groupCache) while the
// queue neither grows nor shrinks. Matching is counted apart only when
// more than MaxGroupScan messages match.
func (h *Handler) groupsAndCounts(ctx context.Context, eq *bus.ErrorQueue, f errorForm, flt bus.Filter, d *errorListData) error {
	c, err := eq.Queue().Count(ctx)
	if err != nil {
		return fmt.Errorf("count %s: %w", eq.URI(), err)
	}
	last, err := eq.Queue().LastRowID(ctx)
	if err != nil {
		return fmt.Errorf("last row of %s: %w", eq.URI(), err)
	}
	d.Total = int(c.Total())
	key := strings.Join([]string{eq.URI(), f.Type, f.Error, f.Kind, f.Since, f.Source}, "\x00")
	unfiltered := f.Type == "" && f.Error == "" && f.Kind == "" && f.Since == "" && f.Source == ""
	now := time.Now()
	e, ok := h.groups.get(key, now)
	switch {
	case ok && e.total == c.Total() && e.last == last:
		d.GroupsAge = now.Sub(e.at)
	case ok && unfiltered && e.tally.more && last > e.last && c.Total() > e.total && c.Total()-e.total < MaxGroupScan:
		// The groups are of the first MaxGroupScan messages: new ones
		// change nothing, unless some were also removed (the new rows then
		// outnumber the growth).
		n, _, err := scanFrom(ctx, eq, flt, e.last, int(c.Total()-e.total)+1, func(bus.FailedMessage) {})
		if err != nil {
			return err
		}
		if int64(n) == c.Total()-e.total {
			e.total, e.last = c.Total(), last
			break
		}
		ok = false
	case ok && unfiltered && !e.tally.more && last > e.last && c.Total() > e.total:
		// Only new failures since: tally them, unless some were also
		// removed (the new rows then outnumber the growth).
		t := groupTally{byKey: maps.Clone(e.tally.byKey), scanned: e.tally.scanned}
		n, err := t.scan(ctx, eq, flt, e.last)
		if err != nil {
			return err
		}
		if int64(n) == c.Total()-e.total && !t.more {
			e = groupEntry{total: c.Total(), last: last, tally: t, at: e.at}
			break
		}
		ok = false
	default:
		ok = false
	}
	if !ok {
		e = groupEntry{total: c.Total(), last: last, tally: groupTally{byKey: map[[2]string]group{}}, at: now}
		if _, err := e.tally.scan(ctx, eq, flt, 0); err != nil {
			return err
		}
	}
	d.Groups = e.tally.view()
	d.Matching = e.tally.scanned
	if unfiltered {
		d.Matching = d.Total
	} else if e.tally.more {
		if d.Matching, err = eq.Count(ctx, flt); err != nil {
			return err
		}
	}
	if len(e.tally.byKey) <= groupCacheGroups {
		h.groups.put(key, e)
	}
	return nil
}

func (h *Handler) errorList(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f := readErrorForm(r)
	d := errorListData{Form: f, Kinds: bus.Kinds()}
	eq, err := h.errorQueue(ctx, f.Queue)
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	if eq == nil {
		d.Queues = h.cfg.ErrorQueues
		h.render(w, r, http.StatusOK, "errors", &page{Title: "Error queues", Nav: "errors", Data: d})
		return
	}
	d.URI, d.Form.Queue = eq.URI(), eq.URI()
	flt, err := f.filter()
	if err == nil {
		d.Limit, err = pageLimit(r)
	}
	var after int64
	if err == nil {
		after, err = formCursor(r)
	}
	if err == nil {
		err = h.groupsAndCounts(ctx, eq, f, flt, &d)
	}
	if err == nil {
		d.Page, err = eq.List(ctx, bus.ListOptions{Filter: flt, After: after, Limit: d.Limit})
	}
	if err != nil {
		var br badRequest
		if !errors.As(err, &br) && strings.Contains(err.Error(), "bad pattern") {
			err = badRequest{err.Error()}
		}
		h.failErr(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "errors", &page{Title: "Error queue " + d.URI, Nav: "errors", Data: d})
}

func (h *Handler) errorMessage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f := readErrorForm(r)
	id := r.FormValue("id")
	if f.Queue == "" {
		h.failErr(w, r, badRequest{"which error queue? pass ?queue=URI&id=MESSAGE_ID"})
		return
	}
	eq, err := h.errorQueue(ctx, f.Queue)
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	m, err := eq.Show(ctx, id)
	if errors.Is(err, bus.ErrNotFound) {
		h.failErr(w, r, notFound{fmt.Sprintf("no message %q in error queue %s", id, eq.URI())})
		return
	}
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	data := map[string]any{"Form": f, "URI": eq.URI(), "M": m, "Body": bodyView{}, "Headers": sortedPairs(nil)}
	if m.Envelope != nil {
		data["Body"] = viewBody(m.Envelope.Body)
		data["Headers"] = sortedPairs(m.Envelope.Headers)
	}
	h.render(w, r, http.StatusOK, "errormessage", &page{Title: "Failed message " + sanitizeLine(id), Nav: "errors", Data: data})
}

// Message search.

type location struct {
	URI        string
	ErrorQueue bool
	D          queue.Delivery
	Headers    []pair
	Body       bodyView
	Deferred   bool
}

type pair struct{ K, V string }

func sortedPairs(m map[string]string) []pair {
	out := []pair{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, pair{k, m[k]})
	}
	return out
}

func (h *Handler) message(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := strings.TrimSpace(r.FormValue("id"))
	data := map[string]any{"ID": id, "Found": []location{}}
	if id == "" {
		h.render(w, r, http.StatusOK, "message", &page{Title: "Find a message", Nav: "message", Data: data})
		return
	}
	var found []location
	visited := 0
	for _, name := range h.conns.Names() {
		s, err := h.conns.Store(ctx, name)
		if err != nil {
			h.failErr(w, r, err)
			return
		}
		qs, err := s.Queues(ctx)
		if err != nil {
			h.failErr(w, r, fmt.Errorf("connection %q: %w", name, err))
			return
		}
		for _, qi := range qs {
			if visited == MaxQueues {
				break
			}
			visited++
			q, err := s.Queue(qi.Name)
			if err != nil {
				h.failErr(w, r, err)
				return
			}
			ds, err := q.FindMessages(ctx, []string{id})
			if err != nil {
				h.failErr(w, r, fmt.Errorf("find %q in %s: %w", id, q.URI(), err))
				return
			}
			for _, d := range ds {
				found = append(found, location{URI: q.URI(), ErrorQueue: slices.Contains(h.cfg.ErrorQueues, q.URI()), D: d,
					Headers: sortedPairs(d.Headers), Body: viewBody(d.Body), Deferred: d.VisibleAt.After(time.Now())})
			}
		}
	}
	if len(found) == 0 {
		data["Missing"] = fmt.Sprintf("no message %q in any queue of %s", id, strings.Join(h.conns.Names(), ", "))
		h.render(w, r, http.StatusNotFound, "message", &page{Title: "Message not found", Nav: "message", Data: data})
		return
	}
	data["Found"] = found
	h.render(w, r, http.StatusOK, "message", &page{Title: "Message " + sanitizeLine(id), Nav: "message", Data: data})
}

// Queue page.

func (h *Handler) queuePage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	uri := r.FormValue("uri")
	q, err := h.queueKnown(ctx, uri)
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	limit, err := pageLimit(r)
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	after, err := formCursor(r)
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	c, err := q.Count(ctx)
	if err != nil {
		h.failErr(w, r, fmt.Errorf("count %s: %w", uri, err))
		return
	}
	ps, err := q.Store().Paused(ctx)
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	paused := false
	for _, p := range ps {
		paused = paused || p.Name == q.Name()
	}
	ds, err := q.Peek(ctx, after, limit+1)
	if err != nil {
		h.failErr(w, r, fmt.Errorf("peek %s: %w", uri, err))
		return
	}
	var next int64
	if len(ds) > limit {
		ds = ds[:limit]
		next = ds[limit-1].ID
	}
	now := time.Now()
	type peeked struct {
		queue.Delivery
		Deferred bool
	}
	rows := make([]peeked, len(ds))
	for i, d := range ds {
		rows[i] = peeked{d, d.VisibleAt.After(now)}
	}
	data := map[string]any{"URI": q.URI(), "Counts": c, "Paused": paused, "Rows": rows, "Next": next, "Limit": limit,
		"ErrorQueue": slices.Contains(h.cfg.ErrorQueues, q.URI())}
	h.render(w, r, http.StatusOK, "queue", &page{Title: "Queue " + q.URI(), Nav: "overview", Data: data})
}
