package faultproxy

import (
	"net/url"
	"testing"
)

// Postgres starts a proxy in front of the server of a postgres:// URL and
// returns it with the URL rewritten to go through it. The proxy is closed
// when the test ends.
func Postgres(t testing.TB, dsn string) (*Proxy, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("faultproxy: %v", err)
	}
	host := u.Host
	if u.Port() == "" {
		host += ":5432"
	}
	p, err := New(host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	u.Host = p.Addr()
	return p, u.String()
}
