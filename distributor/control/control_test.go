package control_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/ferrybus/ferry/distributor/control"
)

// The wire format is fixed: workers and distributors of different versions
// talk to each other, so these bytes and names must not change.
func TestWireFormat(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	cases := []struct {
		msg  interface{ MessageType() string }
		typ  string
		json string
	}{
		{control.Started{WorkerID: "w1", Session: "s1", Inbox: "sql://default/w1", Threads: 4, SentAt: at},
			"ferry.worker.started",
			`{"workerId":"w1","session":"s1","inbox":"sql://default/w1","threads":4,"sentAt":"2026-01-02T03:04:05.000000006Z"}`},
		{control.ThreadAvailable{WorkerID: "w1", Session: "s1", Inbox: "sql://default/w1", Thread: 2, SentAt: at, ValidFor: 45 * time.Second},
			"ferry.worker.thread-available",
			`{"workerId":"w1","session":"s1","inbox":"sql://default/w1","thread":2,"sentAt":"2026-01-02T03:04:05.000000006Z","validFor":45000000000}`},
		{control.ThreadAvailable{WorkerID: "w1", Session: "s1", Inbox: "sql://default/w1", Thread: 2, SentAt: at, ValidFor: 45 * time.Second,
			Handoff: 77, Lease: 30 * time.Second},
			"ferry.worker.thread-available",
			`{"workerId":"w1","session":"s1","inbox":"sql://default/w1","thread":2,"sentAt":"2026-01-02T03:04:05.000000006Z","validFor":45000000000,"handoff":77,"lease":30000000000}`},
		{control.Heartbeat{WorkerID: "w1", Session: "s1", Inbox: "sql://default/w1", SentAt: at},
			"ferry.worker.heartbeat",
			`{"workerId":"w1","session":"s1","inbox":"sql://default/w1","sentAt":"2026-01-02T03:04:05.000000006Z"}`},
		{control.Stopping{WorkerID: "w1", Session: "s1", Inbox: "sql://default/w1", SentAt: at},
			"ferry.worker.stopping",
			`{"workerId":"w1","session":"s1","inbox":"sql://default/w1","sentAt":"2026-01-02T03:04:05.000000006Z"}`},
	}
	for _, c := range cases {
		t.Run(c.typ, func(t *testing.T) {
			if got := c.msg.MessageType(); got != c.typ {
				t.Errorf("MessageType() = %q, want %q", got, c.typ)
			}
			b, err := json.Marshal(c.msg)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			if string(b) != c.json {
				t.Errorf("encoded\n %s\nwant\n %s", b, c.json)
			}
			back := reflect.New(reflect.TypeOf(c.msg))
			if err := json.Unmarshal(b, back.Interface()); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			if got := back.Elem().Interface(); !reflect.DeepEqual(got, c.msg) {
				t.Errorf("round trip: got %+v, want %+v", got, c.msg)
			}
		})
	}
}

func TestExpires(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if got, want := (control.ThreadAvailable{SentAt: at, ValidFor: time.Minute}).Expires(), at.Add(time.Minute); !got.Equal(want) {
		t.Errorf("with ValidFor: Expires() = %v, want %v", got, want)
	}
	// A worker that predates ValidFor sends none.
	if got, want := (control.ThreadAvailable{SentAt: at}).Expires(), at.Add(3*control.DefaultInterval); !got.Equal(want) {
		t.Errorf("without ValidFor: Expires() = %v, want %v", got, want)
	}
}

func TestAvailabilities(t *testing.T) {
	a := control.ThreadAvailable{WorkerID: "w1", Session: "s1", Inbox: "sql://default/w1", SentAt: time.Unix(1, 0), ValidFor: time.Second}
	got := control.Availabilities(a, []int{0, 3, 5})
	if len(got) != 3 {
		t.Fatalf("got %d messages, want 3", len(got))
	}
	for i, thread := range []int{0, 3, 5} {
		want := a
		want.Thread = thread
		if got[i] != want {
			t.Errorf("message %d = %+v, want %+v", i, got[i], want)
		}
	}
}
