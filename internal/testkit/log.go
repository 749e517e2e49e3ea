package testkit

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// LogRecord is one logged record with its attributes (groups flattened with dots).
type LogRecord struct {
	Level   slog.Level
	Message string
	Attrs   map[string]slog.Value
}

// String formats the record for test failures.
func (r LogRecord) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q", r.Level, r.Message)
	for k, v := range r.Attrs {
		fmt.Fprintf(&b, " %s=%v", k, v)
	}
	return b.String()
}

// LogRecorder is a slog.Handler keeping every record at Debug and above.
type LogRecorder struct {
	mu      *sync.Mutex
	records *[]LogRecord
	attrs   []slog.Attr
}

// NewLog returns a log recorder and a logger writing to it.
func NewLog() (*LogRecorder, *slog.Logger) {
	r := &LogRecorder{mu: &sync.Mutex{}, records: &[]LogRecord{}}
	return r, slog.New(r)
}

// Enabled implements slog.Handler.
func (r *LogRecorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler.
func (r *LogRecorder) Handle(_ context.Context, rec slog.Record) error {
	out := LogRecord{Level: rec.Level, Message: rec.Message, Attrs: map[string]slog.Value{}}
	for _, a := range r.attrs {
		out.Attrs[a.Key] = a.Value.Resolve()
	}
	rec.Attrs(func(a slog.Attr) bool {
		out.Attrs[a.Key] = a.Value.Resolve()
		return true
	})
	r.mu.Lock()
	*r.records = append(*r.records, out)
	r.mu.Unlock()
	return nil
}

// WithAttrs implements slog.Handler.
func (r *LogRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	cp := *r
	cp.attrs = append(append([]slog.Attr(nil), r.attrs...), as...)
	return &cp
}

// WithGroup implements slog.Handler; groups are not kept apart.
func (r *LogRecorder) WithGroup(string) slog.Handler { return r }

// Records returns the records so far.
func (r *LogRecorder) Records() []LogRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]LogRecord(nil), *r.records...)
}

// Matching returns the records whose message contains msg.
func (r *LogRecorder) Matching(msg string) []LogRecord {
	var out []LogRecord
	for _, rec := range r.Records() {
		if strings.Contains(rec.Message, msg) {
			out = append(out, rec)
		}
	}
	return out
}

// Wait waits up to timeout for a record whose message contains msg and
// returns the first; the test fails when none comes.
func (r *LogRecorder) Wait(t testing.TB, timeout time.Duration, msg string) LogRecord {
	t.Helper()
	var found []LogRecord
	if err := Poll(context.Background(), timeout, 10*time.Millisecond, func() bool {
		found = r.Matching(msg)
		return len(found) > 0
	}); err != nil {
		t.Fatalf("no log record %q within %s; got:\n%s", msg, timeout, r.dump())
	}
	return found[0]
}

func (r *LogRecorder) dump() string {
	var b strings.Builder
	for _, rec := range r.Records() {
		b.WriteString(rec.String())
		b.WriteByte('\n')
	}
	return b.String()
}
