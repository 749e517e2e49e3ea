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

// HTTP posts each message body to one of its URLs, spreading messages across
// them in turn. 2xx is success; 408, 429, 5xx, timeouts and connection
// errors are retried by the inbox's policy; any other status is permanent.
type HTTP struct {
	URLs     []string
	Endpoint string // sent as Ferry-Endpoint (the worker's id)
	Client   *http.Client
	next     atomic.Uint64
}

// NewHTTP returns an http handler with the given timeout per request
// (default 10s).
func NewHTTP(urls []string, timeout time.Duration, endpoint string) *HTTP {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &HTTP{URLs: urls, Endpoint: endpoint, Client: &http.Client{Timeout: timeout, Transport: tr}}
}

// HandleMessage posts the message.
func (h *HTTP) HandleMessage(ctx context.Context, m *bus.Message) error {
	url := h.URLs[int(h.next.Add(1)-1)%len(h.URLs)]
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
	resp, err := h.Client.Do(req)
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
