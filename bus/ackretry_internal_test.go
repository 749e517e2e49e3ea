package bus

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/ferrybus/ferry/internal/faultproxy"
	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/queue"
)

// TestAckerRetriesThroughAnOutage: an ack whose statement fails because the
// database went away is tried again, and once the database answers the
// message is acked (not left to be delivered and handled a second time).
// With no retries (retryFor 0) the same outage answers with the error.
func TestAckerRetriesThroughAnOutage(t *testing.T) {
	for _, tc := range []struct {
		name     string
		retryFor time.Duration
		wantAck  bool
	}{
		{"retried", time.Minute, true},
		{"not retried", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			p, dsn := faultproxy.Postgres(t, testdb.Postgres(t))
			conns := queue.NewConnections(map[string]string{"default": dsn}, queue.Options{AutoMigrate: true})
			t.Cleanup(func() { conns.Close() })
			q, err := conns.Queue(ctx, "sql://default/acks")
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Enqueue(ctx, queue.Message{MessageID: "m1", Type: "t", Body: []byte("{}")}); err != nil {
				t.Fatal(err)
			}
			ds, err := q.Receive(ctx, 1, time.Minute)
			if err != nil || len(ds) != 1 {
				t.Fatalf("received %d, %v; want 1", len(ds), err)
			}

			a := newAcker(q, tc.retryFor, slog.New(slog.DiscardHandler))
			retrying := make(chan error, 100)
			a.retrying = func(err error) {
				select {
				case retrying <- err:
				default:
				}
			}
			p.Refuse()
			p.DropAll()
			outcome := make(chan error, 1)
			a.ackAsync(ds[0], func(err error) { outcome <- err })
			if tc.wantAck {
				// Wait until a try has failed against the dead server, then
				// bring it back.
				select {
				case err := <-retrying:
					t.Logf("a try failed while the database was away: %v", err)
				case <-time.After(30 * time.Second):
					t.Fatal("no failed try while the database was away")
				}
				p.Accept()
			}
			var got error
			select {
			case got = <-outcome:
			case <-time.After(60 * time.Second):
				t.Fatal("the ack was never answered")
			}
			p.Accept()
			a.close(ctx)
			c, err := q.Count(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantAck {
				if got != nil || c.Total() != 0 {
					t.Fatalf("ack answered %v and the queue holds %+v; want acked through the outage", got, c)
				}
				return
			}
			if got == nil || errors.Is(got, queue.ErrLeaseLost) || c.Total() != 1 {
				t.Fatalf("ack answered %v and the queue holds %+v; want the outage's error and the message still there", got, c)
			}
		})
	}
}
