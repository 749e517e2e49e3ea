package config

// The key checks that run before decoding: every key of the file (and of
// the environment) must be one of the schema's, with a value of its type,
// and no object may set a key twice. Errors name the key path, and an
// unknown key comes with the nearest known one.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// keyOf is the configuration key of a struct field.
func keyOf(f reflect.StructField) (name string, squash bool) {
	tag := f.Tag.Get("koanf")
	if tag == "" {
		tag = f.Tag.Get("json")
	}
	name, opts, _ := strings.Cut(tag, ",")
	if strings.Contains(opts, "squash") {
		return "", true
	}
	if name == "-" {
		return "", false
	}
	if name == "" {
		name = strings.ToLower(f.Name[:1]) + f.Name[1:]
	}
	return name, false
}

// fields lists the keys of a struct type, with embedded squashed structs flattened.
func fields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, squash := keyOf(f)
		if squash {
			for k, v := range fields(deref(f.Type)) {
				out[k] = v
			}
			continue
		}
		if name != "" {
			out[name] = f.Type
		}
	}
	return out
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var durationType = reflect.TypeFor[time.Duration]()

// check walks raw against the schema type t, collecting errors that name
// the key path: unknown keys (with a suggestion) and values of the wrong type.
func check(raw any, t reflect.Type, path string, errs *[]error) {
	t = deref(t)
	if raw == nil {
		return
	}
	switch {
	case t == durationType:
		s, ok := raw.(string)
		if !ok {
			*errs = append(*errs, errorf(path, "want a duration such as \"15s\", got %v", raw))
			return
		}
		if _, err := time.ParseDuration(s); err != nil {
			*errs = append(*errs, errorf(path, "invalid duration %q (want e.g. \"500ms\", \"15s\", \"1m\")", s))
		}
	case t.Kind() == reflect.Struct:
		m, ok := raw.(map[string]any)
		if !ok {
			*errs = append(*errs, errorf(path, "want an object, got %s", describe(raw)))
			return
		}
		known := fields(t)
		keys := sortedKeys(m)
		for _, k := range keys {
			ft, ok := known[k]
			if !ok {
				msg := "unknown key"
				if s := suggest(k, known); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				*errs = append(*errs, errorf(join(path, k), "%s", msg))
				continue
			}
			check(m[k], ft, join(path, k), errs)
		}
	case t.Kind() == reflect.Map:
		m, ok := raw.(map[string]any)
		if !ok {
			*errs = append(*errs, errorf(path, "want an object, got %s", describe(raw)))
			return
		}
		for _, k := range sortedKeys(m) {
			check(m[k], t.Elem(), join(path, k), errs)
		}
	case t.Kind() == reflect.Slice:
		l, ok := raw.([]any)
		if !ok {
			*errs = append(*errs, errorf(path, "want a list, got %s", describe(raw)))
			return
		}
		for i, v := range l {
			check(v, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case t.Kind() == reflect.String:
		if _, ok := raw.(string); !ok {
			*errs = append(*errs, errorf(path, "want a string, got %s", describe(raw)))
		}
	case t.Kind() == reflect.Bool:
		switch v := raw.(type) {
		case bool:
		case string:
			if _, err := strconv.ParseBool(v); err != nil {
				*errs = append(*errs, errorf(path, "want true or false, got %q", v))
			}
		default:
			*errs = append(*errs, errorf(path, "want true or false, got %s", describe(raw)))
		}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		switch v := raw.(type) {
		case float64:
			if v != float64(int64(v)) {
				*errs = append(*errs, errorf(path, "want a whole number, got %v", v))
			}
		case string:
			if _, err := strconv.Atoi(v); err != nil {
				*errs = append(*errs, errorf(path, "want a whole number, got %q", v))
			}
		default:
			*errs = append(*errs, errorf(path, "want a whole number, got %s", describe(raw)))
		}
	case t.Kind() == reflect.Float64 || t.Kind() == reflect.Float32:
		switch v := raw.(type) {
		case float64:
		case string:
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				*errs = append(*errs, errorf(path, "want a number, got %q", v))
			}
		default:
			*errs = append(*errs, errorf(path, "want a number, got %s", describe(raw)))
		}
	}
}

func describe(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return fmt.Sprintf("the string %q", v)
	}
	return fmt.Sprintf("%v", v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// suggest finds the known key closest to a misspelt one.
func suggest(k string, known map[string]reflect.Type) string {
	best, bestD := "", 3
	for cand := range known {
		if strings.EqualFold(cand, k) {
			return cand
		}
		if n := len(k) - len(cand); n > bestD || -n > bestD {
			continue // the distance is at least the difference in length
		}
		if d := distance(strings.ToLower(k), strings.ToLower(cand)); d < bestD || (d == bestD && cand < best) {
			best, bestD = cand, d
		}
	}
	return best
}

// distance is the Levenshtein distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// checkDuplicateKeys fails on an object of data that sets one key twice:
// decoding would silently keep the last. data must be valid JSON (checked
// by the caller), which bounds the nesting that the walk follows.
func checkDuplicateKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	// One frame per open object or list: the keys seen (objects only), the
	// path, the next list index.
	type frame struct {
		keys  map[string]bool // nil for a list
		path  string
		index int
		key   string // the object key whose value comes next
		atKey bool   // an object expecting a key
	}
	var stack []*frame
	// pathOfValue is the path of the value about to be read in the top frame.
	pathOfValue := func() string {
		if len(stack) == 0 {
			return ""
		}
		f := stack[len(stack)-1]
		if f.keys == nil {
			p := fmt.Sprintf("%s[%d]", f.path, f.index)
			f.index++
			return p
		}
		f.atKey = true
		return join(f.path, f.key)
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return &Error{Msg: fmt.Sprintf("not valid JSON: %v", err)}
		}
		if len(stack) > 0 {
			if f := stack[len(stack)-1]; f.keys != nil && f.atKey {
				if d, ok := tok.(json.Delim); ok && d == '}' {
					stack = stack[:len(stack)-1]
					continue
				}
				k, _ := tok.(string)
				p := join(f.path, k)
				if f.keys[k] {
					return errorf(p, "duplicate key: set twice in one object (only one may stay)")
				}
				f.keys[k] = true
				f.key, f.atKey = k, false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, path: pathOfValue(), atKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{path: pathOfValue()})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		default:
			pathOfValue()
		}
	}
}
