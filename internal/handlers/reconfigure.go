package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// targets are the URLs and client of an http handler, swapped whole by
// SetTargets.
type targets struct {
	urls   []string
	client *http.Client
}

// targets returns the URLs and client in force.
func (h *HTTP) targets() ([]string, *http.Client) {
	if t := h.live.Load(); t != nil {
		return t.urls, t.client
	}
	return h.URLs, h.Client
}

// SetTargets changes, for the next requests, the URLs the handler posts to
// and its timeout per request (0: 10s); requests under way finish as they
// began. The client keeps its transport (and its idle connections).
func (h *HTTP) SetTargets(urls []string, timeout time.Duration) error {
	if len(urls) == 0 {
		return errors.New("urls: want at least one")
	}
	for i, u := range urls {
		if _, err := url.Parse(u); err != nil || u == "" {
			return fmt.Errorf("urls[%d]: %q is no URL", i, u)
		}
	}
	if timeout < 0 {
		return fmt.Errorf("timeout: %s is negative", timeout)
	}
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	_, c := h.targets()
	cc := *c
	cc.Timeout = timeout
	h.live.Store(&targets{urls: slices.Clone(urls), client: &cc})
	return nil
}

// Timeout is the timeout per request in force.
func (h *HTTP) Timeout() time.Duration {
	_, c := h.targets()
	return c.Timeout
}
