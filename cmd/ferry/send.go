package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/queue"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

func (a *app) sendCmd() *cobra.Command {
	var (
		to, typ, body, corr string
		count, priority     int
		headers             []string
		delay               time.Duration
	)
	cmd := &cobra.Command{
		Use:   "send --type TYPE [--to URI] [--body JSON|@FILE] [--count N] [--header k=v]…",
		Short: "Send messages: to a queue URI, or routed by type through the configuration's routes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if typ == "" {
				return usagef("send: --type is required")
			}
			if count < 1 {
				return usagef("send: --count must be at least 1, got %d", count)
			}
			if delay < 0 {
				return usagef("send: --delay %s is negative: want 0 (at once) or a wait such as 30s", delay)
			}
			data := []byte(body)
			if strings.HasPrefix(body, "@") {
				var err error
				if data, err = os.ReadFile(body[1:]); err != nil {
					return usagef("send: --body %s: %v", body, err)
				}
			}
			if !json.Valid(data) {
				return usagef("send: --body is not valid JSON: %.80q", data)
			}
			var opts []bus.SendOption
			if to != "" {
				if _, err := queue.ParseURI(to); err != nil {
					return sendFlagErr("--to", to, err)
				}
				opts = append(opts, bus.To(to))
			}
			for _, h := range headers {
				k, v, ok := strings.Cut(h, "=")
				if !ok || k == "" {
					return usagef("send: --header %q: want key=value", h)
				}
				if strings.HasPrefix(k, "ferry.") {
					return usagef("send: --header %q: %v", h, bus.ErrReservedHeader)
				}
				opts = append(opts, bus.Header(k, v))
			}
			if err := queue.CheckPriority(priority); err != nil {
				return usagef("send: --priority %d: out of range: want %d to %d (the same on both stores)", priority, queue.MinPriority, queue.MaxPriority)
			}
			if priority != 0 {
				opts = append(opts, bus.Priority(priority))
			}
			if delay > 0 {
				opts = append(opts, bus.DeliverIn(delay))
			}
			if corr != "" {
				opts = append(opts, bus.CorrelationID(corr))
			}
			return a.send(cmd.Context(), typ, to, data, count, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "queue URI (default: the route of --type)")
	f.StringVar(&typ, "type", "", "message type name, e.g. orders.placed (required)")
	f.StringVar(&body, "body", "{}", "JSON body, or @FILE to read it from a file")
	f.IntVar(&count, "count", 1, "send this many copies (each its own message id)")
	f.StringArrayVar(&headers, "header", nil, "header key=value (repeatable)")
	f.IntVar(&priority, "priority", 0, "priority: higher is received first")
	f.DurationVar(&delay, "delay", 0, "deliver after this long")
	f.StringVar(&corr, "correlation-id", "", "correlation id (default: each message's own id)")
	f.BoolVar(&a.jsonOut, "json", false, "print the result as JSON")
	return cmd
}

func (a *app) send(ctx context.Context, typ, to string, data []byte, count int, opts []bus.SendOption) error {
	cfg, log, conns, err := a.setup(ctx)
	if err != nil {
		return err
	}
	defer conns.Close()
	const name = "ferry-cli"
	ep, err := bus.New(ctx, conns, bus.Config{Name: name, Routes: cfg.Routes, Logger: log, MaxSendBodyBytes: cfg.SendBodyLimit()}, nil)
	if err != nil {
		return configErr(cfg, name, err)
	}
	raw := bus.Raw{Type: typ, ContentType: "application/json", Body: data}
	start := time.Now()
	// The first SIGINT or SIGTERM stops between batches: the batch under way
	// is committed or not as one, so that the count printed is exact. A
	// second one exits at once, with what is known.
	var committed atomic.Int64
	var stopSig atomic.Value // the os.Signal that stopped the loop
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	stopCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case sig := <-sigs:
			stopSig.Store(sig)
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			fmt.Fprintf(a.stderr, "ferry: send: second signal: exiting; %d of %d message(s) committed, the batch under way may or may not be\n", committed.Load(), count)
			os.Exit(signalExitCode(sig))
		case <-done:
		}
	}()
	const batch = 1000
	bar := sendBar(a.stderr, count)
	defer bar.Exit() // cleared when finished; left as it stood otherwise
	for committed.Load() < int64(count) && stopCtx.Err() == nil {
		n := min(batch, count-int(committed.Load()))
		bodies := make([]any, n)
		for i := range bodies {
			bodies[i] = raw
		}
		if err := ep.SendBatch(context.WithoutCancel(ctx), bodies, opts...); err != nil {
			if c := committed.Load(); c > 0 {
				fmt.Fprintf(a.stderr, "ferry: send: %d of %d message(s) committed before the error\n", c, count)
			}
			return sendErr(err, cfg.File(), typ, to)
		}
		committed.Add(int64(n))
		_ = bar.Add(n)
	}
	sent := int(committed.Load())
	if sent < count {
		sig, _ := stopSig.Load().(os.Signal)
		if a.jsonOut {
			_ = json.NewEncoder(a.stdout).Encode(map[string]any{"sent": sent, "requested": count, "interrupted": true, "type": typ, "seconds": time.Since(start).Seconds()})
		} else {
			fmt.Fprintf(a.stdout, "sent %d of %d message(s) of type %s in %s: interrupted\n", sent, count, typ, time.Since(start).Round(time.Millisecond))
		}
		return interruptedError{sig: sig, sent: sent, count: count}
	}
	if a.jsonOut {
		return json.NewEncoder(a.stdout).Encode(map[string]any{"sent": count, "type": typ, "seconds": time.Since(start).Seconds()})
	}
	fmt.Fprintf(a.stdout, "sent %d message(s) of type %s in %s\n", count, typ, time.Since(start).Round(time.Millisecond))
	return nil
}

// interruptedError ends a send stopped by a signal: it exits with
// 128+signal, as a shell reports a process the signal ended.
type interruptedError struct {
	sig         os.Signal
	sent, count int
}

func (e interruptedError) Error() string {
	what := "a signal"
	if e.sig != nil {
		what = e.sig.String()
	}
	return fmt.Sprintf("send: interrupted by %s: %d of %d message(s) committed", what, e.sent, e.count)
}

// ExitCode is 128+signal: 130 for SIGINT, 143 for SIGTERM.
func (e interruptedError) ExitCode() int {
	if e.sig == nil {
		return 130
	}
	return signalExitCode(e.sig)
}

// sendErr classifies send failures: routing (of --type by the routes of
// the configuration file) and addressing (--to) are the user's, and name
// the flag.
func sendErr(err error, file, typ, to string) error {
	var re *bus.RouteError
	switch {
	case errors.As(err, &re) && len(re.Queues) == 0:
		return usagef("send: --type %q: no route for message type %q in %s: add one to routes, or pass --to URI", typ, re.Type, file)
	case errors.As(err, &re):
		return usagef("send: --type %q: the routes of %s send it to %d queues (%s): they must name one, or pass --to URI",
			typ, file, len(re.Queues), strings.Join(re.Queues, ", "))
	case to != "" && (errors.Is(err, queue.ErrInvalidURI) || errors.Is(err, queue.ErrUnknownConnection)):
		return sendFlagErr("--to", to, err)
	case errors.Is(err, queue.ErrInvalidURI) || errors.Is(err, queue.ErrUnknownConnection):
		return usageError{err}
	case errors.Is(err, bus.ErrBodyTooLarge):
		return usagef("send: --body: %s", strings.TrimPrefix(err.Error(), "bus: "))
	}
	return err
}

// sendFlagErr is a usage error of send: `send: FLAG "VALUE": what is wrong`.
func sendFlagErr(flag, value string, err error) error { return flagErr("send", flag, value, err) }

// flagErr is a usage error of command: `COMMAND: FLAG "VALUE": what is
// wrong`, keeping only what the queue package said (the text after its last
// "queue: ") without the quoted value.
func flagErr(command, flag, value string, err error) error {
	msg := err.Error()
	if i := strings.LastIndex(msg, "queue: "); i >= 0 {
		msg = msg[i+len("queue: "):]
	}
	msg = strings.Replace(msg, " "+strconv.Quote(value), "", 1)
	return usagef("%s: %s %q: %s", command, flag, value, msg)
}

// sendBar is the progress bar of `ferry send --count N`: shown only when
// stderr is a terminal and N > 1, moving batch by batch, cleared once all
// are sent.
func sendBar(stderr io.Writer, count int) *progressbar.ProgressBar {
	return progressbar.NewOptions(count,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription("sending"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("msg"),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetVisibility(count > 1 && isTerminal(stderr)),
	)
}
