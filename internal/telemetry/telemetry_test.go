package telemetry_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferrybus/ferry/internal/telemetry"
)

// env is a getenv over a map.
func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func shutdown(t *testing.T, tr *telemetry.Tracing) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func TestOff(t *testing.T) {
	for _, vars := range []map[string]string{
		{},
		{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"},
		{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"},
		{"OTEL_SERVICE_NAME": "shop"}, // a name alone turns nothing on
	} {
		tr, err := telemetry.FromEnv(t.Context(), env(vars), telemetry.Options{Console: &bytes.Buffer{}})
		if err != nil {
			t.Fatalf("%v: %v", vars, err)
		}
		if tr.Provider() != nil || tr.Exporter() != "" {
			t.Errorf("%v: tracing on (%s), want off", vars, tr.Exporter())
		}
		shutdown(t, tr)
	}
}

func TestUnknownValuesRefused(t *testing.T) {
	for _, c := range []struct {
		vars    map[string]string
		wantVar string
	}{
		{map[string]string{"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER"},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp,console"}, "OTEL_TRACES_EXPORTER"},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "udp"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
	} {
		_, err := telemetry.FromEnv(t.Context(), env(c.vars), telemetry.Options{})
		var ce *telemetry.ConfigError
		if !errors.As(err, &ce) || ce.Var != c.wantVar || !strings.Contains(err.Error(), c.wantVar) {
			t.Errorf("%v: error %v, want a ConfigError naming %s", c.vars, err, c.wantVar)
		}
	}
}

// OTLP is chosen by OTEL_TRACES_EXPORTER or by an endpoint alone, over
// http/protobuf unless grpc is asked for. Nothing is sent here: building
// an exporter does not connect, and no span is recorded.
func TestOTLP(t *testing.T) {
	for _, c := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, "otlp (http/protobuf)"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, "otlp (http/protobuf)"},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1/v1/traces"}, "otlp (http/protobuf)"},
		{map[string]string{"OTEL_TRACES_EXPORTER": "OTLP", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "otlp (grpc)"},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, "otlp (http/protobuf)"},
	} {
		tr, err := telemetry.FromEnv(t.Context(), env(c.vars), telemetry.Options{Endpoint: "orders"})
		if err != nil {
			t.Fatalf("%v: %v", c.vars, err)
		}
		if tr.Provider() == nil || tr.Exporter() != c.want {
			t.Errorf("%v: exporter %q (provider %v), want %q", c.vars, tr.Exporter(), tr.Provider(), c.want)
		}
		shutdown(t, tr)
	}
}

// The console exporter writes each span, with the process's resource:
// service.name (default ferry, or OTEL_SERVICE_NAME) and the endpoint.
func TestConsole(t *testing.T) {
	for _, c := range []struct {
		vars    map[string]string
		service string
	}{
		{map[string]string{"OTEL_TRACES_EXPORTER": "console"}, "ferry"},
		{map[string]string{"OTEL_TRACES_EXPORTER": " Console ", "OTEL_SERVICE_NAME": "shop"}, "shop"},
	} {
		var out bytes.Buffer
		tr, err := telemetry.FromEnv(t.Context(), env(c.vars), telemetry.Options{Endpoint: "orders", Instance: "w7", Console: &out})
		if err != nil {
			t.Fatalf("%v: %v", c.vars, err)
		}
		if tr.Exporter() != "console" {
			t.Fatalf("%v: exporter %q, want console", c.vars, tr.Exporter())
		}
		_, span := tr.Provider().Tracer("test").Start(t.Context(), "a-span")
		span.End()
		shutdown(t, tr) // flushes the batch
		got := out.String()
		for _, want := range []string{`"Name":"a-span"`, `"Value":"` + c.service + `"`, `"ferry.endpoint"`, `"orders"`, `"w7"`} {
			if !strings.Contains(got, want) {
				t.Errorf("%v: console output lacks %s:\n%s", c.vars, want, got)
			}
		}
	}
	if _, err := telemetry.FromEnv(t.Context(), env(map[string]string{"OTEL_TRACES_EXPORTER": "console"}), telemetry.Options{}); err == nil {
		t.Error("console with nowhere to write: no error")
	}
}

// Discarding records every span and keeps none.
func TestDiscarding(t *testing.T) {
	tr := telemetry.Discarding()
	_, span := tr.Provider().Tracer("test").Start(t.Context(), "x")
	if !span.IsRecording() || !span.SpanContext().IsSampled() {
		t.Error("the discarding provider does not record and sample every span")
	}
	span.End()
	shutdown(t, tr)
}
