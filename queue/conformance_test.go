package queue_test

import (
	"testing"

	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/queue/queuetest"
)

// TestConformance runs the queue conformance suite on every dialect: each
// subtest gets fresh SQLite files or fresh PostgreSQL schemas from testdb.
// The dialects run in parallel; within one, the subtests run one by one.
func TestConformance(t *testing.T) {
	for _, dialect := range testdb.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			queuetest.Run(t, func(t testing.TB) string { return testdb.DSN(t, dialect) })
		})
	}
}
