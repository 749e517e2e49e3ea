package queue

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Scheme is the scheme of every SQL queue URI.
const Scheme = "sql"

var (
	queueNameRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	connectionNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
)

// maxNameLen bounds queue names so they fit indexes and LISTEN channels.
const maxNameLen = 200

// ErrInvalidURI is returned (wrapped) for a queue URI or queue name that
// does not parse.
var ErrInvalidURI = errors.New("invalid queue URI")

// URI is a parsed queue address: sql://CONNECTION/QUEUE.
type URI struct {
	// Connection names an entry of the connections map.
	Connection string
	// Queue is the queue's name within that connection's store.
	Queue string
}

// String formats the URI as sql://CONNECTION/QUEUE.
func (u URI) String() string { return Scheme + "://" + u.Connection + "/" + u.Queue }

// ParseURI parses sql://CONNECTION/QUEUE and validates both names.
func ParseURI(s string) (URI, error) {
	rest, ok := strings.CutPrefix(s, Scheme+"://")
	if !ok {
		return URI{}, fmt.Errorf("queue: %w %q: want %s://CONNECTION/QUEUE", ErrInvalidURI, s, Scheme)
	}
	conn, name, ok := strings.Cut(rest, "/")
	if !ok || conn == "" || name == "" {
		return URI{}, fmt.Errorf("queue: %w %q: want %s://CONNECTION/QUEUE", ErrInvalidURI, s, Scheme)
	}
	if !connectionNameRE.MatchString(conn) {
		return URI{}, fmt.Errorf("queue: %w %q: connection name %q may hold only letters, digits, '-' and '_'", ErrInvalidURI, s, conn)
	}
	if err := ValidateName(name); err != nil {
		return URI{}, fmt.Errorf("queue: %w %q: %w", ErrInvalidURI, s, err)
	}
	return URI{Connection: conn, Queue: name}, nil
}

// ValidateName checks a queue name: lower-case letters, digits, '.', '-' and
// '_', starting with a letter or digit, at most 200 characters.
func ValidateName(name string) error {
	if len(name) > maxNameLen {
		return fmt.Errorf("queue name %q is longer than %d characters", name, maxNameLen)
	}
	if !queueNameRE.MatchString(name) {
		return fmt.Errorf("queue name %q may hold only lower-case letters, digits, '.', '-' and '_', and must start with a letter or digit", name)
	}
	return nil
}
