package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// FuzzParse: no bytes given as the configuration file make the loader
// panic or hang; every error is a *Error (the binary exits 2 on those), and
// a configuration it accepts can be used: warnings, {id} filling.
func FuzzParse(f *testing.F) {
	_, file, _, _ := runtime.Caller(0)
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "config.json")); err == nil {
		f.Add(b)
	} else {
		f.Fatal(err)
	}
	b, err := encodeSeed(base())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	for _, s := range []string{
		`null`, `{}`, `[]`, `"x"`, `{"connections": null}`,
		`{"connections": {"default": "sqlite://a.db"}, "connections": {}}`,
		`{"endpoints": {"w": {"inbox": {"workQueue": "sql://default/{id}", "errorQueue": "sql://default/e", "threads": 1e30}}}}`,
		`{"endpoints": {"w": {"inbox": {"retry": {"backoff": ["1s", "-1s", 5], "exponential": {"factor": "NaN"}}}}}}`,
		`{"routes": [{"types": ["["], "queue": "sql://default/x"}], "log": {"level": 1}}`,
		`{"endpoints": {"a.b": {"inbox": {"lease": "9223372036s"}}}, "connections": {"": ""}}`,
	} {
		f.Add([]byte(s))
	}
	env := []string{"FERRY_ENDPOINTS__WORKER__INBOX__THREADS=4", "FERRY_LOG__LEVEL=debug", "FERRY_ROUTES=x"}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, e := range [][]string{nil, env} {
			cfg, err := Parse(data, e)
			if err != nil {
				var ce *Error
				if !errors.As(err, &ce) {
					t.Fatalf("Parse error %T is not a *config.Error: %v", err, err)
				}
				_ = err.Error()
				continue
			}
			_ = cfg.Warnings()
			_ = cfg.Redacted()
			for _, name := range cfg.EndpointNames() {
				_, _ = cfg.WithID(name, "w1")
				_, _ = cfg.WithID(name, "")
				_ = cfg.WarningsFor(name)
			}
		}
	})
}

func encodeSeed(m map[string]any) ([]byte, error) { return json.Marshal(m) }
