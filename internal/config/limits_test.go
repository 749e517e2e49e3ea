package config

import (
	"strings"
	"testing"
)

// TestMaxSendBodyBytes: the key is optional (zero for the bus's default),
// taken when positive, and an error naming it when zero, negative or over
// 1 GiB, from the file or the environment.
func TestMaxSendBodyBytes(t *testing.T) {
	cfg, err := Parse(encode(t, base()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := cfg.SendBodyLimit(); n != 0 {
		t.Errorf("unset: SendBodyLimit = %d, want 0 (the bus's default)", n)
	}
	m := base()
	m["maxSendBodyBytes"] = 1048576
	if cfg, err = Parse(encode(t, m), nil); err != nil || cfg.SendBodyLimit() != 1048576 {
		t.Fatalf("1048576: %v, limit %d", err, cfg.SendBodyLimit())
	}
	if cfg, err = Parse(encode(t, base()), []string{"FERRY_MAXSENDBODYBYTES=2048"}); err != nil || cfg.SendBodyLimit() != 2048 {
		t.Fatalf("from the environment: %v", err)
	}
	for _, v := range []any{0, -1, MaxSendBodyLimit + 1, "big", 1.5} {
		m := base()
		m["maxSendBodyBytes"] = v
		_, err := Parse(encode(t, m), nil)
		if err == nil || !strings.Contains(err.Error(), "maxSendBodyBytes") {
			t.Errorf("maxSendBodyBytes %v: %v, want an error naming the key", v, err)
		}
	}
}
