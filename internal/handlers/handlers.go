// Package handlers holds the handlers that need no Go code, for endpoints
// run from the ferry binary: http (POST the body to a URL), log and noop.
package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ferrybus/ferry/bus"
)

// Request headers the http handler sets.
const (
	HeaderMessageID     = "Ferry-Message-Id"
	HeaderMessageType   = "Ferry-Message-Type"
	HeaderAttempt       = "Ferry-Attempt"
	HeaderCorrelationID = "Ferry-Correlation-Id"
	HeaderEndpoint      = "Ferry-Endpoint"
)

// MaxRedirects bounds the 307/308 redirects the http handler follows for
// one message.
const MaxRedirects = 5

// HTTP posts each message body to one of its URLs, spreading messages across
// them in turn. 2xx is success; 408, 429, 5xx, 3xx, timeouts and connection
// errors are retried by the inbox's policy; any other status is permanent.
//
// Redirects: 307 and 308 are followed (at most MaxRedirects), the client
// sending the same method and the whole body again. 301, 302 and 303 are
// not: Go's client would turn the POST into a GET without a body, and its
// 2xx would ack a message that never reached a handler. They fail, naming
// the status and the Location, and are retried: a load balancer draining or
// in maintenance redirects for a while, and a redirect that lasts (http to
// https) ends in the error queue once the retries are spent, from where the
// messages can be returned when the URL is fixed.
type HTTP struct {
	URLs     []string
	Endpoint string // sent as Ferry-Endpoint (the worker's id)
	Client   *http.Client
	next     atomic.Uint64
	live     atomic.Pointer[targets] // set by SetTargets: replaces URLs and Client (reconfigure.go)
}

// NewHTTP returns an http handler with the given timeout per request
// (default 10s).
func NewHTTP(urls []string, timeout time.Duration, endpoint string) *HTTP {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &HTTP{URLs: urls, Endpoint: endpoint, Client: &http.Client{Timeout: timeout, Transport: tr, CheckRedirect: CheckRedirect}}
}

// CheckRedirect is the http handler's redirect policy, for an
// http.Client's CheckRedirect: it follows a 307 or 308 only when the
// redirected request keeps its method and can send the body again, at most
// MaxRedirects times; for anything else it stops, and the client returns
// the redirect response itself, which HandleMessage reports as a failure.
func CheckRedirect(req *http.Request, via []*http.Request) error {
	if req.Response == nil || len(via) == 0 {
		return http.ErrUseLastResponse
	}
	switch req.Response.StatusCode {
	case http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
	default:
		return http.ErrUseLastResponse // 301, 302, 303: the client would send a GET
	}
	orig := via[0]
	if len(via) > MaxRedirects || req.Method != orig.Method ||
		(orig.ContentLength != 0 && (req.GetBody == nil || req.ContentLength != orig.ContentLength)) {
		return http.ErrUseLastResponse
	}
	return nil
}

// HandleMessage posts the message.
func (h *HTTP) HandleMessage(ctx context.Context, m *bus.Message) error {
	urls, c := h.targets() // reconfigure.go: as SetTargets last set them
	url := urls[int(h.next.Add(1)-1)%len(urls)]
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(m.Body))
	if err != nil {
		return bus.Permanent(fmt.Errorf("http handler: %w", err))
	}
	ct := m.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set(HeaderMessageID, m.ID)
	req.Header.Set(HeaderMessageType, m.Type)
	req.Header.Set(HeaderAttempt, strconv.Itoa(m.Attempt))
	req.Header.Set(HeaderCorrelationID, m.CorrelationID)
	req.Header.Set(HeaderEndpoint, h.Endpoint)
	if c.CheckRedirect == nil {
		// A client of the caller's would follow a 302 as a GET: never here.
		cc := *c
		cc.CheckRedirect = CheckRedirect
		c = &cc
	}
	resp, err := c.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("POST %s: %w", url, err) // timeout or connection: retry
		}
		return fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code >= 300 && code < 400:
		// Not followed (see HTTP): the message did not reach a handler.
		loc := "no Location"
		if l := resp.Header.Get("Location"); l != "" {
			loc = "Location " + strconv.Quote(l)
		}
		return fmt.Errorf("POST %s: %s (%s) not followed: a redirect is a failure; point the handler at the final URL", url, resp.Status, loc)
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, bytes.TrimSpace(snippet))
	default:
		return bus.Permanent(fmt.Errorf("POST %s: %s: %s", url, resp.Status, bytes.TrimSpace(snippet)))
	}
}

// Log logs each message and succeeds.
type Log struct{ Logger *slog.Logger }

// HandleMessage logs the message.
func (l Log) HandleMessage(ctx context.Context, m *bus.Message) error {
	l.Logger.Info("message", "id", m.ID, "type", m.Type, "attempt", m.Attempt, "correlation", m.CorrelationID, "body", string(m.Body))
	return nil
}

// Noop succeeds at once.
type Noop struct{}

// HandleMessage does nothing.
func (Noop) HandleMessage(context.Context, *bus.Message) error { return nil }
