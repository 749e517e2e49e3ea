// Package telemetry builds a process's OpenTelemetry tracing from the
// standard OTEL_* environment variables, for the ferry binary: which
// exporter (OTEL_TRACES_EXPORTER), which OTLP protocol
// (OTEL_EXPORTER_OTLP_PROTOCOL), the service name (OTEL_SERVICE_NAME).
// The OTLP exporters read their own variables (endpoint, headers, timeout,
// TLS) and the SDK its sampler's (OTEL_TRACES_SAMPLER, …_ARG). Libraries
// take a trace.TracerProvider instead (bus.Config, distributor.Config).
package telemetry

import (
	"context"
	"fmt"
	"io"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// DefaultServiceName is the service.name of ferry's spans when
// OTEL_SERVICE_NAME is not set.
const DefaultServiceName = "ferry"

// Resource attributes naming the ferry endpoint a process runs.
const (
	AttrEndpoint = attribute.Key("ferry.endpoint")
	AttrInstance = attribute.Key("service.instance.id")
)

// Exporters: the values of OTEL_TRACES_EXPORTER that ferry knows.
const (
	ExporterOTLP    = "otlp"
	ExporterConsole = "console"
	ExporterNone    = "none"
)

// OTLP protocols: the values of OTEL_EXPORTER_OTLP_PROTOCOL that ferry knows.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// ConfigError says an environment variable has a value ferry cannot use.
type ConfigError struct {
	// Var is the variable at fault, e.g. OTEL_TRACES_EXPORTER.
	Var string
	// Value is its value.
	Value string
	// Want lists what it may be.
	Want string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s=%q: unknown value, want %s", e.Var, e.Value, e.Want)
}

// Options say which process the spans come from.
type Options struct {
	// Endpoint is the ferry endpoint the process runs (resource attribute
	// ferry.endpoint); empty: none.
	Endpoint string
	// Instance is its instance id (service.instance.id); empty: none.
	Instance string
	// Console receives the console exporter's spans (JSON, one per line).
	// Required for OTEL_TRACES_EXPORTER=console.
	Console io.Writer
}

// Tracing is a process's tracing: the provider its endpoints trace with,
// or none when tracing is off.
type Tracing struct {
	sdk      *sdktrace.TracerProvider // nil: off
	exporter string
}

// Provider is what endpoints trace with: nil when tracing is off, so that
// they do no tracing work at all.
func (t *Tracing) Provider() trace.TracerProvider {
	if t == nil || t.sdk == nil {
		return nil
	}
	return t.sdk
}

// Exporter names the exporter in use ("otlp (grpc)", "console", …), ""
// when tracing is off.
func (t *Tracing) Exporter() string {
	if t == nil {
		return ""
	}
	return t.exporter
}

// Shutdown flushes the spans not exported yet and stops the exporter,
// giving up when ctx ends (pass one with a deadline). A no-op when off.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.sdk == nil {
		return nil
	}
	if err := t.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("telemetry: flush spans (%s): %w", t.exporter, err)
	}
	return nil
}

// FromEnv builds the tracing that getenv's OTEL_* variables ask for:
//
//   - OTEL_TRACES_EXPORTER: otlp, console or none. Unset: otlp when
//     OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
//     set, else tracing is off. OTEL_SDK_DISABLED=true turns it off too.
//   - OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL:
//     grpc or http/protobuf (the default).
//   - OTEL_SERVICE_NAME: the service name, default "ferry".
//
// A value it does not know is a *ConfigError naming the variable.
func FromEnv(ctx context.Context, getenv func(string) string, opts Options) (*Tracing, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return &Tracing{}, nil
	}
	name := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")))
	if name == "" {
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return &Tracing{}, nil
		}
		name = ExporterOTLP
	}
	var exp sdktrace.SpanExporter
	var err error
	label := name
	switch name {
	case ExporterNone:
		return &Tracing{}, nil
	case ExporterConsole:
		if opts.Console == nil {
			return nil, fmt.Errorf("telemetry: OTEL_TRACES_EXPORTER=console: no console to write to")
		}
		exp, err = stdouttrace.New(stdouttrace.WithWriter(opts.Console))
	case ExporterOTLP:
		protoVar := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
		proto := strings.TrimSpace(getenv(protoVar))
		if proto == "" {
			protoVar = "OTEL_EXPORTER_OTLP_PROTOCOL"
			proto = strings.TrimSpace(getenv(protoVar))
		}
		switch proto {
		case "", ProtocolHTTP:
			label = "otlp (http/protobuf)"
			exp, err = otlptracehttp.New(ctx)
		case ProtocolGRPC:
			label = "otlp (grpc)"
			exp, err = otlptracegrpc.New(ctx)
		default:
			return nil, &ConfigError{Var: protoVar, Value: proto, Want: ProtocolGRPC + " or " + ProtocolHTTP}
		}
	default:
		return nil, &ConfigError{Var: "OTEL_TRACES_EXPORTER", Value: getenv("OTEL_TRACES_EXPORTER"),
			Want: ExporterOTLP + ", " + ExporterConsole + " or " + ExporterNone + " (one of them)"}
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: %s exporter: %w", label, err)
	}
	res, err := processResource(ctx, getenv, opts)
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, err
	}
	// No sampler option: the SDK reads OTEL_TRACES_SAMPLER and its argument
	// itself (default: parent-based, always on).
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Tracing{sdk: tp, exporter: label}, nil
}

// processResource describes the process: service.name, the endpoint, and
// OTEL_RESOURCE_ATTRIBUTES.
func processResource(ctx context.Context, getenv func(string) string, opts Options) (*resource.Resource, error) {
	attrs := []attribute.KeyValue{attribute.String("service.name", DefaultServiceName)}
	if opts.Endpoint != "" {
		attrs = append(attrs, AttrEndpoint.String(opts.Endpoint))
	}
	if opts.Instance != "" {
		attrs = append(attrs, AttrInstance.String(opts.Instance))
	}
	ropts := []resource.Option{resource.WithAttributes(attrs...), resource.WithTelemetrySDK(), resource.WithFromEnv()}
	if s := strings.TrimSpace(getenv("OTEL_SERVICE_NAME")); s != "" {
		ropts = append(ropts, resource.WithAttributes(attribute.String("service.name", s)))
	}
	res, err := resource.New(ctx, ropts...)
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME): %w", err)
	}
	return res, nil
}

// Discarding is tracing that records every span (always sampled) and
// exports them nowhere, through the same batching as a real exporter: for
// measuring what tracing costs (ferry bench --trace).
func Discarding() *Tracing {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	return &Tracing{sdk: tp, exporter: "discard"}
}

// discard is a span exporter that drops what it is given.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }
