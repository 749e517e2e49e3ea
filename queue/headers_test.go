package queue

import (
	"encoding/json"
	"maps"
	"testing"
)

// headerSeeds are header columns as ferry and PostgreSQL write them, and
// ones the fast path must leave to encoding/json.
var headerSeeds = []string{
	``, `{}`, `{"a":"b"}`, `{"a": "b", "c": "d"}`, `{"ferry.id":"0193","ferry.type":"orders.placed","ferry.sent-at":"2026-11-21T15:00:00.000000001Z"}`,
	`{"a":""}`, `{"":"x"}`, `{"a":"é ü"}`, `{"q":"say \"hi\""}`, `{"u":"\u003cb\u003e"}`, `{"a":"b","a":"c"}`,
	`{"a":"b",}`, `{"a":"b"`, `{"a":1}`, `{"a":null}`, `[]`, `{"a" :"b"}`, `{"a":"b"} `, `{"a":"b" }`, `{"a":"line
break"}`,
}

func TestDecodeHeaders(t *testing.T) {
	for _, s := range []string{`{"a":"b"}`, `{"a": "b", "c": "d"}`, `{"q":"say \"hi\""}`, `{"u":"\u003cb\u003e"}`, `{"a":"b","a":"c"}`} {
		got, err := decodeHeaders(s)
		if err != nil {
			t.Fatalf("decodeHeaders(%q): %v", s, err)
		}
		var want map[string]string
		if err := json.Unmarshal([]byte(s), &want); err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, want) {
			t.Errorf("decodeHeaders(%q) = %v, want %v", s, got, want)
		}
	}
	if m, ok := decodeFlat(`{"a": "b", "c": "d"}`); !ok || m["c"] != "d" {
		t.Errorf("the fast path refused jsonb's spacing: %v %v", m, ok)
	}
	for _, s := range []string{`{"a":1}`, `{"a":"b"`, `[]`, `{"a":"b",}`} {
		if _, err := decodeHeaders(s); err == nil {
			t.Errorf("decodeHeaders(%q) accepted malformed headers", s)
		}
	}
}

// FuzzDecodeHeaders: whatever the fast path accepts, encoding/json accepts
// with the same result.
func FuzzDecodeHeaders(f *testing.F) {
	for _, s := range headerSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, ok := decodeFlat(s)
		if !ok {
			return
		}
		var want map[string]string
		if err := json.Unmarshal([]byte(s), &want); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json refuses it: %v", s, err)
		}
		if !maps.Equal(m, want) {
			t.Fatalf("%q: fast path %v, encoding/json %v", s, m, want)
		}
	})
}

func BenchmarkDecodeHeaders(b *testing.B) {
	s := `{"ferry.correlation-id":"0193a7f2-5c1e-7d4e-9a55-3b1c2d4e5f60","ferry.id":"0193a7f2-5c1e-7d4e-9a55-3b1c2d4e5f60","ferry.sent-at":"2026-11-21T15:00:00.123456789Z","ferry.type":"bench.job"}`
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeHeaders(s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			var m map[string]string
			if err := json.Unmarshal([]byte(s), &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
