package queue_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ferrybus/ferry/queue"
)

func TestParseURI(t *testing.T) {
	valid := []struct {
		in   string
		want queue.URI
	}{
		{"sql://default/orders", queue.URI{Connection: "default", Queue: "orders"}},
		{"sql://main/orders.placed-v2_x", queue.URI{Connection: "main", Queue: "orders.placed-v2_x"}},
		{"sql://Main-DB_2/0", queue.URI{Connection: "Main-DB_2", Queue: "0"}},
		{"sql://c/" + strings.Repeat("q", 200), queue.URI{Connection: "c", Queue: strings.Repeat("q", 200)}},
	}
	for _, tc := range valid {
		got, err := queue.ParseURI(tc.in)
		if err != nil {
			t.Errorf("ParseURI(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseURI(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if s := got.String(); s != tc.in {
			t.Errorf("ParseURI(%q).String() = %q", tc.in, s)
		}
	}

	invalid := []struct {
		in      string
		mention string // besides the quoted URI
	}{
		{"", "sql://CONNECTION/QUEUE"},
		{"orders", "sql://CONNECTION/QUEUE"},
		{"sqlite://default/orders", "sql://CONNECTION/QUEUE"},
		{"SQL://default/orders", "sql://CONNECTION/QUEUE"},
		{"sql://", "sql://CONNECTION/QUEUE"},
		{"sql://default", "sql://CONNECTION/QUEUE"},
		{"sql://default/", "sql://CONNECTION/QUEUE"},
		{"sql:///orders", "sql://CONNECTION/QUEUE"},
		{"sql://def ault/orders", `"def ault"`},
		{"sql://-main/orders", `"-main"`},
		{"sql://ma.in/orders", `"ma.in"`},
		{"sql://default/Orders", `"Orders"`},
		{"sql://default/a/b", `"a/b"`},
		{"sql://default/orders?x=1", `"orders?x=1"`},
		{"sql://default/" + strings.Repeat("q", 201), "longer than 200"},
	}
	for _, tc := range invalid {
		got, err := queue.ParseURI(tc.in)
		if err == nil {
			t.Errorf("ParseURI(%q) = %+v, want an error", tc.in, got)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, strconv.Quote(tc.in)) {
			t.Errorf("ParseURI(%q) error %q does not quote the URI", tc.in, msg)
		}
		if !strings.Contains(msg, tc.mention) {
			t.Errorf("ParseURI(%q) error %q does not mention %s", tc.in, msg, tc.mention)
		}
	}
}

func TestValidateName(t *testing.T) {
	for _, name := range []string{"a", "0", "orders", "orders.placed", "orders-placed", "orders_placed", "a.b-c_d.9", "9lives", strings.Repeat("x", 200)} {
		if err := queue.ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q): %v", name, err)
		}
	}
	for _, tc := range []struct{ name, mention string }{
		{"", "lower-case letters"},
		{"Orders", "lower-case letters"},
		{"orders placed", "lower-case letters"},
		{".hidden", "must start with a letter or digit"},
		{"-x", "must start with a letter or digit"},
		{"_x", "must start with a letter or digit"},
		{"a/b", "lower-case letters"},
		{"a:b", "lower-case letters"},
		{"naïve", "lower-case letters"},
		{"tab\there", "lower-case letters"},
		{"drop;table", "lower-case letters"},
		{strings.Repeat("x", 201), "longer than 200 characters"},
	} {
		err := queue.ValidateName(tc.name)
		if err == nil {
			t.Errorf("ValidateName(%q) accepted an invalid name", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), strconv.Quote(tc.name)) {
			t.Errorf("ValidateName(%q) error %q does not quote the name", tc.name, err)
		}
		if !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("ValidateName(%q) error %q does not say %q", tc.name, err, tc.mention)
		}
	}
}

func TestRedactDSN(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://ferry:s3cret@db.example:5432/ferry?sslmode=disable", "postgres://ferry:xxxxx@db.example:5432/ferry?sslmode=disable"},
		{"postgresql://ferry:s3cret@db/ferry", "postgresql://ferry:xxxxx@db/ferry"},
		{"postgres://ferry@db/ferry?sslmode=disable", "postgres://ferry@db/ferry?sslmode=disable"},
		{"postgres://db/ferry?sslmode=disable&password=s3cret", "postgres://db/ferry?password=xxxxx&sslmode=disable"},
		{"postgres://ferry@db/ferry?password=s3cret", "postgres://ferry@db/ferry?password=xxxxx"},
		{"sqlite://./ferry.db", "sqlite://./ferry.db"},
		{"sqlite:///var/lib/ferry.db?_busy_timeout=5000", "sqlite:///var/lib/ferry.db?_busy_timeout=5000"},
		// Not URLs: nothing secret may survive either.
		{"host=db user=ferry password=s3cret dbname=ferry", "host=db user=ferry password=xxxxx dbname=ferry"},
		{"host=db password='s3 cret' dbname=ferry", "host=db password=xxxxx dbname=ferry"},
		{"postgres://ferry:s3cr%zzet@db/ferry", "postgres://xxxxx@db/ferry"},
	} {
		got := queue.RedactDSN(tc.in)
		if got != tc.want {
			t.Errorf("RedactDSN(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(got, "s3") {
			t.Errorf("RedactDSN(%q) = %q leaks the password", tc.in, got)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ dsn, mention string }{
		{"mysql://ferry:s3cret@db/ferry", "want postgres://… or sqlite://PATH"},
		{"host=db password=s3cret", "want postgres://… or sqlite://PATH"},
		{"sqlite://", "SQLite needs a file path"},
		{"sqlite://:memory:", "SQLite needs a file path"},
		// Nothing listens on port 1: the connection fails, the password stays hidden.
		{"postgres://ferry:s3cret@127.0.0.1:1/ferry?sslmode=disable&connect_timeout=2", "connect to postgres://ferry:xxxxx@127.0.0.1:1/"},
	} {
		s, err := queue.Open(ctx, tc.dsn, queue.Options{})
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", tc.dsn)
			continue
		}
		if !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("Open(%q) error %q does not say %q", tc.dsn, err, tc.mention)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q) error %q leaks the password", tc.dsn, err)
		}
	}
}

func TestConnections(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	conns := queue.NewConnections(map[string]string{
		"default": "sqlite://" + filepath.Join(dir, "default.db"),
		"other":   "sqlite://" + filepath.Join(dir, "other.db"),
		"broken":  "mysql://ferry:s3cret@db/ferry",
	}, queue.Options{AutoMigrate: true, Name: "ignored"})
	t.Cleanup(func() { conns.Close() })

	if got, want := strings.Join(conns.Names(), ","), "broken,default,other"; got != want {
		t.Errorf("Names() = %s, want %s", got, want)
	}

	q, err := conns.Queue(ctx, "sql://default/orders")
	if err != nil {
		t.Fatalf("Queue: %v", err)
	}
	if q.Name() != "orders" || q.URI() != "sql://default/orders" {
		t.Errorf("queue %q at %q, want orders at sql://default/orders", q.Name(), q.URI())
	}
	if q.Store().Name() != "default" {
		t.Errorf("store named %q, want the connection name default", q.Store().Name())
	}
	// The store is opened once and shared.
	q2, err := conns.Queue(ctx, "sql://default/invoices")
	if err != nil {
		t.Fatal(err)
	}
	if q2.Store() != q.Store() {
		t.Error("two queues of one connection got different stores")
	}
	s, err := conns.Store(ctx, "default")
	if err != nil || s != q.Store() {
		t.Errorf("Store(default) = %p, %v; want the queue's store %p", s, err, q.Store())
	}
	// The stores work.
	if err := q.Enqueue(ctx, queue.Message{MessageID: "m1"}); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	other, err := conns.Queue(ctx, "sql://other/orders")
	if err != nil {
		t.Fatal(err)
	}
	if other.Store() == q.Store() {
		t.Error("two connections share a store")
	}
	if c, err := other.Count(ctx); err != nil || c.Total() != 0 {
		t.Errorf("the other connection's orders queue: %+v, %v; want empty", c, err)
	}

	// Unknown connection: the error names it, the URI and what is configured.
	_, err = conns.Queue(ctx, "sql://missing/orders")
	if err == nil {
		t.Fatal("Queue with an unknown connection succeeded")
	}
	for _, want := range []string{`"missing"`, `"sql://missing/orders"`, "broken, default, other"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("unknown connection error %q does not mention %s", err, want)
		}
	}
	if _, err := conns.Store(ctx, "missing"); err == nil || !strings.Contains(err.Error(), `"missing"`) {
		t.Errorf("Store(missing) error = %v, want one naming the connection", err)
	}

	// A bad URI is refused by ParseURI's rules.
	if _, err := conns.Queue(ctx, "sql://default/Bad Name"); err == nil || !strings.Contains(err.Error(), `"Bad Name"`) {
		t.Errorf("Queue with a bad name: err = %v, want one quoting the name", err)
	}

	// A connection that cannot open: the error names it and the URI, not the password.
	_, err = conns.Queue(ctx, "sql://broken/orders")
	if err == nil {
		t.Fatal("Queue on a broken connection succeeded")
	}
	for _, want := range []string{`"broken"`, `"sql://broken/orders"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("broken connection error %q does not mention %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("broken connection error %q leaks the password", err)
	}

	// Close closes every store it opened.
	if err := conns.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := q.Store().DB().PingContext(ctx); err == nil {
		t.Error("store still open after Connections.Close")
	}
}
