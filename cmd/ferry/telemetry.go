package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/ferrybus/ferry/internal/telemetry"
	"go.opentelemetry.io/otel/trace"
)

// tracingShutdown bounds flushing the spans not exported yet at exit.
const tracingShutdown = 5 * time.Second

// tracing builds the tracing of `ferry run NAME` (instance id) from the
// OTEL_* environment variables; off unless they ask for an exporter. An
// unknown value is a usage error (exit code 2) naming the variable.
func (a *app) tracing(ctx context.Context, name, id string, log *slog.Logger) (*telemetry.Tracing, error) {
	tr, err := telemetry.FromEnv(ctx, lookupEnv(a.env), telemetry.Options{Endpoint: name, Instance: id, Console: a.stdout})
	var ce *telemetry.ConfigError
	if errors.As(err, &ce) {
		return nil, usagef("run: tracing: %v", err)
	}
	if err != nil {
		return nil, err
	}
	if tr.Provider() != nil {
		log.Info("tracing on", "exporter", tr.Exporter())
	}
	return tr, nil
}

// closeTracing flushes what tr has not exported yet, within tracingShutdown.
func closeTracing(tr *telemetry.Tracing, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), tracingShutdown)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		log.Warn("spans not flushed at exit", "err", err, "timeout", tracingShutdown)
	}
}

// lookupEnv reads a variable from env (KEY=VALUE entries; the last wins,
// as with os.Getenv).
func lookupEnv(env []string) func(string) string {
	return func(key string) string {
		v := ""
		for _, kv := range env {
			if k, val, ok := strings.Cut(kv, "="); ok && k == key {
				v = val
			}
		}
		return v
	}
}

// benchTracing is the tracing of `ferry bench --trace`: every span
// recorded and batched as for a real exporter, then dropped, so that the
// run measures what tracing costs ferry. Off: a nil provider.
func benchTracing(on bool) (trace.TracerProvider, func()) {
	if !on {
		return nil, func() {}
	}
	tr := telemetry.Discarding()
	return tr.Provider(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), tracingShutdown)
		defer cancel()
		_ = tr.Shutdown(ctx) // nothing is exported: nothing to lose
	}
}
