package logging

import (
	"log/slog"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape returns s with every character that is not printable escaped the
// way strconv.Quote escapes it, without the quotes: control characters (C0
// with ESC, DEL, C1), line and paragraph separators, format characters such
// as bidirectional overrides, and invalid UTF-8. Letters of every script,
// marks, symbols and the ASCII space are kept, and so is the backslash.
// Text from remote targets (error messages, bodies, header values) goes
// through it before it reaches a terminal, so that it cannot move the
// cursor, recolour, retitle or clear the screen, or forge a line with "\r"
// or "\n". ESC is written \u001b, never \x1b (see escapeLog).
func Escape(s string) string {
	if isPlain(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(s[i]), 16))
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case unicode.IsPrint(r):
			b.WriteString(s[i : i+size])
		case r < 0x10000:
			b.WriteString(`\u`)
			hex4(&b, uint64(r), 4)
		default:
			b.WriteString(`\U`)
			hex4(&b, uint64(r), 8)
		}
		i += size
	}
	return b.String()
}

func hex4(b *strings.Builder, v uint64, width int) {
	h := strconv.FormatUint(v, 16)
	b.WriteString(strings.Repeat("0", max(0, width-len(h))))
	b.WriteString(h)
}

// isPlain reports whether s has nothing Escape would change: printable
// ASCII only, the common case, checked without decoding.
func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// escapeLog is Escape for a log value. It also breaks the four characters
// `\x1b` of the text: the terminal handler (tint, in colour) quotes a value
// with strconv.Quote and then turns every `\x1b` of the result back into
// ESC, to keep its own colours, which would turn that text (or an ESC
// escaped as \x1b) into a real escape sequence.
func escapeLog(s string) string {
	s = Escape(s)
	if strings.Contains(s, `\x1b`) {
		s = strings.ReplaceAll(s, `\x1b`, `\u005cx1b`)
	}
	return s
}

// escapeAttr is a ReplaceAttr that escapes string values, errors and the
// message of each record: handler errors carry text from remote targets.
func escapeAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); !isPlain(s) || strings.Contains(s, `\x1b`) {
			a.Value = slog.StringValue(escapeLog(s))
		}
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok && err != nil {
			a.Value = slog.StringValue(escapeLog(err.Error()))
		}
	}
	return a
}
