package dashboard

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/queue"
)

// forEachStore runs fn on a fresh SQLite file and on a fresh PostgreSQL
// schema, each as connection "default", with "other" on the other kind.
func forEachStore(t *testing.T, fn func(t *testing.T, conns *queue.Connections)) {
	for _, d := range testdb.Dialects() {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			other := "sqlite"
			if d == "sqlite" {
				other = "postgres"
			}
			conns := queue.NewConnections(map[string]string{"default": testdb.DSN(t, d), "other": testdb.DSN(t, other)},
				queue.Options{AutoMigrate: true, MaxPoll: 100 * time.Millisecond})
			t.Cleanup(func() { conns.Close() })
			fn(t, conns)
		})
	}
}

const (
	ordersURI = "sql://default/orders"
	errorURI  = "sql://default/error"
	emptyURI  = "sql://default/quiet"
	otherURI  = "sql://other/orders-again"
)

// testConfig names a work queue, an always empty queue and the error queue.
func testConfig() Config {
	return Config{
		Queues:       map[string][]string{ordersURI: {"shop.inbox"}, emptyURI: {"route"}, errorURI: {"shop.errorQueue"}},
		ErrorQueues:  []string{errorURI},
		Distributors: []Distributor{{Endpoint: "dist", ControlQueue: "sql://default/control"}},
	}
}

func newDash(t *testing.T, conns *queue.Connections, cfg Config) *Handler {
	t.Helper()
	h, err := New(conns, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// failed is a message as an endpoint leaves it in an error queue.
type failed struct {
	id, typ, src, kind, err string
	failures                int
	body                    string
}

func seedErrors(t *testing.T, conns *queue.Connections, fs ...failed) {
	t.Helper()
	q, err := conns.Queue(context.Background(), errorURI)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []queue.Message
	for _, f := range fs {
		n := max(f.failures, 1)
		hist := make([]bus.Failure, n)
		for i := range hist {
			hist[i] = bus.Failure{At: time.Now().Add(time.Duration(i-n) * time.Second), Endpoint: "shop", Error: "earlier failure", Kind: bus.KindError}
		}
		hist[n-1].Error, hist[n-1].Kind = f.err, f.kind
		hb, err := json.Marshal(hist)
		if err != nil {
			t.Fatal(err)
		}
		h := map[string]string{bus.HeaderFailures: string(hb), bus.HeaderError: f.err, bus.HeaderContentType: "application/json", "tenant": "t1"}
		if f.src != "" {
			h[bus.HeaderSourceQueue] = f.src
		}
		body := f.body
		if body == "" {
			body = `{"order":"` + f.id + `","lines":[1,2]}`
		}
		msgs = append(msgs, queue.Message{MessageID: f.id, Type: f.typ, Headers: h, Body: []byte(body)})
	}
	if err := q.Enqueue(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

func enqueue(t *testing.T, conns *queue.Connections, uri string, msgs ...queue.Message) {
	t.Helper()
	q, err := conns.Queue(context.Background(), uri)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

func counts(t *testing.T, conns *queue.Connections, uri string) queue.Counts {
	t.Helper()
	q, err := conns.Queue(context.Background(), uri)
	if err != nil {
		t.Fatal(err)
	}
	c, err := q.Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// resp is a response read whole.
type resp struct {
	Status int
	Body   string
	Header http.Header
}

func get(t *testing.T, h http.Handler, target string, mods ...func(*http.Request)) resp {
	t.Helper()
	return do(t, h, httptest.NewRequest(http.MethodGet, target, nil), mods...)
}

func post(t *testing.T, h http.Handler, target string, form url.Values, mods ...func(*http.Request)) resp {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, h, r, mods...)
}

func do(t *testing.T, h http.Handler, r *http.Request, mods ...func(*http.Request)) resp {
	t.Helper()
	for _, m := range mods {
		m(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return resp{w.Code, string(b), w.Result().Header}
}

func mustStatus(t *testing.T, r resp, want int, what string) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("%s: status %d, want %d\n%s", what, r.Status, want, r.Body)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf is the first CSRF token of a page.
func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf token in page:\n%s", body)
	}
	return strings.ReplaceAll(m[1], "&#43;", "+")
}

// confirmForm posts form to action (with a token of the page), checks the
// confirmation step reports want messages, and posts its form back.
func confirmAndDo(t *testing.T, h *Handler, action string, form url.Values, want int) resp {
	t.Helper()
	form.Set("csrf", h.csrfToken(action))
	c := post(t, h, action, form)
	mustStatus(t, c, http.StatusOK, "confirm step of "+action)
	if !strings.Contains(c.Body, `data-testid="confirm"`) {
		t.Fatalf("%s: no confirmation step:\n%s", action, c.Body)
	}
	if got := testid(t, c.Body, "confirm-count"); got != strconv.Itoa(want) {
		t.Fatalf("%s: confirmation says %s message(s), want %d", action, got, want)
	}
	// Post the confirmation form back exactly as a browser would.
	again := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(c.Body, -1) {
		again.Add(unescape(m[1]), unescape(m[2]))
	}
	if again.Get("confirm") != "yes" || again.Get("csrf") == "" {
		t.Fatalf("%s: confirmation form lacks confirm/csrf: %v", action, again)
	}
	res := post(t, h, action, again)
	mustStatus(t, res, http.StatusOK, action)
	if got := attr(t, res.Body, "result", "data-count"); got != strconv.Itoa(want) {
		t.Fatalf("%s: result reports %s message(s), want %d\n%s", action, got, want, res.Body)
	}
	return res
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)

func unescape(s string) string {
	r := strings.NewReplacer("&#43;", "+", "&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&quot;", `"`)
	return r.Replace(s)
}

// testid is the text of the first element with data-testid=id (no nested tags).
func testid(t *testing.T, body, id string) string {
	t.Helper()
	m := regexp.MustCompile(`data-testid="` + regexp.QuoteMeta(id) + `"[^>]*>([^<]*)<`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no element data-testid=%q in:\n%s", id, body)
	}
	return strings.TrimSpace(m[1])
}

func attr(t *testing.T, body, id, name string) string {
	t.Helper()
	m := regexp.MustCompile(`data-testid="` + regexp.QuoteMeta(id) + `"[^>]*` + name + `="([^"]*)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s on data-testid=%q in:\n%s", name, id, body)
	}
	return m[1]
}

// row is the HTML of the table row with data-testid=kind and the given
// data attribute, "" when there is none.
func row(body, kind, key, value string) string {
	re := regexp.MustCompile(`(?s)<tr data-testid="` + kind + `" ` + key + `="` + regexp.QuoteMeta(value) + `".*?</tr>`)
	return re.FindString(body)
}

func cell(t *testing.T, rowHTML, id string) string {
	t.Helper()
	if rowHTML == "" {
		t.Fatalf("no row (looking for %s)", id)
	}
	return testid(t, rowHTML, id)
}
