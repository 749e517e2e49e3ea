// Package testdb gives each test its own database: a fresh PostgreSQL schema
// or a fresh SQLite file, removed when the test ends.
//
// PostgreSQL is found at FERRY_TEST_POSTGRES (default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable). When it cannot be
// reached the test is skipped, unless FERRY_REQUIRE_POSTGRES=1 (as in CI),
// where it fails.
package testdb

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/lib/pq" // the "postgres" driver
)

// DefaultPostgres is the server tests use when FERRY_TEST_POSTGRES is unset.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Dialects lists the store kinds a conformance test runs against.
func Dialects() []string { return []string{"sqlite", "postgres"} }

// DSN returns a fresh database of the given dialect ("sqlite" or "postgres")
// as a ferry connection string.
func DSN(t testing.TB, dialect string) string {
	t.Helper()
	switch dialect {
	case "sqlite":
		return SQLite(t)
	case "postgres":
		return Postgres(t)
	}
	t.Fatalf("testdb: unknown dialect %q", dialect)
	return ""
}

// SQLite returns sqlite://PATH of a new file in the test's temporary folder.
func SQLite(t testing.TB) string {
	t.Helper()
	return "sqlite://" + filepath.Join(t.TempDir(), "ferry.db")
}

// Postgres creates a schema of its own for the test and returns a
// connection string whose search_path points at it. The schema is dropped
// when the test ends.
func Postgres(t testing.TB) string {
	t.Helper()
	base := os.Getenv("FERRY_TEST_POSTGRES")
	if base == "" {
		base = DefaultPostgres
	}
	db, err := sql.Open("postgres", base)
	if err == nil {
		err = db.Ping()
	}
	if err != nil {
		if db != nil {
			db.Close()
		}
		if os.Getenv("FERRY_REQUIRE_POSTGRES") == "1" {
			t.Fatalf("testdb: PostgreSQL is required (FERRY_REQUIRE_POSTGRES=1) but %s is unreachable: %v", base, err)
		}
		t.Skipf("testdb: PostgreSQL unreachable at %s (%v); set FERRY_TEST_POSTGRES", base, err)
	}
	defer db.Close()
	schema := "ferry_test_" + randomHex(6)
	if _, err := db.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatalf("testdb: create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("postgres", base)
		if err != nil {
			return
		}
		defer db.Close()
		if _, err := db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			t.Logf("testdb: drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testdb: FERRY_TEST_POSTGRES %q: %v", base, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return strings.ToLower(hex.EncodeToString(b))
}
