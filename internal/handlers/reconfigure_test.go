package handlers

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHTTPSetTargetsChangesURLsAndTimeout(t *testing.T) {
	var mu sync.Mutex
	hits := map[string]int{}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		mu.Lock()
		hits[r.URL.Path]++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	defer close(release)

	h := NewHTTP([]string{srv.URL + "/a"}, 5*time.Second, "w1")
	if err := h.HandleMessage(context.Background(), msg()); err != nil {
		t.Fatal(err)
	}
	if err := h.SetTargets(nil, time.Second); err == nil || !strings.Contains(err.Error(), "urls") {
		t.Fatalf("SetTargets(no URLs): %v, want an error naming urls", err)
	}
	if err := h.SetTargets([]string{srv.URL + "/b", srv.URL + "/c"}, 0); err != nil {
		t.Fatal(err)
	}
	if got := h.Timeout(); got != 10*time.Second {
		t.Errorf("timeout 0 gives %s, want the default 10s", got)
	}
	for range 4 {
		if err := h.HandleMessage(context.Background(), msg()); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	if hits["/a"] != 1 || hits["/b"] != 2 || hits["/c"] != 2 {
		t.Errorf("hits %v: want 1 on /a before the change, then /b and /c in turn", hits)
	}
	mu.Unlock()

	// A shorter timeout ends a request the server holds.
	if err := h.SetTargets([]string{srv.URL + "/slow"}, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	err := h.HandleMessage(context.Background(), msg())
	if err == nil || !strings.Contains(err.Error(), "/slow") {
		t.Fatalf("request held past the new timeout: %v, want a timeout error", err)
	}
}
