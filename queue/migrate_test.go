package queue_test

import (
	"context"
	"github.com/ferrybus/ferry/internal/testkit"
	"sync"
	"testing"

	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/queue"
)

func TestMigrations(t *testing.T) {
	var names [2][]string
	for i, d := range []queue.Dialect{queue.SQLite, queue.Postgres} {
		migs, err := queue.Migrations(d)
		if err != nil {
			t.Fatalf("Migrations(%s): %v", d, err)
		}
		if len(migs) == 0 {
			t.Fatalf("Migrations(%s): none embedded", d)
		}
		for j, m := range migs {
			// Two files of one version would both run, then clash in ferry_migrations.
			if m.Version <= 0 || (j > 0 && m.Version <= migs[j-1].Version) {
				t.Errorf("%s migration %s has version %d: versions must be positive and unique", d, m.Name, m.Version)
			}
			if m.SQL == "" {
				t.Errorf("%s migration %s is empty", d, m.Name)
			}
			names[i] = append(names[i], m.Name)
		}
	}
	// Both dialects evolve together.
	if len(names[0]) != len(names[1]) {
		t.Fatalf("sqlite migrations %v, postgres %v: want the same list", names[0], names[1])
	}
	for i := range names[0] {
		if names[0][i] != names[1][i] {
			t.Errorf("migration %d is %s on sqlite, %s on postgres", i+1, names[0][i], names[1][i])
		}
	}
	if _, err := queue.Migrations("oracle"); err == nil {
		t.Error("Migrations(oracle) succeeded")
	}
}

func openUnmigrated(t *testing.T, dsn string) queue.Store {
	t.Helper()
	s, err := queue.Open(context.Background(), dsn, queue.Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMigrateTwiceIsNoop(t *testing.T) {
	for _, dialect := range testdb.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			dsn := testdb.DSN(t, dialect)
			s := openUnmigrated(t, dsn)
			migs, err := queue.Migrations(s.Dialect())
			if err != nil {
				t.Fatal(err)
			}
			n, err := s.MigrateCount(ctx)
			if err != nil || n != len(migs) {
				t.Fatalf("first MigrateCount = %d, %v; want %d, nil", n, err, len(migs))
			}
			q, err := s.Queue("q")
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Enqueue(ctx, queue.Message{MessageID: "kept"}); err != nil {
				t.Fatalf("Enqueue after migrating: %v", err)
			}
			n, err = s.MigrateCount(ctx)
			if err != nil || n != 0 {
				t.Fatalf("second MigrateCount = %d, %v; want 0, nil", n, err)
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("Migrate a third time: %v", err)
			}
			// A store opened with AutoMigrate finds nothing to do either.
			auto, err := queue.Open(ctx, dsn, queue.Options{AutoMigrate: true})
			if err != nil {
				t.Fatalf("open with AutoMigrate on a migrated database: %v", err)
			}
			defer auto.Close()
			if n, err := auto.MigrateCount(ctx); err != nil || n != 0 {
				t.Fatalf("MigrateCount after AutoMigrate = %d, %v; want 0, nil", n, err)
			}
			// The data survived.
			if c, err := q.Count(ctx); err != nil || c.Ready != 1 {
				t.Fatalf("Count after migrating again = %+v, %v; want the message kept", c, err)
			}
			var versions int
			if err := testkit.SQLX(s).GetContext(ctx, &versions, "SELECT COUNT(*) FROM ferry_migrations"); err != nil || versions != len(migs) {
				t.Fatalf("ferry_migrations holds %d rows (%v), want %d", versions, err, len(migs))
			}
		})
	}
}

func TestMigrateConcurrently(t *testing.T) {
	for _, dialect := range testdb.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			dsn := testdb.DSN(t, dialect)
			const n = 4
			var (
				wg      sync.WaitGroup
				applied [n]int
				errs    [n]error
				start   = make(chan struct{})
			)
			// Each goroutine opens its own store (on SQLite the first one
			// creates the file) and migrates, all at once.
			stores := make([]queue.Store, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					s, err := queue.Open(ctx, dsn, queue.Options{})
					if err != nil {
						errs[i] = err
						return
					}
					stores[i] = s
					applied[i], errs[i] = s.MigrateCount(ctx)
				}()
			}
			close(start)
			wg.Wait()
			for _, s := range stores {
				if s != nil {
					t.Cleanup(func() { s.Close() })
				}
			}
			total := 0
			for i := range n {
				if errs[i] != nil {
					t.Errorf("store %d: %v", i, errs[i])
				}
				total += applied[i]
			}
			if t.Failed() {
				t.FailNow()
			}
			migs, err := queue.Migrations(stores[0].Dialect())
			if err != nil {
				t.Fatal(err)
			}
			if total != len(migs) {
				t.Fatalf("the stores applied %v migrations, %d in all; want %d in all", applied, total, len(migs))
			}
			for i, s := range stores {
				q, err := s.Queue("q")
				if err != nil {
					t.Fatal(err)
				}
				if err := q.Enqueue(ctx, queue.Message{MessageID: "m"}); err != nil {
					t.Errorf("store %d: Enqueue after migrating: %v", i, err)
				}
			}
		})
	}
}

// Opening stores with AutoMigrate at once (several instances starting
// together) must work as well.
func TestAutoMigrateConcurrently(t *testing.T) {
	for _, dialect := range testdb.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			dsn := testdb.DSN(t, dialect)
			const n = 4
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s, err := queue.Open(context.Background(), dsn, queue.Options{AutoMigrate: true})
					if err != nil {
						errs[i] = err
						return
					}
					errs[i] = s.Close()
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("store %d: %v", i, err)
				}
			}
		})
	}
}
