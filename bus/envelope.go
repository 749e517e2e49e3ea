package bus

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ferrybus/ferry/queue"
	"github.com/google/uuid"
)

// Envelope is a message with everything the bus knows about it.
type Envelope struct {
	// ID is a UUIDv7, unique per message.
	ID string `json:"id"`
	// Type is the stable message type name, e.g. "orders.placed".
	Type string `json:"type"`
	// ContentType describes Body; "application/json" by default.
	ContentType string `json:"contentType"`
	// Body is the serialized message.
	Body []byte `json:"body"`
	// Headers are user properties; they flow from a handled message to what
	// its handler sends. Names starting with "ferry." are reserved.
	Headers map[string]string `json:"headers,omitempty"`
	// CorrelationID ties together every message of one conversation.
	CorrelationID string `json:"correlationId,omitempty"`
	// CausationID is the id of the message being handled when this one was sent.
	CausationID string `json:"causationId,omitempty"`
	// ReplyTo is the sender's inbox URI.
	ReplyTo string `json:"replyTo,omitempty"`
	// SentAt is when the message was sent.
	SentAt time.Time `json:"sentAt"`
	// DeliverAt defers the message until then (zero: at once).
	DeliverAt time.Time `json:"deliverAt,omitzero"`
	// ExpiresAt, when set, is the time after which the message is not handled.
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	// Priority: higher is received first.
	Priority int `json:"priority,omitempty"`
	// Failures lists every failed attempt, oldest first.
	Failures []Failure `json:"failures,omitempty"`
	// Attempt is the delivery count of the message, this one included (set on receipt).
	Attempt int `json:"attempt,omitempty"`
	// Queue is the URI the message was received from (set on receipt).
	Queue string `json:"queue,omitempty"`
}

// Failure is one failed attempt at handling a message.
type Failure struct {
	At       time.Time `json:"at"`
	Endpoint string    `json:"endpoint"`
	Error    string    `json:"error"`
	// Kind classifies the failure: one of the Kind constants ("error",
	// "panic", "decode", "no-handler", "expired", "permanent", "oversize",
	// "poison").
	Kind  string `json:"kind,omitempty"`
	Stack string `json:"stack,omitempty"`
}

// Reserved header names: the envelope's fields that travel in the queue row's
// headers, beside the user's own.
const (
	HeaderContentType   = "ferry.content-type"
	HeaderCorrelationID = "ferry.correlation-id"
	HeaderCausationID   = "ferry.causation-id"
	HeaderReplyTo       = "ferry.reply-to"
	HeaderSentAt        = "ferry.sent-at"
	HeaderDeliverAt     = "ferry.deliver-at"
	HeaderExpiresAt     = "ferry.expires-at"
	HeaderFailures      = "ferry.failures"
	// HeaderSourceQueue is the queue a message failed in, set when it is
	// moved to an error queue, so it can be returned there.
	HeaderSourceQueue = "ferry.source-queue"
	// HeaderError is the last failure's text, set when it is moved to an error queue.
	HeaderError = "ferry.error"
	// HeaderReturnTo names the queue a message belongs to when it is not
	// the queue it is handled from: should it fail for good, the error
	// queue records this queue as its source, so it is returned there. A
	// distributor stamps it on what it moves to a worker's queue.
	HeaderReturnTo = "ferry.return-to"
	// HeaderRawHeaders keeps, byte for byte, the stored headers of a message
	// moved to an error queue because they could not be decoded.
	HeaderRawHeaders = "ferry.raw-headers"
	// HeaderRawHeadersBase64 is HeaderRawHeaders, base64-encoded, for stored
	// headers that are not valid UTF-8 (a JSON string could not keep them).
	HeaderRawHeadersBase64 = "ferry.raw-headers-base64"
)

const reservedPrefix = "ferry."

// ErrReservedHeader is returned by Send and Publish for a user header whose
// name starts with "ferry.": those names belong to the envelope.
var ErrReservedHeader = errors.New(`names starting with "ferry." are reserved`)

// NewID returns a new UUIDv7 message id.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

// toMessage turns the envelope into a queue row.
func (e *Envelope) toMessage() (queue.Message, error) {
	h := make(map[string]string, len(e.Headers)+8)
	for k, v := range e.Headers {
		h[k] = v
	}
	set := func(k, v string) {
		if v != "" {
			h[k] = v
		}
	}
	set(HeaderContentType, e.ContentType)
	set(HeaderCorrelationID, e.CorrelationID)
	set(HeaderCausationID, e.CausationID)
	set(HeaderReplyTo, e.ReplyTo)
	set(HeaderSentAt, formatTime(e.SentAt))
	set(HeaderDeliverAt, formatTime(e.DeliverAt))
	set(HeaderExpiresAt, formatTime(e.ExpiresAt))
	if len(e.Failures) > 0 {
		b, err := json.Marshal(e.Failures)
		if err != nil {
			return queue.Message{}, fmt.Errorf("message %s: failures: %w", e.ID, err)
		}
		h[HeaderFailures] = string(b)
	}
	return queue.Message{
		MessageID: e.ID,
		Type:      e.Type,
		Priority:  e.Priority,
		Headers:   h,
		Body:      e.Body,
		VisibleAt: e.DeliverAt,
	}, nil
}

// envelopeFrom rebuilds an envelope from a received row. Malformed reserved
// headers are reported, not fatal: the message can still be moved aside.
func envelopeFrom(d queue.Delivery, queueURI string) (*Envelope, error) {
	e := &Envelope{
		ID:       d.MessageID,
		Type:     d.Type,
		Body:     d.Body,
		Priority: d.Priority,
		Attempt:  d.Attempts,
		Queue:    queueURI,
	}
	var errs []string
	if d.HeadersErr != nil {
		errs = append(errs, d.HeadersErr.Error())
	}
	for k, v := range d.Headers {
		var err error
		switch k {
		case HeaderContentType:
			e.ContentType = v
		case HeaderCorrelationID:
			e.CorrelationID = v
		case HeaderCausationID:
			e.CausationID = v
		case HeaderReplyTo:
			e.ReplyTo = v
		case HeaderSentAt:
			e.SentAt, err = parseTime(v)
		case HeaderDeliverAt:
			e.DeliverAt, err = parseTime(v)
		case HeaderExpiresAt:
			e.ExpiresAt, err = parseTime(v)
		case HeaderFailures:
			err = json.Unmarshal([]byte(v), &e.Failures)
		default:
			if e.Headers == nil {
				e.Headers = map[string]string{}
			}
			e.Headers[k] = v
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("header %s: %v", k, err))
		}
	}
	if len(errs) > 0 {
		return e, fmt.Errorf("message %s: %s", d.MessageID, strings.Join(errs, "; "))
	}
	return e, nil
}

// Expired reports whether the message's ExpiresAt has passed at now.
func (e *Envelope) Expired(now time.Time) bool {
	return !e.ExpiresAt.IsZero() && now.After(e.ExpiresAt)
}

// userHeaders are the headers that flow on to messages sent while handling this one.
func (e *Envelope) userHeaders() map[string]string {
	if len(e.Headers) == 0 {
		return nil
	}
	out := make(map[string]string, len(e.Headers))
	for k, v := range e.Headers {
		if !strings.HasPrefix(k, reservedPrefix) {
			out[k] = v
		}
	}
	return out
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMicro(), 10)
}

func parseTime(s string) (time.Time, error) {
	us, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("not microseconds since the epoch: %q", s)
	}
	return time.UnixMicro(us), nil
}
