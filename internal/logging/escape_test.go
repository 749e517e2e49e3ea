package logging

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestEscape(t *testing.T) {
	cases := map[string]string{
		"plain text: 42/43 \\ ok":    "plain text: 42/43 \\ ok",
		"\x1b[31mred\x1b[0m":         `\u001b[31mred\u001b[0m`,
		"line\rforged":               `line\rforged`,
		"a\nb\tc":                    `a\nb\tc`,
		"bell\x07 del\x7f nul\x00":   `bell\u0007 del\u007f nul\u0000`,
		"c1 \u009b2J next\u0085line": `c1 \u009b2J next\u0085line`,
		"bidi \u202egnp.exe":         `bidi \u202egnp.exe`,
		"zwsp\u200b sep\u2028":       `zwsp\u200b sep\u2028`,
		"bad utf-8 \xff\xfe":         `bad utf-8 \xff\xfe`,
		"é ü 日本語 ✓ 🚢 Ωmega":          "é ü 日本語 ✓ 🚢 Ωmega",
		"tag \U000e0041":             `tag \U000e0041`,
	}
	for in, want := range cases {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

// remote is a handler error whose text came from a remote target: it tries
// to recolour, clear the screen, retitle the terminal, overwrite its line,
// and (as the four characters \x1b) to be turned into ESC by the handler.
var remote = errors.New("POST http://t/h: 500: \x1b[31mred\x1b[2J\x1b]0;pwned\x07 ok\rFORGED \u009b2J \\x1b[2J")

// TestLogEscapesRemoteText: in every format, a logged error or string from
// a remote target reaches the log with its control characters escaped.
func TestLogEscapesRemoteText(t *testing.T) {
	for _, c := range []struct {
		name   string
		format string
		term   bool
	}{{"json", "json", false}, {"text", "text", false}, {"text on a terminal", "text", true}} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := newLogger(&buf, slog.LevelInfo, c.format, c.term)
			if err != nil {
				t.Fatal(err)
			}
			log.Warn("handler failed: "+remote.Error(), "err", remote, "body", remote.Error())
			out := buf.String()
			for _, bad := range []string{"\x1b[31mred", "\x1b[2J", "\x1b]0;", "\x07", "\r", "\u009b"} {
				if strings.Contains(out, bad) {
					t.Errorf("the log holds %q unescaped:\n%q", bad, out)
				}
			}
			if !strings.Contains(out, "red") || !strings.Contains(out, "FORGED") {
				t.Errorf("the text itself is lost:\n%q", out)
			}
		})
	}
}
