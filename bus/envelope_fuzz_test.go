package bus

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/ferrybus/ferry/queue"
)

// FuzzEnvelopeFrom: rebuilding an envelope from a row a peer wrote never
// panics or hangs, whatever its headers hold (the reserved ones malformed:
// times that are not numbers or are out of range, failures that are not a
// JSON list of failures), and an envelope rebuilt without error comes back
// the same through toMessage and envelopeFrom again, so a message moved or
// retried keeps what it said.
func FuzzEnvelopeFrom(f *testing.F) {
	fails, _ := json.Marshal([]Failure{{At: time.UnixMicro(1700000000000000), Endpoint: "w1", Error: "boom \x1b[31m", Kind: KindError, Stack: "a\nb"}})
	seeds := []map[string]string{
		nil,
		{HeaderContentType: "application/json", HeaderCorrelationID: "c", HeaderCausationID: "p", HeaderReplyTo: "sql://default/r",
			HeaderSentAt: "1700000000000000", HeaderDeliverAt: "1700000000000001", HeaderExpiresAt: "-1", "user": "v"},
		{HeaderFailures: string(fails)},
		{HeaderFailures: `[{"at":"not a time"}]`, HeaderSentAt: "soon"},
		{HeaderFailures: `null`, HeaderExpiresAt: "9223372036854775807", HeaderDeliverAt: "-9223372036854775808"},
		{HeaderFailures: `[]`, HeaderSentAt: "-62135596800000000"},
		{HeaderFailures: `{"at":1}`, "ferry.unknown": "x", "": ""},
	}
	for i, h := range seeds {
		b, _ := json.Marshal(h)
		f.Add(string(b), []byte(`{"n":1}`), "m-1", "orders.placed", i%3)
	}
	f.Add(`{"ferry.sent-at":`, []byte{0xff}, "", "", -1)
	f.Fuzz(func(t *testing.T, headers string, body []byte, id, typ string, attempts int) {
		d := queue.Delivery{Message: queue.Message{MessageID: id, Type: typ, Body: body}, Attempts: attempts}
		if err := json.Unmarshal([]byte(headers), &d.Headers); err != nil {
			d.Headers, d.HeadersErr = nil, errors.New("undecodable headers")
		}
		env, err := envelopeFrom(d, "sql://default/q")
		if env == nil {
			t.Fatalf("envelopeFrom returned no envelope (error %v)", err)
		}
		if err != nil {
			return // reported, to move the message aside
		}
		m, err := env.toMessage()
		if err != nil {
			t.Fatalf("toMessage of %+v: %v", env, err)
		}
		again, err := envelopeFrom(queue.Delivery{Message: m, Attempts: attempts}, "sql://default/q")
		if err != nil {
			t.Fatalf("round trip of %+v: %v", env, err)
		}
		if !sameEnvelope(env, again) {
			t.Fatalf("round trip changed the envelope:\n%+v\n%+v", env, again)
		}
	})
}

// sameEnvelope compares envelopes with times as instants and empty lists
// and maps as none.
func sameEnvelope(a, b *Envelope) bool {
	if !a.SentAt.Equal(b.SentAt) || !a.DeliverAt.Equal(b.DeliverAt) || !a.ExpiresAt.Equal(b.ExpiresAt) ||
		len(a.Failures) != len(b.Failures) || len(a.Headers) != len(b.Headers) {
		return false
	}
	for i := range a.Failures {
		fa, fb := a.Failures[i], b.Failures[i]
		if !fa.At.Equal(fb.At) {
			return false
		}
		fa.At, fb.At = time.Time{}, time.Time{}
		if fa != fb {
			return false
		}
	}
	for k, v := range a.Headers {
		if b.Headers[k] != v {
			return false
		}
	}
	x, y := *a, *b
	x.SentAt, x.DeliverAt, x.ExpiresAt, x.Failures, x.Headers = time.Time{}, time.Time{}, time.Time{}, nil, nil
	y.SentAt, y.DeliverAt, y.ExpiresAt, y.Failures, y.Headers = time.Time{}, time.Time{}, time.Time{}, nil, nil
	return reflect.DeepEqual(x, y)
}
