package queue

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// encodeHeaders writes the headers column: a flat JSON object of strings.
func encodeHeaders(h map[string]string) (string, error) {
	if len(h) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(h)
	if err != nil {
		return "", fmt.Errorf("headers: %w", err)
	}
	return string(b), nil
}

// decodeHeaders parses the headers column: a flat JSON object of strings,
// as encodeHeaders writes it (or PostgreSQL's jsonb, with a space after ':'
// and ','). Objects whose strings have no escapes are read directly, which
// is every header ferry itself sets; anything else goes through
// encoding/json, which also reports what is malformed.
func decodeHeaders(s string) (map[string]string, error) {
	if s == "" || s == "{}" {
		return nil, nil
	}
	if m, ok := decodeFlat(s); ok {
		return m, nil
	}
	if !utf8.ValidString(s) {
		// encoding/json would replace the bad bytes and succeed: a lossy
		// decode that a later rewrite of the headers would make permanent.
		return nil, errors.New("not valid UTF-8")
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeFlat reads {"k":"v",…} with no escapes in any string; ok is false
// for anything else (invalid UTF-8 too, which encoding/json replaces), and
// the caller falls back to encoding/json.
func decodeFlat(s string) (m map[string]string, ok bool) {
	n := len(s)
	if n < 2 || s[0] != '{' || s[n-1] != '}' || !utf8.ValidString(s) {
		return nil, false
	}
	m = make(map[string]string, 8)
	i := 1
	for {
		k, j, ok := flatString(s, i)
		if !ok || j >= n || s[j] != ':' {
			return nil, false
		}
		v, j, ok := flatString(s, skipSpace(s, j+1))
		if !ok || j >= n {
			return nil, false
		}
		if _, dup := m[k]; dup {
			return nil, false // encoding/json's rule for duplicates applies
		}
		m[k] = v
		switch {
		case s[j] == ',':
			i = skipSpace(s, j+1)
		case j == n-1: // the closing brace
			return m, true
		default:
			return nil, false
		}
	}
}

// flatString reads the JSON string starting at s[i] == '"' and returns it
// with the index after its closing quote; ok is false if it has an escape
// or a control character, or does not end.
func flatString(s string, i int) (string, int, bool) {
	if i >= len(s) || s[i] != '"' {
		return "", 0, false
	}
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"':
			return s[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return "", 0, false
		}
	}
	return "", 0, false
}

// skipSpace returns the index of the first non-space byte at or after i.
func skipSpace(s string, i int) int {
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return i
}
