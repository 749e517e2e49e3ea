// Package logging sets up log/slog: tint on a terminal, JSON otherwise.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/lmittmann/tint"
)

// New returns a logger writing to w at level ("debug", "info", "warn",
// "error"; default info) in format ("text", "json"; default: text on a
// terminal, JSON otherwise).
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	switch level {
	case "", "info":
		lv = slog.LevelInfo
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	return newLogger(w, lv, format, isTerminal(w))
}

// newLogger is New for a level and format already checked; term says
// whether w is a terminal (text in colour, and the default format).
func newLogger(w io.Writer, lv slog.Level, format string, term bool) (*slog.Logger, error) {
	switch format {
	case "":
		if !term {
			format = "json"
		} else {
			format = "text"
		}
	case "text", "json":
	default:
		return nil, fmt.Errorf("log format %q: want text or json", format)
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv, ReplaceAttr: escapeAttr})), nil
	}
	return slog.New(tint.NewHandler(w, &tint.Options{Level: lv, TimeFormat: time.TimeOnly, NoColor: !term, ReplaceAttr: escapeAttr})), nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
