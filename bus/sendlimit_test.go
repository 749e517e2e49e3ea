package bus_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/queue"
)

// TestSendBodyLimit: a body over the endpoint's send limit (by default
// DefaultMaxSendBodyBytes) is refused with ErrBodyTooLarge, naming the
// message type, the queue and the limit, and nothing of the call is stored.
func TestSendBodyLimit(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		ctx := context.Background()
		const uri = "sql://default/big"
		q, err := conns.Queue(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		ready := func() int64 {
			t.Helper()
			c, err := q.Count(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return c.Ready
		}
		raw := func(n int) bus.Raw {
			return bus.Raw{Type: "files.uploaded", ContentType: "application/octet-stream", Body: bytes.Repeat([]byte("x"), n)}
		}
		tooLarge := func(err error, limit int) {
			t.Helper()
			if !errors.Is(err, bus.ErrBodyTooLarge) {
				t.Fatalf("%v, want ErrBodyTooLarge", err)
			}
			for _, want := range []string{`"files.uploaded"`, uri, "limit " + strconv.Itoa(limit), "maxSendBodyBytes"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %s", err, want)
				}
			}
		}

		def, err := bus.New(ctx, conns, bus.Config{Name: "sender"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := def.Send(ctx, raw(bus.DefaultMaxSendBodyBytes), bus.To(uri)); err != nil {
			t.Fatalf("a body of exactly the default limit: %v", err)
		}
		tooLarge(def.Send(ctx, raw(bus.DefaultMaxSendBodyBytes+1), bus.To(uri)), bus.DefaultMaxSendBodyBytes)
		tooLarge(def.SendBatch(ctx, []any{raw(1), raw(bus.DefaultMaxSendBodyBytes + 1)}, bus.To(uri)), bus.DefaultMaxSendBodyBytes)

		small, err := bus.New(ctx, conns, bus.Config{Name: "small", MaxSendBodyBytes: 10}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := small.Send(ctx, raw(10), bus.To(uri)); err != nil {
			t.Fatalf("10 bytes with a limit of 10: %v", err)
		}
		tooLarge(small.Send(ctx, raw(11), bus.To(uri)), 10)
		if n := ready(); n != 2 {
			t.Errorf("ready = %d, want 2: a refused body stored something", n)
		}

		if _, err := bus.New(ctx, conns, bus.Config{Name: "neg", MaxSendBodyBytes: -1}, nil); err == nil || !strings.Contains(err.Error(), "maxSendBodyBytes") {
			t.Errorf("MaxSendBodyBytes -1: %v, want an error naming maxSendBodyBytes", err)
		}
	})
}
