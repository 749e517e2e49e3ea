package queue

import "testing"

// TestDecodeHeadersRefusesInvalidUTF8: encoding/json would decode such
// headers with the bad bytes replaced; they are reported instead, so that
// the row is moved aside with its stored text rather than handled with
// altered headers.
func TestDecodeHeadersRefusesInvalidUTF8(t *testing.T) {
	for _, s := range []string{"{\"a\":\"\xff\"}", "{\"\xfe\":\"b\"}", "{\"a\":\"b\\n\xff\"}"} {
		if m, err := decodeHeaders(s); err == nil {
			t.Errorf("decodeHeaders(%q) = %v, want an error", s, m)
		}
	}
}
