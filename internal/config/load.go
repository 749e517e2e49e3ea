package config

// Loading: the file (or bytes) read as JSON, FERRY_… environment overrides
// applied, keys checked, then decoded with koanf and validated.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"strings"

	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/v2"
)

// Load reads the JSON file at path, applies overrides from env (FERRY_A__B=v
// sets key a.b; lists take commas) and checks every key and value type.
// Every *Error it returns names the file in its File field; so do those of
// the returned Config's Validate and WithID.
func Load(path string, env []string) (*Config, error) {
	raw := map[string]any{}
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // "open PATH: " would repeat the path
		}
		return nil, &Error{File: path, Msg: fmt.Sprintf("cannot read: %v", err)}
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, &Error{File: path, Msg: fmt.Sprintf("not valid JSON: %v", err)}
	}
	if err := checkDuplicateKeys(b); err != nil {
		return nil, inFile(err, path)
	}
	cfg, err := parse(raw, env)
	if err != nil {
		return nil, inFile(err, path)
	}
	cfg.file = path
	return cfg, nil
}

// Parse is Load for configuration already in memory.
func Parse(data []byte, env []string) (*Config, error) {
	raw := map[string]any{}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, &Error{Msg: fmt.Sprintf("not valid JSON: %v", err)}
	}
	if err := checkDuplicateKeys(data); err != nil {
		return nil, err
	}
	return parse(raw, env)
}

func parse(raw map[string]any, env []string) (*Config, error) {
	if raw == nil { // the file is "null"
		raw = map[string]any{}
	}
	schema := reflect.TypeFor[Config]()
	fromEnv, err := applyEnv(raw, schema, env)
	if err != nil {
		return nil, err
	}
	var errs []error
	check(raw, schema, "", &errs)
	if len(errs) > 0 {
		return nil, blameEnv(errors.Join(errs...), fromEnv)
	}
	k := koanf.New(".")
	if err := k.Load(confmap.Provider(raw, ""), nil); err != nil {
		return nil, &Error{Msg: err.Error()}
	}
	var cfg Config
	if err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
		return nil, &Error{Msg: err.Error()}
	}
	cfg.given = map[string]bool{}
	givenKeys(raw, "", cfg.given)
	if err := cfg.Validate(); err != nil {
		return nil, blameEnv(err, fromEnv)
	}
	return &cfg, nil
}

// blameEnv adds to each error about a key set (or inside a key set) by an
// environment variable the name of that variable, so that a bad value that
// is not in the file can be found.
func blameEnv(err error, fromEnv map[string]string) error {
	if err == nil || len(fromEnv) == 0 {
		return err
	}
	eachError(err, func(ce *Error) {
		if ce.Key == "" {
			return
		}
		for path, name := range fromEnv {
			if ce.Key == path || strings.HasPrefix(ce.Key, path+".") || strings.HasPrefix(ce.Key, path+"[") {
				ce.Msg += " (set by environment variable " + name + ")"
				return
			}
		}
	})
	return err
}

// applyEnv sets keys from FERRY_A__B__C=value variables whose first segment
// names a top-level key; segments match keys case-insensitively. It returns
// the key paths it set, each with the variable that set it.
func applyEnv(raw map[string]any, schema reflect.Type, env []string) (map[string]string, error) {
	top := fields(schema)
	set := map[string]string{}
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "FERRY_") {
			continue
		}
		segs := strings.Split(strings.TrimPrefix(name, "FERRY_"), "__")
		if matchKey(segs[0], top) == "" {
			continue // FERRY_CONFIG, FERRY_TEST_…: not configuration keys
		}
		path, err := setPath(raw, schema, segs, value, "")
		if err != nil {
			// An *Error as it is, so that Load can name the file in it.
			if ce, ok := err.(*Error); ok {
				ce.Msg += " (set by environment variable " + name + ")"
				return nil, ce
			}
			return nil, fmt.Errorf("environment variable %s: %w", name, err)
		}
		set[path] = name
	}
	return set, nil
}

func matchKey(seg string, known map[string]reflect.Type) string {
	for k := range known {
		if strings.EqualFold(k, seg) {
			return k
		}
	}
	return ""
}

// setPath sets value at the path segs inside node, guided by type t, and
// returns the key path it set.
func setPath(node map[string]any, t reflect.Type, segs []string, value, path string) (string, error) {
	t = deref(t)
	var key string
	var next reflect.Type
	switch t.Kind() {
	case reflect.Struct:
		known := fields(t)
		key = matchKey(segs[0], known)
		if key == "" {
			msg := "unknown key"
			if s := suggest(segs[0], known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			return "", errorf(join(path, strings.ToLower(segs[0])), "%s", msg)
		}
		next = known[key]
	case reflect.Map:
		key = strings.ToLower(segs[0])
		for k := range node {
			if strings.EqualFold(k, segs[0]) {
				key = k
			}
		}
		next = t.Elem()
	default:
		return "", errorf(path, "cannot set a key inside a value")
	}
	path = join(path, key)
	if len(segs) == 1 {
		nt := deref(next)
		if nt.Kind() == reflect.Slice && nt.Elem().Kind() != reflect.Struct {
			parts := []any{}
			for _, p := range strings.Split(value, ",") {
				parts = append(parts, strings.TrimSpace(p))
			}
			node[key] = parts
		} else {
			node[key] = value
		}
		return path, nil
	}
	child, ok := node[key].(map[string]any)
	if !ok {
		child = map[string]any{}
		node[key] = child
	}
	return setPath(child, next, segs[1:], value, path)
}
