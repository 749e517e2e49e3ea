package opshttp_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/faultproxy"
	"github.com/ferrybus/ferry/internal/opshttp"
	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/internal/testkit"
	"github.com/ferrybus/ferry/queue"
)

// TestReadyzFollowsTheDatabase: with a running endpoint on PostgreSQL
// behind a fault proxy, /readyz turns 503 naming the database check when
// the database stops answering, and 200 again once it is back.
func TestReadyzFollowsTheDatabase(t *testing.T) {
	ctx := context.Background()
	base := testdb.Postgres(t)
	p, proxied := faultproxy.Postgres(t, base)
	conns := queue.NewConnections(map[string]string{"default": proxied}, queue.Options{AutoMigrate: true})
	t.Cleanup(func() { conns.Close() })
	ep, err := bus.New(ctx, conns, bus.Config{Name: "ready", Inbox: &bus.InboxConfig{
		WorkQueue: "sql://default/ready", ErrorQueue: "sql://default/ready-error", Threads: 1,
	}}, bus.NewMux())
	if err != nil {
		t.Fatal(err)
	}
	if err := ep.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ep.Stop(c)
	})
	store, err := conns.Store(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t, opshttp.Config{CheckTimeout: 500 * time.Millisecond, CacheFor: time.Nanosecond})
	_ = s.AddCheck("database default", opshttp.Ping(store.DB()))
	_ = s.AddCheck("endpoint", func(context.Context) error { return nil })

	probe := func() (int, opshttp.Readiness) {
		code, body := get(t, s.Handler(), "/readyz")
		return code, readiness(t, body)
	}
	if code, r := probe(); code != http.StatusOK {
		t.Fatalf("before the outage: %d %+v, want 200", code, r)
	}
	p.Refuse()
	p.DropAll()
	var last opshttp.Readiness
	testkit.Eventually(t, 30*time.Second, "/readyz 503 during the outage", func() bool {
		code, r := probe()
		last = r
		return code == http.StatusServiceUnavailable
	})
	for _, c := range last.Checks {
		switch c.Name {
		case "database default":
			if c.OK || !strings.Contains(c.Error, "database not answering") {
				t.Errorf("database check during the outage: %+v, want failing with its reason", c)
			}
		case "endpoint":
			if !c.OK {
				t.Errorf("endpoint check failing during a database outage: %+v", c)
			}
		}
	}
	p.Accept()
	testkit.Eventually(t, 30*time.Second, "/readyz 200 once the database is back", func() bool {
		code, _ := probe()
		return code == http.StatusOK
	})
	// A frozen database (connections open, no answers) fails at the timeout.
	p.Freeze()
	code, r := probe()
	p.Thaw()
	if code != http.StatusServiceUnavailable {
		t.Errorf("frozen database: %d %+v, want 503", code, r)
	}
}
