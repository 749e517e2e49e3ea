package dashboard

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/queue"
)

// TestRefusals: no token when one is required, bad or missing CSRF
// tokens, GET on an action, unknown queues and messages.
func TestRefusals(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		seedErrors(t, conns, failed{id: "m1", typ: "t", src: ordersURI, kind: bus.KindError, err: "x"})
		cfg := testConfig()
		cfg.Token = "s3cret-token"
		h := newDash(t, conns, cfg)

		t.Run("token", func(t *testing.T) {
			if r := get(t, h, "/"); r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
				t.Errorf("GET / without token: %d %s", r.Status, r.Header.Get("Location"))
			}
			for _, path := range []string{"/fragment/overview", "/errors", "/workers"} {
				bearer := func(r *http.Request) { r.Header.Set("Authorization", "Bearer wrong") }
				if r := get(t, h, path, bearer); r.Status != http.StatusUnauthorized {
					t.Errorf("GET %s with a wrong bearer: %d", path, r.Status)
				}
			}
			if r := get(t, h, "/fragment/overview"); r.Status != http.StatusUnauthorized {
				t.Errorf("fragment without token: %d", r.Status)
			}
			form := url.Values{"uri": {ordersURI}, "csrf": {h.csrfToken("/queue/purge")}, "confirm": {"yes"}}
			if r := post(t, h, "/queue/purge", form); r.Status != http.StatusUnauthorized {
				t.Errorf("purge without token: %d", r.Status)
			}
			ok := func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cret-token") }
			mustStatus(t, get(t, h, "/", ok), http.StatusOK, "GET / with the bearer token")
			if r := get(t, h, "/assets/style.css"); r.Status != http.StatusOK {
				t.Errorf("assets need no token: %d", r.Status)
			}
			// The login form: a wrong token is refused, the right one gives a cookie.
			lp := get(t, h, "/login")
			mustStatus(t, lp, http.StatusOK, "login page")
			bad := post(t, h, "/login", url.Values{"csrf": {csrfOf(t, lp.Body)}, "token": {"nope"}})
			if bad.Status != http.StatusUnauthorized || bad.Header.Get("Set-Cookie") != "" {
				t.Errorf("login with a wrong token: %d, cookie %q", bad.Status, bad.Header.Get("Set-Cookie"))
			}
			good := post(t, h, "/login", url.Values{"csrf": {csrfOf(t, lp.Body)}, "token": {"s3cret-token"}})
			if good.Status != http.StatusSeeOther {
				t.Fatalf("login: %d", good.Status)
			}
			cookie := good.Header.Get("Set-Cookie")
			if !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") || strings.Contains(cookie, "s3cret-token") {
				t.Errorf("login cookie %q", cookie)
			}
			withCookie := func(r *http.Request) { r.Header.Set("Cookie", strings.Split(cookie, ";")[0]) }
			mustStatus(t, get(t, h, "/errors", withCookie), http.StatusOK, "GET /errors with the cookie")
			forged := func(r *http.Request) { r.Header.Set("Cookie", cookieName+"=forged") }
			if r := get(t, h, "/fragment/overview", forged); r.Status != http.StatusUnauthorized {
				t.Errorf("a forged cookie: %d", r.Status)
			}
		})

		open := newDash(t, conns, testConfig())
		t.Run("csrf", func(t *testing.T) {
			for name, tok := range map[string]string{
				"missing":        "",
				"garbage":        "abc",
				"forged":         "AAAAAAAAAAAAAAAAAAAAAA.AAAA",
				"another action": open.csrfToken("/login"),
				"another secret": h.csrfToken("/queue/purge"),
			} {
				form := url.Values{"uri": {ordersURI}, "confirm": {"yes"}}
				if tok != "" {
					form.Set("csrf", tok)
				}
				r := post(t, open, "/queue/purge", form)
				if r.Status != http.StatusForbidden || !strings.Contains(r.Body, "CSRF") {
					t.Errorf("%s CSRF token: %d", name, r.Status)
				}
				form.Set("queue", errorURI)
				form.Set("scope", "filter")
				if r := post(t, open, "/errors/discard", form); r.Status != http.StatusForbidden {
					t.Errorf("%s CSRF token on discard: %d", name, r.Status)
				}
			}
			if c := counts(t, conns, errorURI); c.Total() != 1 {
				t.Errorf("a refused action changed the error queue: %d left", c.Total())
			}
		})

		t.Run("method", func(t *testing.T) {
			for _, path := range []string{"/queue/purge?uri=" + url.QueryEscape(ordersURI), "/queue/pause", "/queue/resume",
				"/errors/retry?queue=" + url.QueryEscape(errorURI) + "&scope=filter&confirm=yes", "/errors/discard", "/logout"} {
				if r := get(t, open, path); r.Status != http.StatusMethodNotAllowed {
					t.Errorf("GET %s: %d, want 405", path, r.Status)
				}
			}
			if c := counts(t, conns, errorURI); c.Total() != 1 {
				t.Error("a GET changed the error queue")
			}
		})

		t.Run("not found", func(t *testing.T) {
			for path, want := range map[string]string{
				"/queue?uri=" + url.QueryEscape("sql://default/never"): "no queue sql://default/never",
				"/queue?uri=" + url.QueryEscape("sql://nowhere/q"):     "no connection &#34;nowhere&#34;",
				"/queue?uri=bogus": "queue &#34;bogus&#34;",
				"/errors?queue=" + url.QueryEscape("sql://default/never"):            "no queue sql://default/never",
				"/errors/message?queue=" + url.QueryEscape(errorURI) + "&id=missing": "no message &#34;missing&#34; in error queue",
				"/message?id=missing": "no message &#34;missing&#34; in any queue",
				"/no/such/page":       "no page",
			} {
				r := get(t, open, path)
				if r.Status != http.StatusNotFound || !strings.Contains(r.Body, want) {
					t.Errorf("GET %s: %d, want 404 with %q\n%s", path, r.Status, want, r.Body)
				}
			}
			gone := url.Values{"queue": {errorURI}, "scope": {"ids"}, "id": {"gone"}, "csrf": {open.csrfToken("/errors/retry")}}
			if r := post(t, open, "/errors/retry", gone); r.Status != http.StatusNotFound || !strings.Contains(r.Body, "no message &#34;gone&#34; in error queue") {
				t.Errorf("retry of an unknown message: %d\n%s", r.Status, r.Body)
			}
			form := url.Values{"uri": {"sql://default/never"}, "csrf": {open.csrfToken("/queue/purge")}}
			if r := post(t, open, "/queue/purge", form); r.Status != http.StatusNotFound {
				t.Errorf("purge of an unknown queue: %d", r.Status)
			}
		})

		t.Run("headers", func(t *testing.T) {
			r := get(t, open, "/")
			csp := r.Header.Get("Content-Security-Policy")
			for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "default-src 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			if r.Header.Get("X-Frame-Options") != "DENY" {
				t.Error("no X-Frame-Options")
			}
			if strings.Contains(r.Body, "<script>") || strings.Contains(r.Body, " style=") || strings.Contains(r.Body, " onclick=") {
				t.Error("the page has inline script or style, which the CSP blocks")
			}
		})

		t.Run("hosts", func(t *testing.T) {
			c := testConfig()
			c.Hosts = []string{"127.0.0.1", "localhost"}
			hh := newDash(t, conns, c)
			r := get(t, hh, "/", func(r *http.Request) { r.Host = "evil.example:8089" })
			if r.Status != http.StatusMisdirectedRequest {
				t.Errorf("a foreign Host: %d", r.Status)
			}
			mustStatus(t, get(t, hh, "/", func(r *http.Request) { r.Host = "127.0.0.1:8089" }), http.StatusOK, "loopback host")
		})
	})
}

// TestInertText: an error text, type, header and body carrying HTML and
// terminal escapes are shown escaped, on every page that shows them.
func TestInertText(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		evil := "<script>alert(1)</script><img src=x onerror=alert(2)>\x1b[31mred\x1b]0;title\x07\u202eevil"
		seedErrors(t, conns, failed{id: "evil", typ: "t<b>", src: ordersURI, kind: bus.KindError, err: evil, body: "body " + evil})
		enqueue(t, conns, ordersURI, queue.Message{MessageID: "evil", Type: "<i>x</i>", Headers: map[string]string{"h<x>": evil}, Body: []byte(evil)})
		h := newDash(t, conns, testConfig())
		for _, path := range []string{"/errors", "/errors/message?queue=" + url.QueryEscape(errorURI) + "&id=evil", "/message?id=evil",
			"/queue?uri=" + url.QueryEscape(ordersURI)} {
			r := get(t, h, path)
			mustStatus(t, r, http.StatusOK, path)
			for _, bad := range []string{"<script>alert", "<img", "<b>", "<i>", "\x1b", "\x07", "\u202e"} {
				if strings.Contains(r.Body, bad) {
					t.Errorf("%s shows %q raw", path, bad)
				}
			}
			if path != "/queue?uri="+url.QueryEscape(ordersURI) && !strings.Contains(r.Body, `&lt;script&gt;alert(1)&lt;/script&gt;`) {
				t.Errorf("%s does not show the error text escaped", path)
			}
			if path != "/queue?uri="+url.QueryEscape(ordersURI) && !strings.Contains(r.Body, `\u001b[31mred`) {
				t.Errorf("%s does not show the terminal escape as \\u001b", path)
			}
		}
	})
}

// TestPrefix: mounted under a prefix, pages, links and forms carry it.
func TestPrefix(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		cfg := testConfig()
		cfg.Prefix = "/ferry"
		h := newDash(t, conns, cfg)
		mux := http.NewServeMux()
		mux.Handle("/ferry/", h)
		mux.Handle("/ferry", h)
		r := get(t, mux, "/ferry/")
		mustStatus(t, r, http.StatusOK, "/ferry/")
		if !strings.Contains(r.Body, `href="/ferry/assets/style.css"`) || !strings.Contains(r.Body, `data-refresh="/ferry/fragment/overview"`) {
			t.Error("links lack the prefix")
		}
		if r := get(t, mux, "/ferry"); r.Status != http.StatusFound || r.Header.Get("Location") != "/ferry/" {
			t.Errorf("/ferry: %d %s", r.Status, r.Header.Get("Location"))
		}
		enqueue(t, conns, ordersURI, queue.Message{MessageID: "a"})
		form := url.Values{"uri": {ordersURI}, "csrf": {h.csrfToken("/queue/pause")}}
		mustStatus(t, post(t, mux, "/ferry/queue/pause", form), http.StatusOK, "pause under the prefix")
		if _, err := New(conns, Config{Prefix: "ferry/"}); err == nil {
			t.Error("a bad prefix was accepted")
		}
	})
}
