package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/dashboard"
	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// Browser tests: the real handler over real SQLite and PostgreSQL behind an
// httptest server, driven by Debian's chromium through chromedp.
//
//	FERRY_REQUIRE_CHROMIUM=1  a missing chromium fails the test (CI) instead of skipping it
//	FERRY_TEST_ARTIFACTS=DIR  screenshots go under DIR (else into the test's temporary folder)
//	FERRY_SCREENSHOTS=DIR     the README's screenshots: DIR/dashboard-overview.png and DIR/dashboard-errors.png
//	                          (a relative DIR is taken from the module root, not the package folder go test runs in)

const (
	bOrders   = "sql://default/orders"
	bBilling  = "sql://default/billing"
	bShipping = "sql://default/shipping"
	bNotify   = "sql://default/notifications"
	bAudit    = "sql://other/audit"
	bError    = "sql://default/error"

	// browserTimeout bounds one store's whole browser session.
	browserTimeout = 2 * time.Minute
)

// chromiumPath is Debian's chromium, or the test is skipped (failed with
// FERRY_REQUIRE_CHROMIUM=1).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "chromium"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("FERRY_REQUIRE_CHROMIUM") == "1" {
		t.Fatal("chromium is required (FERRY_REQUIRE_CHROMIUM=1) but neither /usr/bin/chromium nor chromium on PATH exists: apt-get install chromium")
	}
	t.Skip("chromium not found (/usr/bin/chromium); apt-get install chromium, or set FERRY_REQUIRE_CHROMIUM=1 to fail instead")
	return ""
}

// artifactDir is where a test's screenshots go: under $FERRY_TEST_ARTIFACTS
// when set, else the test's temporary folder.
func artifactDir(t *testing.T) string {
	t.Helper()
	base := os.Getenv("FERRY_TEST_ARTIFACTS")
	if base == "" {
		return t.TempDir()
	}
	dir := filepath.Join(base, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts folder %s (FERRY_TEST_ARTIFACTS): %v", dir, err)
	}
	return dir
}

// screenshotsDir is $FERRY_SCREENSHOTS, a relative path taken from the
// module root (go test runs in the package's folder), "" when unset.
func screenshotsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FERRY_SCREENSHOTS")
	if dir == "" || filepath.IsAbs(dir) {
		return dir
	}
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			return filepath.Join(root, dir)
		}
		up := filepath.Dir(root)
		if up == root {
			t.Fatalf("FERRY_SCREENSHOTS=%s is relative, and no go.mod above the test's folder to take it from", dir)
		}
		root = up
	}
}

// newBrowser starts headless chromium with a fresh profile and no traffic
// of its own (the network here refuses Google's hosts); the context is
// bounded by browserTimeout.
func newBrowser(t *testing.T, execPath string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(execPath),
		chromedp.UserDataDir(t.TempDir()),
		// Its singleton socket goes to TMPDIR: keep it out of /tmp.
		chromedp.Env("TMPDIR=" + t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // CI runs as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(1280, 900),
	}
	ctx, cancelTimeout := context.WithTimeout(context.Background(), browserTimeout)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		cancelTimeout()
	})
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium %s: %v", execPath, err)
	}
	return bctx
}

// browserFailure is a message as an endpoint leaves it in the error queue.
type browserFailure struct {
	id, typ, src, kind, err string
	failures                int
}

func browserEnqueue(t *testing.T, conns *queue.Connections, uri string, msgs ...queue.Message) {
	t.Helper()
	q, err := conns.Queue(context.Background(), uri)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(context.Background(), msgs...); err != nil {
		t.Fatalf("enqueue to %s: %v", uri, err)
	}
}

func browserSeedErrors(t *testing.T, conns *queue.Connections, fs ...browserFailure) {
	t.Helper()
	var msgs []queue.Message
	for i, f := range fs {
		hist := make([]bus.Failure, f.failures)
		for j := range hist {
			hist[j] = bus.Failure{At: time.Now().Add(-time.Duration(len(fs)-i)*7*time.Minute - time.Duration(f.failures-j)*time.Second),
				Endpoint: strings.SplitN(f.typ, ".", 2)[0], Error: f.err, Kind: f.kind}
		}
		hb, err := json.Marshal(hist)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, queue.Message{MessageID: f.id, Type: f.typ, Body: []byte(`{"order":"` + f.id + `","total":129.5}`),
			Headers: map[string]string{bus.HeaderFailures: string(hb), bus.HeaderError: f.err, bus.HeaderContentType: "application/json",
				bus.HeaderSourceQueue: f.src}})
	}
	browserEnqueue(t, conns, bError, msgs...)
}

func readyCount(t *testing.T, conns *queue.Connections, uri string) int64 {
	t.Helper()
	q, err := conns.Queue(context.Background(), uri)
	if err != nil {
		t.Fatal(err)
	}
	c, err := q.Count(context.Background())
	if err != nil {
		t.Fatalf("count %s: %v", uri, err)
	}
	return c.Ready
}

func messages(prefix string, n int, visibleAt time.Time) []queue.Message {
	ms := make([]queue.Message, n)
	for i := range ms {
		ms[i] = queue.Message{MessageID: fmt.Sprintf("%s-%d", prefix, i), Type: "orders.placed", VisibleAt: visibleAt,
			Body: []byte(`{}`)}
	}
	return ms
}

// TestBrowser opens the overview and sees the queues' counts, opens the
// error queue, retries one message through the confirmation step and sees
// it leave (and land in its source queue), then discards one, in chromium,
// on SQLite and on PostgreSQL.
func TestBrowser(t *testing.T) {
	execPath := chromiumPath(t)
	for _, d := range testdb.Dialects() {
		// One browser at a time: chromium is heavy for a 2-core machine.
		t.Run(d, func(t *testing.T) {
			other := "sqlite"
			if d == "sqlite" {
				other = "postgres"
			}
			conns := queue.NewConnections(map[string]string{"default": testdb.DSN(t, d), "other": testdb.DSN(t, other)},
				queue.Options{AutoMigrate: true, MaxPoll: 100 * time.Millisecond})
			t.Cleanup(func() { conns.Close() })
			// Only the SQLite run writes the README's screenshots.
			browserScenario(t, conns, execPath, d == "sqlite")
		})
	}
}

func browserScenario(t *testing.T, conns *queue.Connections, execPath string, readme bool) {
	ctx := context.Background()
	h, err := dashboard.New(conns, dashboard.Config{
		Queues: map[string][]string{bOrders: {"shop.inbox"}, bBilling: {"billing.inbox"}, bShipping: {"shipping.inbox"},
			bNotify: {"notify.inbox"}, bAudit: {"audit.inbox"}, bError: {"shop.errorQueue", "billing.errorQueue"}},
		ErrorQueues:    []string{bError},
		SampleInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	// A bus at work: two rounds of orders (the sampler sees growth),
	// deferred and in-flight messages, a paused queue, a second database.
	browserEnqueue(t, conns, bOrders, messages("o", 60, time.Time{})...)
	browserEnqueue(t, conns, bBilling, messages("b", 41, time.Time{})...)
	browserEnqueue(t, conns, bAudit, messages("a", 560, time.Time{})...)
	if err := testkit.Poll(ctx, 30*time.Second, 20*time.Millisecond, func() bool {
		return strings.Contains(pageOf(t, srv.URL+"/"), `aria-label="enqueued per minute, default"`)
	}); err != nil {
		t.Fatalf("the overview draws no enqueue chart for connection default: %v", err)
	}
	browserEnqueue(t, conns, bOrders, messages("o2", 68, time.Time{})...)
	browserEnqueue(t, conns, bOrders, messages("later", 12, time.Now().Add(time.Hour))...)
	browserEnqueue(t, conns, bShipping, messages("s", 9, time.Time{})...)
	for uri, n := range map[string]int{bOrders: 3, bShipping: 2} {
		q, err := conns.Queue(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := q.Receive(ctx, n, time.Hour); err != nil || len(got) != n {
			t.Fatalf("receive %d from %s: %d, %v", n, uri, len(got), err)
		}
	}
	s, err := conns.Store(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PauseQueue(ctx, "notifications"); err != nil {
		t.Fatal(err)
	}
	browserSeedErrors(t, conns,
		browserFailure{"pay-7731", "billing.charge", bBilling, bus.KindError, "payment gateway: POST /v1/charges: context deadline exceeded after 30s", 5},
		browserFailure{"pay-7745", "billing.charge", bBilling, bus.KindError, "payment gateway: POST /v1/charges: context deadline exceeded after 30s", 5},
		browserFailure{"pay-7802", "billing.charge", bBilling, bus.KindError, "payment gateway: POST /v1/charges: context deadline exceeded after 31s", 5},
		browserFailure{"ord-1042", "orders.placed", bOrders, bus.KindPermanent, "customer 1042 not found", 1},
		browserFailure{"ord-1077", "orders.placed", bOrders, bus.KindPermanent, "customer 1077 not found", 1},
		browserFailure{"ord-1090", "orders.placed", bOrders, bus.KindDecode, `json: cannot unmarshal string into Go struct field Order.total of type float64`, 1},
		browserFailure{"shp-311", "shipping.label", bShipping, bus.KindPanic, "runtime error: index out of range [3] with length 3", 5},
	)

	dir := artifactDir(t)
	shot := func(bctx context.Context, name, readmeName string) {
		t.Helper()
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatalf("write screenshot: %v", err)
		}
		t.Logf("screenshot %s", path)
		if out := screenshotsDir(t); out != "" && readme && readmeName != "" {
			if err := os.MkdirAll(out, 0o755); err != nil {
				t.Fatalf("FERRY_SCREENSHOTS folder %s: %v", out, err)
			}
			if err := os.WriteFile(filepath.Join(out, readmeName), png, 0o644); err != nil {
				t.Fatalf("write README screenshot: %v", err)
			}
		}
	}

	bctx := newBrowser(t, execPath)
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	rowIDs := func() []string {
		t.Helper()
		ids, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](
			`Array.from(document.querySelectorAll('#messages tr[data-testid="message-row"]')).map(r => r.dataset.id)`))
		if err != nil {
			t.Fatalf("message rows: %v", err)
		}
		slices.Sort(ids)
		return ids
	}
	queueRow := func(uri string) string { return `#queues tr[data-testid="queue-row"][data-queue="` + uri + `"]` }

	// 1. The overview: the queues with their counts.
	step("open the overview", chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(queueRow(bOrders))), chromedp.WaitVisible(chromedp.CSS(`svg.spark`)))
	for _, c := range []struct{ sel, want string }{
		{queueRow(bOrders) + ` [data-testid="ready"]`, "125"},
		{queueRow(bOrders) + ` [data-testid="deferred"]`, "12"},
		{queueRow(bOrders) + ` [data-testid="inflight"]`, "3"},
		{queueRow(bBilling) + ` [data-testid="ready"]`, "41"},
		{queueRow(bAudit) + ` [data-testid="ready"]`, "560"},
		{queueRow(bNotify) + ` [data-testid="state"]`, "paused"},
		{`#error-queues tr[data-queue="` + bError + `"] [data-testid="size"]`, "7"},
	} {
		if got := text(c.sel); got != c.want {
			t.Errorf("overview: %s shows %q, want %q", c.sel, got, c.want)
		}
	}
	shot(bctx, "overview.png", "dashboard-overview.png")

	// 2. The error queue, reached by the navigation.
	all := []string{"ord-1042", "ord-1077", "ord-1090", "pay-7731", "pay-7745", "pay-7802", "shp-311"}
	step("open the error queue", chromedp.Click(chromedp.ID("nav-errors"), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`#messages tr[data-testid="message-row"]`)))
	if got := text(`[data-testid="total"]`); got != "7" {
		t.Errorf("error queue total %q, want 7", got)
	}
	if got := rowIDs(); !slices.Equal(got, all) {
		t.Errorf("error queue rows %v, want %v", got, all)
	}
	if got := text(`#groups tr[data-testid="group-row"] [data-testid="group-count"]`); got != "3" {
		t.Errorf("largest failure group counts %q, want 3 (the gateway time-outs)", got)
	}
	shot(bctx, "errors.png", "dashboard-errors.png")

	// act ticks message id, presses the button, checks the confirmation
	// step names one message, confirms and checks the result says one.
	act := func(verb, id string) {
		t.Helper()
		step(verb+" "+id+": tick and ask",
			chromedp.Click(chromedp.CSS(`#messages tr[data-testid="message-row"][data-id="`+id+`"] input[name="id"]`), chromedp.NodeVisible),
			chromedp.Click(chromedp.CSS(`[data-testid="`+verb+`-selected"]`), chromedp.NodeVisible),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="confirm"]`)))
		if got := text(`[data-testid="confirm-count"]`); got != "1" {
			t.Fatalf("%s %s: the confirmation step names %q message(s), want 1", verb, id, got)
		}
		shot(bctx, verb+"-confirm.png", "")
		step(verb+" "+id+": confirm", chromedp.Click(chromedp.CSS(`[data-testid="confirm-yes"]`), chromedp.NodeVisible),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="result"]`)))
		res, err := chromedp.Run(bctx, chromedp.AttributeValue(chromedp.CSS(`[data-testid="result"]`), "data-count"))
		if err != nil || res.Value != "1" {
			t.Fatalf("%s %s: the result reports %q message(s) (%v), want 1", verb, id, res.Value, err)
		}
		shot(bctx, verb+"-result.png", "")
		step("back to the error queue", chromedp.Click(chromedp.ID("nav-errors"), chromedp.NodeVisible),
			chromedp.WaitVisible(chromedp.CSS(`#messages`)))
	}

	// 3. Retry one: it leaves the error queue for its source queue.
	act("retry", "ord-1042")
	if got, want := rowIDs(), slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == "ord-1042" }); !slices.Equal(got, want) {
		t.Errorf("after the retry the rows are %v, want %v", got, want)
	}
	if got := text(`[data-testid="total"]`); got != "6" {
		t.Errorf("after the retry the error queue holds %q, want 6", got)
	}
	if got := readyCount(t, conns, bOrders); got != 126 {
		t.Errorf("after the retry %s has %d ready, want 126 (125 + the retried message)", bOrders, got)
	}

	// 4. Discard one: it leaves the error queue and goes nowhere.
	act("discard", "shp-311")
	want := []string{"ord-1077", "ord-1090", "pay-7731", "pay-7745", "pay-7802"}
	if got := rowIDs(); !slices.Equal(got, want) {
		t.Errorf("after the discard the rows are %v, want %v", got, want)
	}
	if got := text(`[data-testid="total"]`); got != "5" {
		t.Errorf("after the discard the error queue holds %q, want 5", got)
	}
	if got := readyCount(t, conns, bShipping); got != 7 {
		t.Errorf("after the discard %s has %d ready, want 7 (the discarded message is not retried)", bShipping, got)
	}
}

// pageOf is the body of a GET of url.
func pageOf(t *testing.T, url string) string {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return string(b)
}
