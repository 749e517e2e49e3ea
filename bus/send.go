package bus

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ferrybus/ferry/queue"
	"go.opentelemetry.io/otel/trace"
)

// DefaultMaxSendBodyBytes is the send limit on body size when
// Config.MaxSendBodyBytes is zero: 4 MiB. Queue rows are read whole, into
// memory, by every receive; bigger payloads belong in a blob store, the
// message carrying a reference.
const DefaultMaxSendBodyBytes = 4 << 20

// ErrBodyTooLarge is returned by Send, Publish, Reply and the rest for a
// body over the endpoint's MaxSendBodyBytes; nothing is stored.
var ErrBodyTooLarge = errors.New("body over the send limit")

// SendOption adjusts one sent, published or replied message.
type SendOption func(*sendOptions)

type sendOptions struct {
	to            string
	deliverAt     time.Time
	expiresAt     time.Time
	priority      *int
	headers       map[string]string
	correlationID string
	messageID     string
	replyTo       string
}

// To sends to this queue URI instead of the routed one.
func To(uri string) SendOption { return func(o *sendOptions) { o.to = uri } }

// DeliverAt defers delivery until t.
func DeliverAt(t time.Time) SendOption { return func(o *sendOptions) { o.deliverAt = t } }

// DeliverIn defers delivery by d.
func DeliverIn(d time.Duration) SendOption {
	return func(o *sendOptions) { o.deliverAt = time.Now().Add(d) }
}

// ExpiresAt drops the message unhandled if it is received after t.
func ExpiresAt(t time.Time) SendOption { return func(o *sendOptions) { o.expiresAt = t } }

// ExpiresIn drops the message unhandled if it is received more than d after sending.
func ExpiresIn(d time.Duration) SendOption {
	return func(o *sendOptions) { o.expiresAt = time.Now().Add(d) }
}

// Priority sets the priority: higher is received first.
func Priority(p int) SendOption { return func(o *sendOptions) { o.priority = &p } }

// Header sets a user header.
func Header(k, v string) SendOption {
	return func(o *sendOptions) {
		if o.headers == nil {
			o.headers = map[string]string{}
		}
		o.headers[k] = v
	}
}

// CorrelationID sets the correlation id (by default it flows from the
// message being handled, or is the new message's own id).
func CorrelationID(id string) SendOption { return func(o *sendOptions) { o.correlationID = id } }

// MessageID sets the message id instead of a new UUIDv7 (for
// deduplication by idempotent receivers).
func MessageID(id string) SendOption { return func(o *sendOptions) { o.messageID = id } }

// ReplyTo sets the queue URI replies go to (default: the sender's inbox).
func ReplyTo(uri string) SendOption { return func(o *sendOptions) { o.replyTo = uri } }

// Route sends messages whose type matches one of Types (path.Match
// patterns, "orders.*", "*") to Queue.
type Route struct {
	Types []string `json:"types" koanf:"types"`
	Queue string   `json:"queue" koanf:"queue"`
}

// RouteError says a message type has no route, or more than one.
type RouteError struct {
	// Type is the message type.
	Type string
	// Queues are the queues its routes name: none, or several.
	Queues []string
}

func (e *RouteError) Error() string {
	if len(e.Queues) == 0 {
		return fmt.Sprintf("bus: no route for message type %q: add one to routes or send with bus.To", e.Type)
	}
	return fmt.Sprintf("bus: message type %q is routed to %d queues (%s): routes must name one", e.Type, len(e.Queues), strings.Join(e.Queues, ", "))
}

// routeFor finds the one queue a type is routed to.
func routeFor(routes []Route, typ string) (string, error) {
	found := map[string]bool{}
	for _, r := range routes {
		for _, p := range r.Types {
			if ok, _ := path.Match(p, typ); ok {
				found[r.Queue] = true
			}
		}
	}
	qs := make([]string, 0, len(found))
	for q := range found {
		qs = append(qs, q)
	}
	if len(qs) == 1 {
		return qs[0], nil
	}
	sort.Strings(qs)
	return "", &RouteError{Type: typ, Queues: qs}
}

// validateRoutes checks route patterns and URIs.
func validateRoutes(routes []Route) error {
	for i, r := range routes {
		if len(r.Types) == 0 {
			return fmt.Errorf("routes[%d].types: empty", i)
		}
		for j, p := range r.Types {
			if _, err := path.Match(p, ""); err != nil || p == "" {
				return fmt.Errorf("routes[%d].types[%d]: bad pattern %q", i, j, p)
			}
		}
		if _, err := queue.ParseURI(r.Queue); err != nil {
			return fmt.Errorf("routes[%d].queue: %w", i, err)
		}
	}
	return nil
}

// subscriptions caches the SQL subscription table, refreshed when older
// than refresh.
type subscriptions struct {
	store   queue.Store
	refresh time.Duration

	mu     sync.Mutex
	byType map[string][]string
	loaded time.Time
}

func (s *subscriptions) subscribers(ctx context.Context, typ string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byType == nil || time.Since(s.loaded) >= s.refresh {
		m, err := s.store.Subscriptions(ctx)
		if err != nil {
			return nil, err
		}
		s.byType, s.loaded = m, time.Now()
	}
	var out []string
	seen := map[string]bool{}
	for p, uris := range s.byType {
		if ok, _ := path.Match(p, typ); ok {
			for _, u := range uris {
				if !seen[u] {
					seen[u] = true
					out = append(out, u)
				}
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

func (s *subscriptions) invalidate() {
	s.mu.Lock()
	s.byType = nil
	s.mu.Unlock()
}

// outgoing is a message waiting to be enqueued.
type outgoing struct {
	env  *Envelope
	dest queue.Queue
	span trace.Span // the send span, on the first outgoing of a traced message
}

// build makes the envelope of a message sent by this endpoint, while
// handling parent when parent is not nil.
func (e *Endpoint) build(parent *Envelope, body any, opts []SendOption) (*Envelope, *sendOptions, error) {
	var o sendOptions
	for _, opt := range opts {
		opt(&o)
	}
	typ, err := e.mux.typeName(body)
	if err != nil {
		return nil, nil, err
	}
	env := &Envelope{ID: o.messageID, Type: typ, SentAt: time.Now(), DeliverAt: o.deliverAt, ExpiresAt: o.expiresAt}
	if env.ID == "" {
		env.ID = NewID()
	}
	switch b := body.(type) {
	case Raw:
		env.Body, env.ContentType = b.Body, b.ContentType
	case *Raw:
		env.Body, env.ContentType = b.Body, b.ContentType
	default:
		env.Body, err = e.ser.Marshal(body)
		if err != nil {
			return nil, nil, fmt.Errorf("bus: serialize %s: %w", typ, err)
		}
		env.ContentType = e.ser.ContentType()
	}
	if parent != nil {
		env.Headers = parent.userHeaders()
		dropTraceContext(env.Headers)
		env.CorrelationID = parent.CorrelationID
		env.CausationID = parent.ID
		env.Priority = parent.Priority
	}
	for k, v := range o.headers {
		if strings.HasPrefix(k, reservedPrefix) {
			return nil, nil, fmt.Errorf("bus: header %q: %w", k, ErrReservedHeader)
		}
		if env.Headers == nil {
			env.Headers = map[string]string{}
		}
		env.Headers[k] = v
	}
	if o.correlationID != "" {
		env.CorrelationID = o.correlationID
	}
	if env.CorrelationID == "" {
		env.CorrelationID = env.ID
	}
	if o.priority != nil {
		env.Priority = *o.priority
	}
	env.ReplyTo = o.replyTo
	if env.ReplyTo == "" && e.inbox != nil {
		env.ReplyTo = e.inbox.URI()
	}
	return env, &o, nil
}

// sendDest resolves where a sent message goes: To, else its route.
func (e *Endpoint) sendDest(ctx context.Context, env *Envelope, o *sendOptions) ([]queue.Queue, error) {
	uri := o.to
	if uri == "" {
		var err error
		if uri, err = routeFor(e.cfg.Routes, env.Type); err != nil {
			return nil, err
		}
	}
	q, err := e.queue(ctx, uri)
	if err != nil {
		return nil, err
	}
	return []queue.Queue{q}, nil
}

// publishDests resolves every subscriber of a type.
func (e *Endpoint) publishDests(ctx context.Context, env *Envelope) ([]queue.Queue, error) {
	if e.subs == nil {
		return nil, fmt.Errorf("bus: endpoint %q cannot publish %q: no subscription store", e.cfg.Name, env.Type)
	}
	uris, err := e.subs.subscribers(ctx, env.Type)
	if err != nil {
		return nil, err
	}
	out := make([]queue.Queue, 0, len(uris))
	for _, u := range uris {
		q, err := e.queue(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("bus: subscriber of %q: %w", env.Type, err)
		}
		out = append(out, q)
	}
	return out, nil
}

// replyDest resolves the sender's inbox of parent.
func (e *Endpoint) replyDest(ctx context.Context, parent *Envelope) ([]queue.Queue, error) {
	if parent == nil || parent.ReplyTo == "" {
		id := ""
		if parent != nil {
			id = parent.ID
		}
		return nil, fmt.Errorf("bus: cannot reply to message %s: it has no replyTo", id)
	}
	q, err := e.queue(ctx, parent.ReplyTo)
	if err != nil {
		return nil, fmt.Errorf("bus: reply to message %s: %w", parent.ID, err)
	}
	return []queue.Queue{q}, nil
}

// enqueue writes outgoing messages, in tx when it is not nil, and ends
// their send spans.
func enqueue(ctx context.Context, tx queue.Execer, out []outgoing) (err error) {
	defer func() { endSends(out, err) }()
	// One statement per destination queue.
	byQueue := map[queue.Queue][]queue.Message{}
	var order []queue.Queue
	for _, o := range out {
		m, err := o.env.toMessage()
		if err != nil {
			return err
		}
		if _, ok := byQueue[o.dest]; !ok {
			order = append(order, o.dest)
		}
		byQueue[o.dest] = append(byQueue[o.dest], m)
	}
	for _, q := range order {
		var err error
		if tx != nil {
			err = q.EnqueueTx(ctx, tx, byQueue[q]...)
		} else {
			err = q.Enqueue(ctx, byQueue[q]...)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

type sendKind int

const (
	kindSend sendKind = iota
	kindPublish
	kindReply
)

// prepare builds a message and resolves its destinations.
func (e *Endpoint) prepare(ctx context.Context, kind sendKind, parent *Envelope, body any, opts []SendOption) ([]outgoing, error) {
	env, o, err := e.build(parent, body, opts)
	if err != nil {
		return nil, err
	}
	var dests []queue.Queue
	switch kind {
	case kindSend:
		dests, err = e.sendDest(ctx, env, o)
	case kindPublish:
		dests, err = e.publishDests(ctx, env)
	case kindReply:
		if o.to != "" {
			dests, err = e.sendDest(ctx, env, o)
		} else {
			dests, err = e.replyDest(ctx, parent)
		}
		if parent != nil && o.correlationID == "" {
			env.CorrelationID = parent.CorrelationID
		}
	}
	if err != nil {
		return nil, err
	}
	if max := e.cfg.MaxSendBodyBytes; len(env.Body) > max {
		uris := make([]string, len(dests))
		for i, d := range dests {
			uris[i] = d.URI()
		}
		to := strings.Join(uris, ", ")
		if to == "" {
			to = "no subscriber"
		}
		return nil, fmt.Errorf("bus: message %s of type %q to %s: %w: %d bytes, limit %d (maxSendBodyBytes)",
			env.ID, env.Type, to, ErrBodyTooLarge, len(env.Body), max)
	}
	out := make([]outgoing, len(dests))
	for i, d := range dests {
		out[i] = outgoing{env: env, dest: d}
	}
	if span := e.traceSend(ctx, kind, env, dests); span != nil && len(out) > 0 {
		out[0].span = span
	} else if span != nil {
		span.End() // a publish to no subscriber
	}
	return out, nil
}

// Send sends body to the queue its type is routed to (or To's).
func (e *Endpoint) Send(ctx context.Context, body any, opts ...SendOption) error {
	out, err := e.prepare(ctx, kindSend, nil, body, opts)
	if err != nil {
		return err
	}
	return enqueue(ctx, nil, out)
}

// SendTx sends inside the caller's transaction (*sql.Tx or *sqlx.Tx), which
// must be on the database of the destination queue: the message exists only
// if the transaction commits.
func (e *Endpoint) SendTx(ctx context.Context, tx queue.Execer, body any, opts ...SendOption) error {
	out, err := e.prepare(ctx, kindSend, nil, body, opts)
	if err != nil {
		return err
	}
	return enqueue(ctx, tx, out)
}

// Publish sends body to every queue subscribed to its type. With no
// subscriber it does nothing.
func (e *Endpoint) Publish(ctx context.Context, body any, opts ...SendOption) error {
	out, err := e.prepare(ctx, kindPublish, nil, body, opts)
	if err != nil {
		return err
	}
	return enqueue(ctx, nil, out)
}

// PublishTx publishes inside the caller's transaction, which must be on the
// database of every subscriber's queue.
func (e *Endpoint) PublishTx(ctx context.Context, tx queue.Execer, body any, opts ...SendOption) error {
	out, err := e.prepare(ctx, kindPublish, nil, body, opts)
	if err != nil {
		return err
	}
	return enqueue(ctx, tx, out)
}

// Subscribe records that this endpoint's inbox receives published messages
// of each type (or pattern).
func (e *Endpoint) Subscribe(ctx context.Context, types ...string) error {
	if e.inbox == nil {
		return fmt.Errorf("bus: endpoint %q has no inbox to subscribe", e.cfg.Name)
	}
	if e.subs == nil {
		return fmt.Errorf("bus: endpoint %q has no subscription store", e.cfg.Name)
	}
	if err := e.subs.store.Subscribe(ctx, e.inbox.URI(), types...); err != nil {
		return err
	}
	e.subs.invalidate()
	return nil
}

// SendBatch sends many messages in as few statements as possible: one
// INSERT per destination queue (per thousand messages). Each body is routed
// like Send's; opts apply to every message.
func (e *Endpoint) SendBatch(ctx context.Context, bodies []any, opts ...SendOption) error {
	var out []outgoing
	for _, b := range bodies {
		o, err := e.prepare(ctx, kindSend, nil, b, opts)
		if err != nil {
			endSends(out, err)
			return err
		}
		out = append(out, o...)
	}
	return enqueue(ctx, nil, out)
}
