package handlers

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
)

func msg() *bus.Message {
	return &bus.Message{Envelope: bus.Envelope{ID: "m-1", Type: "orders.placed", ContentType: "application/json",
		Body: []byte(`{"n":1}`), CorrelationID: "c-1", Attempt: 2}}
}

func TestHTTPSuccessAndHeaders(t *testing.T) {
	var got *http.Request
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got, body = r, string(b)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	h := NewHTTP([]string{srv.URL + "/in"}, time.Second, "w1")
	if err := h.HandleMessage(context.Background(), msg()); err != nil {
		t.Fatalf("HandleMessage: %v", err)
	}
	if got.Method != http.MethodPost || got.URL.Path != "/in" || body != `{"n":1}` {
		t.Errorf("request %s %s body %q", got.Method, got.URL, body)
	}
	want := map[string]string{
		"Content-Type": "application/json", HeaderMessageID: "m-1", HeaderMessageType: "orders.placed",
		HeaderAttempt: "2", HeaderCorrelationID: "c-1", HeaderEndpoint: "w1",
	}
	for k, v := range want {
		if got.Header.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, got.Header.Get(k), v)
		}
	}

	m := msg()
	m.ContentType = ""
	if err := h.HandleMessage(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if ct := got.Header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("Content-Type without one = %q", ct)
	}
}

// TestHTTPStatuses: 2xx succeeds; 408, 429 and 5xx are retried; other 4xx are permanent.
func TestHTTPStatuses(t *testing.T) {
	cases := []struct {
		status    int
		ok        bool
		permanent bool
	}{
		{200, true, false}, {201, true, false}, {204, true, false},
		{408, false, false}, {429, false, false}, {500, false, false}, {502, false, false}, {503, false, false},
		{400, false, true}, {401, false, true}, {404, false, true}, {409, false, true}, {422, false, true},
	}
	for _, c := range cases {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "status text", c.status)
		}))
		err := NewHTTP([]string{srv.URL}, time.Second, "w1").HandleMessage(context.Background(), msg())
		srv.Close()
		switch {
		case c.ok && err != nil:
			t.Errorf("%d: %v, want success", c.status, err)
		case !c.ok && err == nil:
			t.Errorf("%d: success, want an error", c.status)
		case !c.ok && bus.IsPermanent(err) != c.permanent:
			t.Errorf("%d: permanent = %v, want %v (%v)", c.status, bus.IsPermanent(err), c.permanent, err)
		}
	}
}

func TestHTTPConnectionErrorsAndTimeoutsAreRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	err = NewHTTP([]string{"http://" + addr + "/x"}, time.Second, "w1").HandleMessage(context.Background(), msg())
	if err == nil || bus.IsPermanent(err) {
		t.Errorf("connection refused: %v (permanent %v), want a retried error", err, bus.IsPermanent(err))
	}

	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	start := time.Now()
	err = NewHTTP([]string{srv.URL}, 100*time.Millisecond, "w1").HandleMessage(context.Background(), msg())
	if err == nil || bus.IsPermanent(err) {
		t.Errorf("timeout: %v (permanent %v), want a retried error", err, bus.IsPermanent(err))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout of 100ms took %s", d)
	}
}

func TestHTTPSpreadsAcrossURLs(t *testing.T) {
	var mu sync.Mutex
	hits := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.URL.Path]++
		mu.Unlock()
	}))
	defer srv.Close()
	h := NewHTTP([]string{srv.URL + "/a", srv.URL + "/b", srv.URL + "/c"}, 0, "w1")
	if h.Client.Timeout != 10*time.Second {
		t.Errorf("default timeout = %s, want 10s", h.Client.Timeout)
	}
	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.HandleMessage(context.Background(), msg()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if hits["/a"] != 10 || hits["/b"] != 10 || hits["/c"] != 10 {
		t.Errorf("hits = %v, want 10 each", hits)
	}
}

func TestLogAndNoop(t *testing.T) {
	if err := (Noop{}).HandleMessage(context.Background(), msg()); err != nil {
		t.Error(err)
	}
	if err := (Log{Logger: slog.New(slog.DiscardHandler)}).HandleMessage(context.Background(), msg()); err != nil {
		t.Error(err)
	}
}
