package queue

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// ErrUnknownConnection is returned (wrapped) for a connection name that is
// not configured.
var ErrUnknownConnection = errors.New("unknown connection")

// Connections resolves queue URIs against named connection strings, opening
// each store once, on first use.
type Connections struct {
	mu     sync.Mutex
	dsns   map[string]string
	opts   Options
	stores map[string]Store
}

// NewConnections returns a resolver for the named connection strings
// ("default": "sqlite://./ferry.db", "main": "postgres://…"). opts apply to
// every store it opens; their Name is set to the connection's name.
func NewConnections(dsns map[string]string, opts Options) *Connections {
	cp := make(map[string]string, len(dsns))
	for k, v := range dsns {
		cp[k] = v
	}
	return &Connections{dsns: cp, opts: opts, stores: map[string]Store{}}
}

// Names lists the configured connection names, sorted.
func (c *Connections) Names() []string {
	names := make([]string, 0, len(c.dsns))
	for k := range c.dsns {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Store opens (once) and returns the store of the named connection.
func (c *Connections) Store(ctx context.Context, name string) (Store, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.stores[name]; ok {
		return s, nil
	}
	dsn, ok := c.dsns[name]
	if !ok {
		return nil, fmt.Errorf("queue: %w %q (configured: %s)", ErrUnknownConnection, name, strings.Join(c.Names(), ", "))
	}
	opts := c.opts
	opts.Name = name
	s, err := Open(ctx, dsn, opts)
	if err != nil {
		return nil, fmt.Errorf("connection %q: %w", name, err)
	}
	c.stores[name] = s
	return s, nil
}

// Queue resolves a queue URI, sql://CONNECTION/QUEUE.
func (c *Connections) Queue(ctx context.Context, uri string) (Queue, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	if _, ok := c.dsns[u.Connection]; !ok {
		return nil, fmt.Errorf("queue: queue URI %q names %w %q (configured: %s)", uri, ErrUnknownConnection, u.Connection, strings.Join(c.Names(), ", "))
	}
	s, err := c.Store(ctx, u.Connection)
	if err != nil {
		return nil, fmt.Errorf("queue URI %q: %w", uri, err)
	}
	return s.Queue(u.Queue)
}

// Close closes every store opened so far.
func (c *Connections) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for name, s := range c.stores {
		if err := s.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close connection %q: %w", name, err))
		}
		delete(c.stores, name)
	}
	return errors.Join(errs...)
}
