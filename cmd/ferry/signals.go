package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// onStopSignals makes the first SIGINT or SIGTERM cancel the returned
// context, for a graceful stop, and a second one end the process at once,
// saying so in log, with exit code 128+signal (130 for SIGINT, 143 for
// SIGTERM). release stops listening; call it when the command returns.
func onStopSignals(parent context.Context, log *slog.Logger) (ctx context.Context, release func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, stop := watchStopSignals(parent, sigs, func(sig os.Signal) {
		log.Warn("second signal: exiting without waiting", "signal", sig.String(), "exitCode", signalExitCode(sig))
		os.Exit(signalExitCode(sig))
	})
	return ctx, func() {
		signal.Stop(sigs)
		stop()
	}
}

// watchStopSignals cancels the returned context at the first signal
// received on sigs and calls force with the second (force is not expected
// to return). stop ends the watch and cancels the context; it waits for a
// force call under way.
func watchStopSignals(parent context.Context, sigs <-chan os.Signal, force func(os.Signal)) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		select {
		case <-sigs:
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			force(sig)
		case <-done:
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			close(done)
			<-exited
			cancel()
		})
	}
}

// signalExitCode is the exit code of a process ended by sig, as shells
// report it: 128 + the signal number.
func signalExitCode(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 1
}

// onReloadSignal delivers each SIGHUP on the returned channel (one waiting
// at most: a reload reads the whole file anyway), for `ferry run` to load
// its configuration again. It leaves SIGINT and SIGTERM to onStopSignals.
// release stops listening.
func onReloadSignal() (hup <-chan os.Signal, release func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	return ch, func() { signal.Stop(ch) }
}
