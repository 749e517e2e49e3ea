package handlers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// redirectServer answers /start with status and Location /target; /target
// records each request and answers 200 whatever its method.
type redirectServer struct {
	*httptest.Server
	mu      sync.Mutex
	targets []recorded
}

type recorded struct {
	method, body, msgID string
}

func newRedirectServer(t *testing.T, status int) *redirectServer {
	s := &redirectServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/start":
			w.Header().Set("Location", "/target")
			w.WriteHeader(status)
		case "/target":
			s.mu.Lock()
			s.targets = append(s.targets, recorded{r.Method, string(b), r.Header.Get(HeaderMessageID)})
			s.mu.Unlock()
			w.WriteHeader(http.StatusOK)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *redirectServer) hits() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.targets...)
}

// TestHTTPRedirectsAreFailures: a 301, 302 or 303 would make Go's client
// send a GET without the body, whose 200 acked the message. It must fail,
// retryably, naming the status and the Location, and the target must never
// be reached. Other 3xx fail the same way.
func TestHTTPRedirectsAreFailures(t *testing.T) {
	for _, status := range []int{301, 302, 303, 300, 304} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			srv := newRedirectServer(t, status)
			err := NewHTTP([]string{srv.URL + "/start"}, 5*time.Second, "w1").HandleMessage(context.Background(), msg())
			if err == nil {
				t.Fatalf("%d → 200 counted as handled; target saw %v", status, srv.hits())
			}
			if bus.IsPermanent(err) {
				t.Errorf("%d: permanent, want retried: %v", status, err)
			}
			if !strings.Contains(err.Error(), strconv.Itoa(status)) || !strings.Contains(err.Error(), `Location "/target"`) {
				t.Errorf("%d: error %q does not name the status and the Location", status, err)
			}
			if h := srv.hits(); len(h) != 0 {
				t.Errorf("%d: the redirect was followed: %v", status, h)
			}
		})
	}
}

// TestHTTPRedirectsOfCallersClient: a handler given a client without a
// redirect policy still does not follow a 302.
func TestHTTPRedirectsOfCallersClient(t *testing.T) {
	srv := newRedirectServer(t, http.StatusFound)
	h := &HTTP{URLs: []string{srv.URL + "/start"}, Endpoint: "w1", Client: &http.Client{Timeout: 5 * time.Second}}
	if err := h.HandleMessage(context.Background(), msg()); err == nil || !strings.Contains(err.Error(), "302") {
		t.Fatalf("302 with the caller's client: %v, want an error naming 302", err)
	}
	if hits := srv.hits(); len(hits) != 0 {
		t.Errorf("the redirect was followed: %v", hits)
	}
	if h.Client.CheckRedirect != nil {
		t.Error("the caller's client was changed")
	}
}

// TestHTTPRedirect307And308ResendTheBody: 307 and 308 keep the method, and
// the client sends the whole body again.
func TestHTTPRedirect307And308ResendTheBody(t *testing.T) {
	body := bytes.Repeat([]byte(`"0123456789abcdef",`), 4096) // 76 KiB: more than one write
	body = append(append([]byte("["), body...), `"end"]`...)
	for _, status := range []int{307, 308} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			srv := newRedirectServer(t, status)
			m := msg()
			m.Body = body
			if err := NewHTTP([]string{srv.URL + "/start"}, 5*time.Second, "w1").HandleMessage(context.Background(), m); err != nil {
				t.Fatalf("%d: %v", status, err)
			}
			hits := srv.hits()
			if len(hits) != 1 {
				t.Fatalf("%d: target reached %d times, want once", status, len(hits))
			}
			if hits[0].method != http.MethodPost || hits[0].body != string(body) || hits[0].msgID != "m-1" {
				t.Errorf("%d: target got %s with %d of %d body bytes, message id %q", status, hits[0].method, len(hits[0].body), len(body), hits[0].msgID)
			}
		})
	}
}

// TestHTTPRedirectLoopIsCapped: 307s are followed at most MaxRedirects
// times, then the handler fails naming the last redirect.
func TestHTTPRedirectLoopIsCapped(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		n.Add(1)
		w.Header().Set("Location", "/loop")
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	err := NewHTTP([]string{srv.URL + "/loop"}, 5*time.Second, "w1").HandleMessage(context.Background(), msg())
	if err == nil || bus.IsPermanent(err) || !strings.Contains(err.Error(), "307") || !strings.Contains(err.Error(), `Location "/loop"`) {
		t.Fatalf("redirect loop: %v, want a retried error naming 307 and the Location", err)
	}
	if got := n.Load(); got != MaxRedirects+1 {
		t.Errorf("requests = %d, want %d (the first and %d redirects)", got, MaxRedirects+1, MaxRedirects)
	}
}

// TestHTTPRedirectEndToEnd: through an endpoint, a message whose target
// answers 302 is not acked as handled: it is retried and then parked in the
// error queue, whose failures name the redirect. The target never sees it.
func TestHTTPRedirectEndToEnd(t *testing.T) {
	for _, dialect := range testdb.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			srv := newRedirectServer(t, http.StatusFound)
			conns := queue.NewConnections(map[string]string{"default": testdb.DSN(t, dialect)},
				queue.Options{AutoMigrate: true, MaxPoll: 100 * time.Millisecond})
			defer conns.Close()
			mux := bus.NewMux()
			mux.Handle("*", NewHTTP([]string{srv.URL + "/start"}, 5*time.Second, "w1"))
			ep, err := bus.New(ctx, conns, bus.Config{Name: "hooks", Inbox: &bus.InboxConfig{
				WorkQueue: "sql://default/hooks", ErrorQueue: "sql://default/hooks-error", Threads: 1,
				Retry: &bus.RetryPolicy{MaxAttempts: 2},
			}}, mux)
			if err != nil {
				t.Fatal(err)
			}
			if err := ep.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer func() {
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				ep.Stop(sctx)
			}()
			id := bus.NewID()
			if err := ep.Send(ctx, bus.Raw{Type: "orders.placed", ContentType: "application/json", Body: []byte(`{"n":1}`)},
				bus.To("sql://default/hooks"), bus.MessageID(id)); err != nil {
				t.Fatal(err)
			}
			eq, err := bus.OpenErrorQueue(ctx, conns, "sql://default/hooks-error")
			if err != nil {
				t.Fatal(err)
			}
			var fm *bus.FailedMessage
			if err := testkit.Poll(ctx, 30*time.Second, 10*time.Millisecond, func() bool {
				fm, err = eq.Show(ctx, id)
				if err == nil {
					return true
				}
				if !errors.Is(err, bus.ErrNotFound) {
					t.Fatal(err)
				}
				if st := ep.Stats(); st.Handled != 0 {
					t.Fatalf("stats %+v: a redirected message counted as handled; target saw %v", st, srv.hits())
				}
				return false
			}); err != nil {
				t.Fatalf("message %s not in the error queue after 30s; stats %+v, target saw %v", id, ep.Stats(), srv.hits())
			}
			if fm.Envelope == nil || len(fm.Envelope.Failures) != 2 {
				t.Fatalf("failed message %+v: want 2 failures", fm)
			}
			for _, f := range fm.Envelope.Failures {
				if !strings.Contains(f.Error, "302") || !strings.Contains(f.Error, `Location "/target"`) {
					t.Errorf("failure %q does not name 302 and the Location", f.Error)
				}
			}
			if st := ep.Stats(); st.Handled != 0 {
				t.Errorf("stats %+v: a redirected message counted as handled", st)
			}
			if hits := srv.hits(); len(hits) != 0 {
				t.Errorf("the redirect was followed: %v", hits)
			}
		})
	}
}
