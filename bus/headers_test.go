package bus_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"github.com/ferrybus/ferry/internal/testkit"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/queue"
)

// insertRawRow stores a message row with headers text as given, as a
// producer other than ferry might.
func insertRawRow(t *testing.T, store queue.Store, queueName, id, headers string) {
	t.Helper()
	now := time.Now().UnixMicro()
	if _, err := store.DB().ExecContext(context.Background(), testkit.SQLX(store).Rebind(`INSERT INTO ferry_messages
 (queue, message_id, type, priority, visible_at, enqueued_at, headers, body) VALUES (?, ?, 'ping', 0, ?, ?, ?, ?)`),
		queueName, id, now, now, headers, []byte(`{"n":1}`)); err != nil {
		t.Fatalf("insert row with headers %q: %v", headers, err)
	}
}

// TestUndecodableHeadersParkedIntact: a row whose stored headers cannot be
// decoded is never handled (not even after a retry with rewritten headers):
// it reaches the error queue as "decode", its raw headers kept byte for byte.
func TestUndecodableHeadersParkedIntact(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		store, err := conns.Store(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		raws := map[string]string{
			"truncated":   `{"ferry.correlation-id":"c-1","x":"y"`,
			"not-strings": `{"ferry.correlation-id": "c-2", "n": 1, "esc": "a\"<&>"}`,
		}
		if store.Dialect() == queue.SQLite {
			raws["not-utf8"] = "{\"ferry.correlation-id\":\"c-3\",\"x\":\"\xff\xfe\"}"
		}
		for id, raw := range raws {
			insertRawRow(t, store, "rawh", id, raw)
		}
		var calls atomic.Int32
		mux := countPings(&calls, func(ctx context.Context, m *bus.Message, p Ping) error {
			t.Errorf("handler ran for %s with headers %v, correlation id %q", m.ID, m.Headers, m.CorrelationID)
			return nil
		})
		ep := start(t, conns, bus.Config{Name: "rawh", Inbox: inbox("rawh", 2)}, mux)
		testkit.Eventually(t, 20*time.Second, "every malformed row in the error queue", func() bool {
			return testkit.Count(t, conns, "sql://default/rawh-error").Total() == int64(len(raws))
		})
		if c := testkit.Count(t, conns, "sql://default/rawh"); c.Total() != 0 {
			t.Errorf("inbox %+v, want empty", c)
		}
		eq, err := conns.Queue(ctx, "sql://default/rawh-error")
		if err != nil {
			t.Fatal(err)
		}
		parked, err := eq.Peek(ctx, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range parked {
			raw := raws[d.MessageID]
			if d.HeadersErr != nil {
				t.Errorf("%s: error-queue headers unreadable: %v", d.MessageID, d.HeadersErr)
				continue
			}
			kept := d.Headers[bus.HeaderRawHeaders]
			if b64, ok := d.Headers[bus.HeaderRawHeadersBase64]; ok {
				b, err := base64.StdEncoding.DecodeString(b64)
				if err != nil {
					t.Errorf("%s: %s: %v", d.MessageID, bus.HeaderRawHeadersBase64, err)
				}
				kept = string(b)
			}
			if kept != raw {
				t.Errorf("%s: raw headers kept as %q, want %q byte for byte", d.MessageID, kept, raw)
			}
			var fs []bus.Failure
			if err := json.Unmarshal([]byte(d.Headers[bus.HeaderFailures]), &fs); err != nil || len(fs) != 1 || fs[0].Kind != bus.KindDecode {
				t.Errorf("%s: failures %s (%v), want one of kind decode", d.MessageID, d.Headers[bus.HeaderFailures], err)
			}
			if d.Headers[bus.HeaderSourceQueue] != "sql://default/rawh" {
				t.Errorf("%s: source queue %q", d.MessageID, d.Headers[bus.HeaderSourceQueue])
			}
		}
		if calls.Load() != 0 {
			t.Errorf("handler ran %d times, want never", calls.Load())
		}
		// The counter moves just after the row does.
		testkit.Eventually(t, 10*time.Second, "every malformed row counted as errored", func() bool {
			return ep.Stats().Errored == int64(len(raws))
		})
		if s := ep.Stats(); s.Handled != 0 {
			t.Errorf("stats %+v, want none handled", s)
		}
	})
}
