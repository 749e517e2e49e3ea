// Package jobs holds what the cluster example's distributor and workers
// share: the message type, the queue layout and the connection setup.
package jobs

import (
	"log/slog"
	"os"
	"time"

	"github.com/ferrybus/ferry/queue"
	"github.com/lmittmann/tint"
)

// Resize asks a worker to resize one image (the work is simulated).
type Resize struct {
	Image string `json:"image"`
	Width int    `json:"width"`
}

// MessageType names Resize on the bus.
func (Resize) MessageType() string { return "images.resize" }

// The queues of the cluster, all on connection "default".
const (
	Inbox   = "sql://default/server-inbox-work"
	Control = "sql://default/control-inbox-work"
	Errors  = "sql://default/error"
)

// WorkerQueue is the work queue of the worker with the given id.
func WorkerQueue(id string) string { return "sql://default/worker-" + id + "-work" }

// Connections opens the one connection the example uses: dsn is
// sqlite://PATH or postgres://….
func Connections(dsn string, log *slog.Logger) *queue.Connections {
	return queue.NewConnections(map[string]string{"default": dsn}, queue.Options{AutoMigrate: true, Logger: log})
}

// Logger writes human-readable logs to stderr, coloured on a terminal.
func Logger() *slog.Logger {
	fi, err := os.Stderr.Stat()
	terminal := err == nil && fi.Mode()&os.ModeCharDevice != 0
	return slog.New(tint.NewHandler(os.Stderr, &tint.Options{Level: slog.LevelInfo, TimeFormat: time.TimeOnly, NoColor: !terminal}))
}
