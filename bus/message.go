package bus

import (
	"context"
	"fmt"
	"sync"

	"database/sql"
)

// Message is a message being handled: its envelope, and the means to send,
// publish, reply and defer in its name. What a handler sends through it is
// dispatched only when the handler succeeds, so a failed attempt sends
// nothing; correlation id, causation id and user headers flow on.
type Message struct {
	Envelope

	ep *Endpoint
	tx *sql.Tx // set for transactional handlers

	mu  sync.Mutex
	out []outgoing
}

// DecodeError is returned when a message body cannot be decoded.
type DecodeError struct {
	Type string
	ID   string
	Err  error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("decode message %s of type %q: %v", e.ID, e.Type, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Decode decodes the body into v (a pointer) with the endpoint's serializer.
func (m *Message) Decode(v any) error {
	if err := m.ep.ser.Unmarshal(m.Body, v); err != nil {
		return &DecodeError{Type: m.Type, ID: m.ID, Err: err}
	}
	return nil
}

func (m *Message) add(ctx context.Context, kind sendKind, body any, opts []SendOption) error {
	out, err := m.ep.prepare(ctx, kind, &m.Envelope, body, opts)
	if err != nil {
		return err
	}
	// Written only when the handler returns: its span ends here, when
	// the message is made.
	endSends(out, nil)
	for i := range out {
		out[i].span = nil
	}
	m.mu.Lock()
	m.out = append(m.out, out...)
	m.mu.Unlock()
	return nil
}

// Send sends body to its routed queue (or To's) when the handler succeeds.
func (m *Message) Send(ctx context.Context, body any, opts ...SendOption) error {
	return m.add(ctx, kindSend, body, opts)
}

// Publish sends body to every subscriber of its type when the handler succeeds.
func (m *Message) Publish(ctx context.Context, body any, opts ...SendOption) error {
	return m.add(ctx, kindPublish, body, opts)
}

// Reply sends body to the sender's inbox when the handler succeeds.
func (m *Message) Reply(ctx context.Context, body any, opts ...SendOption) error {
	return m.add(ctx, kindReply, body, opts)
}

// Tx is the handler's transaction for handlers registered with HandleTx, or nil.
func (m *Message) Tx() *sql.Tx { return m.tx }

// Endpoint is the endpoint handling the message.
func (m *Message) Endpoint() *Endpoint { return m.ep }
