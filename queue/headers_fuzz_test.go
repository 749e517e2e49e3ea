package queue

import (
	"encoding/json"
	"maps"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeHeadersAll: decodeHeaders, as a receive runs it on every row a
// peer wrote, never panics or hangs on any input, refuses invalid UTF-8
// (encoding/json would replace the bad bytes: the headers would be altered),
// and otherwise agrees with encoding/json: the same error or the same headers.
func FuzzDecodeHeadersAll(f *testing.F) {
	for _, s := range headerSeeds {
		f.Add(s)
	}
	for _, s := range []string{`null`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `{"a":"b","c":{"d":"e"}}`, `{"a":"b"}{"c":"d"}`,
		`{"` + string(make([]byte, 300)) + `":""}`, `{"a":"\u0000"}`, ` {"a":"b"}`, `{"a"}`, `{:}`, `{"a":"b",,"c":"d"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := decodeHeaders(s)
		if s == "" || s == "{}" {
			if got != nil || err != nil {
				t.Fatalf("decodeHeaders(%q) = %v, %v; want no headers", s, got, err)
			}
			return
		}
		if !utf8.ValidString(s) {
			if err == nil {
				t.Fatalf("decodeHeaders(%q) = %v; want an error for invalid UTF-8", s, got)
			}
			return
		}
		var want map[string]string
		jerr := json.Unmarshal([]byte(s), &want)
		if (err != nil) != (jerr != nil) {
			t.Fatalf("decodeHeaders(%q): error %v, encoding/json: %v", s, err, jerr)
		}
		if err == nil && !maps.Equal(got, want) {
			t.Fatalf("decodeHeaders(%q) = %v, encoding/json %v", s, got, want)
		}
	})
}
