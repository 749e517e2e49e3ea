package bus

import (
	"context"
	"errors"
	"fmt"
	"path"
	"reflect"
	"sort"
	"sync"

	"database/sql"
)

// Handler handles one message. Returning an error fails the attempt: the
// retry policy decides what happens next. ctx ends when the endpoint stops.
type Handler interface {
	HandleMessage(ctx context.Context, m *Message) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m *Message) error

// HandleMessage calls f.
func (f HandlerFunc) HandleMessage(ctx context.Context, m *Message) error { return f(ctx, m) }

// Named is implemented by message values that name their own type, so they
// can be sent without registering the name first.
type Named interface {
	MessageType() string
}

// entry is one registration of a Mux.
type entry struct {
	handler Handler
	tx      bool // the handler runs inside a transaction with the ack
}

// Mux maps message type names to handlers, and Go types to type names.
// Patterns use path.Match syntax ("orders.*", "*"); an exact name wins over
// a pattern, and among patterns the longest wins.
type Mux struct {
	mu       sync.RWMutex
	exact    map[string]entry
	patterns map[string]entry
	names    map[reflect.Type]string
}

// NewMux returns an empty Mux.
func NewMux() *Mux {
	return &Mux{exact: map[string]entry{}, patterns: map[string]entry{}, names: map[reflect.Type]string{}}
}

// Handle registers h for messages of type typ (a name or a pattern).
// Registering a type twice panics, as net/http does: it is a programming error.
func (m *Mux) Handle(typ string, h Handler) { m.register(typ, entry{handler: h}) }

// HandleFunc registers f for messages of type typ.
func (m *Mux) HandleFunc(typ string, f func(ctx context.Context, m *Message) error) {
	m.Handle(typ, HandlerFunc(f))
}

func (m *Mux) register(typ string, e entry) {
	if typ == "" {
		panic("bus: Handle with an empty message type")
	}
	if _, err := path.Match(typ, ""); err != nil {
		panic(fmt.Sprintf("bus: message type pattern %q: %v", typ, err))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	target := m.exact
	if isPattern(typ) {
		target = m.patterns
	}
	if _, dup := target[typ]; dup {
		panic(fmt.Sprintf("bus: a handler for message type %q is registered twice", typ))
	}
	target[typ] = e
}

// RegisterType names the Go type T as message type typ for sending.
func RegisterType[T any](m *Mux, typ string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.names[reflect.TypeFor[T]()] = typ
}

// Handle registers a typed handler: the body is decoded into a T before fn
// is called, and T is named typ for sending.
func Handle[T any](m *Mux, typ string, fn func(ctx context.Context, msg *Message, body T) error) {
	RegisterType[T](m, typ)
	m.Handle(typ, HandlerFunc(func(ctx context.Context, msg *Message) error {
		var body T
		if err := msg.Decode(&body); err != nil {
			return err
		}
		return fn(ctx, msg, body)
	}))
}

// HandleTx registers a transactional typed handler: fn's database work in tx
// commits together with the message's ack (and with what fn sends through
// msg to queues of the same database), so its effect happens exactly once.
// An error rolls back both. The transaction is on the inbox's database.
func HandleTx[T any](m *Mux, typ string, fn func(ctx context.Context, msg *Message, tx *sql.Tx, body T) error) {
	RegisterType[T](m, typ)
	m.register(typ, entry{tx: true, handler: HandlerFunc(func(ctx context.Context, msg *Message) error {
		var body T
		if err := msg.Decode(&body); err != nil {
			return err
		}
		if msg.tx == nil {
			return errors.New("bus: transactional handler called without a transaction")
		}
		return fn(ctx, msg, msg.tx, body)
	})})
}

// lookup finds the handler of a message type.
func (m *Mux) lookup(typ string) (entry, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if e, ok := m.exact[typ]; ok {
		return e, true
	}
	best, found := "", false
	for p := range m.patterns {
		if ok, _ := path.Match(p, typ); ok && (!found || len(p) > len(best)) {
			best, found = p, true
		}
	}
	if !found {
		return entry{}, false
	}
	return m.patterns[best], true
}

// Types lists the exact type names that have handlers, sorted.
func (m *Mux) Types() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.exact))
	for t := range m.exact {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// typeName returns the message type name of v.
func (m *Mux) typeName(v any) (string, error) {
	switch b := v.(type) {
	case Raw:
		if b.Type == "" {
			return "", errors.New("bus: Raw message has no Type")
		}
		return b.Type, nil
	case *Raw:
		return m.typeName(*b)
	case Named:
		return b.MessageType(), nil
	}
	t := reflect.TypeOf(v)
	m.mu.RLock()
	name, ok := m.names[t]
	m.mu.RUnlock()
	if !ok {
		return "", fmt.Errorf("bus: Go type %v has no message type name: register it with bus.RegisterType or implement MessageType()", t)
	}
	return name, nil
}

func isPattern(s string) bool {
	for _, c := range s {
		if c == '*' || c == '?' || c == '[' {
			return true
		}
	}
	return false
}

// Raw is a message whose body is already serialized.
type Raw struct {
	Type        string
	ContentType string
	Body        []byte
}
