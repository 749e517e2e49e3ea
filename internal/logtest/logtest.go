// Package logtest records log/slog records for tests that check what a
// component logged.
package logtest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// Record is one logged record with its attributes (groups flattened with dots).
type Record struct {
	Level   slog.Level
	Message string
	Attrs   map[string]slog.Value
}

// String formats the record for test failures.
func (r Record) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q", r.Level, r.Message)
	for k, v := range r.Attrs {
		fmt.Fprintf(&b, " %s=%v", k, v)
	}
	return b.String()
}

// Recorder is a slog.Handler keeping every record at Debug and above.
type Recorder struct {
	mu      *sync.Mutex
	records *[]Record
	attrs   []slog.Attr
}

// New returns a recorder and a logger writing to it.
func New() (*Recorder, *slog.Logger) {
	r := &Recorder{mu: &sync.Mutex{}, records: &[]Record{}}
	return r, slog.New(r)
}

// Enabled implements slog.Handler.
func (r *Recorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler.
func (r *Recorder) Handle(_ context.Context, rec slog.Record) error {
	out := Record{Level: rec.Level, Message: rec.Message, Attrs: map[string]slog.Value{}}
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
func (r *Recorder) WithAttrs(as []slog.Attr) slog.Handler {
	cp := *r
	cp.attrs = append(append([]slog.Attr(nil), r.attrs...), as...)
	return &cp
}

// WithGroup implements slog.Handler; groups are not kept apart.
func (r *Recorder) WithGroup(string) slog.Handler { return r }

// Records returns the records so far.
func (r *Recorder) Records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), *r.records...)
}

// Matching returns the records whose message contains msg.
func (r *Recorder) Matching(msg string) []Record {
	var out []Record
	for _, rec := range r.Records() {
		if strings.Contains(rec.Message, msg) {
			out = append(out, rec)
		}
	}
	return out
}

// Wait waits up to timeout for a record whose message contains msg and
// returns the first; the test fails when none comes.
func (r *Recorder) Wait(t testing.TB, timeout time.Duration, msg string) Record {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if m := r.Matching(msg); len(m) > 0 {
			return m[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log record %q within %s; got:\n%s", msg, timeout, r.dump())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *Recorder) dump() string {
	var b strings.Builder
	for _, rec := range r.Records() {
		b.WriteString(rec.String())
		b.WriteByte('\n')
	}
	return b.String()
}
