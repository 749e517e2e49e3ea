// Package logtest is the former home of the log recorder, now in
// internal/testkit (LogRecorder, NewLog); it forwards there until its last
// users move.
package logtest

import (
	"log/slog"

	"github.com/ferrybus/ferry/internal/testkit"
)

// Record is testkit.LogRecord.
type Record = testkit.LogRecord

// Recorder is testkit.LogRecorder.
type Recorder = testkit.LogRecorder

// New is testkit.NewLog.
func New() (*Recorder, *slog.Logger) { return testkit.NewLog() }
