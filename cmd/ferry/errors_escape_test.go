package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// remoteText is what a misbehaving target answered: it would recolour the
// terminal, clear it, and overwrite the line with "\r".
const remoteText = "500 Internal Server Error: \x1b[31mred\x1b[2J\rFORGED \u009b2J done"

// TestErrorsPrintRemoteTextEscaped: `ferry errors show` and `errors ls`
// print a failure text from a remote target with its control characters
// escaped, the rest of it legible; so does `queue peek` a body.
func TestErrorsPrintRemoteTextEscaped(t *testing.T) {
	t.Parallel()
	dir := sendDir(t, "sqlite", nil)
	ctx := context.Background()
	conns := queue.NewConnections(map[string]string{"default": "sqlite://" + filepath.Join(dir, "ferry.db")},
		queue.Options{AutoMigrate: true, MaxPoll: 100 * time.Millisecond})
	defer conns.Close()
	mux := bus.NewMux()
	mux.HandleFunc("*", func(ctx context.Context, m *bus.Message) error { return bus.Permanent(errors.New(remoteText)) })
	ep, err := bus.New(ctx, conns, bus.Config{Name: "hooks\x1b[1m", Inbox: &bus.InboxConfig{
		WorkQueue: "sql://default/hooks", ErrorQueue: "sql://default/error", Threads: 1}}, mux)
	if err != nil {
		t.Fatal(err)
	}
	if err := ep.Start(ctx); err != nil {
		t.Fatal(err)
	}
	id := bus.NewID()
	if err := ep.Send(ctx, bus.Raw{Type: "orders.placed", ContentType: "application/json", Body: []byte("{\"note\":\"\x1b[5mblink\"}")},
		bus.To("sql://default/hooks"), bus.MessageID(id), bus.Header("x-remote", "a\x1b[8mb")); err != nil {
		t.Fatal(err)
	}
	eq, err := bus.OpenErrorQueue(ctx, conns, "sql://default/error")
	if err != nil {
		t.Fatal(err)
	}
	if err := testkit.Poll(ctx, 30*time.Second, 10*time.Millisecond, func() bool {
		_, err := eq.Show(ctx, id)
		if err != nil && !errors.Is(err, bus.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}); err != nil {
		t.Fatalf("message %s not in the error queue after 30s (stats %+v)", id, ep.Stats())
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := ep.Stop(sctx); err != nil {
		t.Fatal(err)
	}

	for _, args := range [][]string{{"errors", "show", id}, {"errors", "ls"}, {"queue", "peek", "sql://default/error"}} {
		out, stderr, code := ferry(t, dir, nil, append(args, "-c", "config.json")...)
		if code != 0 {
			t.Fatalf("ferry %s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
		for _, bad := range []string{"\x1b", "\r", "\u009b"} {
			if strings.Contains(out, bad) {
				t.Errorf("ferry %s prints %q unescaped:\n%q", strings.Join(args, " "), bad, out)
			}
		}
		if args[0] == "errors" && !strings.Contains(out, `\u001b[31mred\u001b[2J\rFORGED \u009b2J`) {
			t.Errorf("ferry %s does not print the escaped error text:\n%s", strings.Join(args, " "), out)
		}
	}
}
