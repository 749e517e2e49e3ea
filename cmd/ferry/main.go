// Command ferry runs ferry endpoints from a JSON configuration (one
// distributor plus N workers, or plain endpoints), and operates their queues:
// send, inspect, purge and move messages, list and return failed ones,
// migrate schemas, benchmark, and run a demo.
//
// Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error; 130
// (SIGINT) or 143 (SIGTERM) when a second signal ends `ferry run` while it
// stops gracefully.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/ferrybus/ferry/internal/config"
	"github.com/ferrybus/ferry/internal/logging"
	"github.com/ferrybus/ferry/queue"
	"github.com/spf13/cobra"
)

// Set at build time: go build -ldflags "-X main.version=v1.0.0 -X main.commit=… -X main.date=…".
var (
	version = "dev"
	commit  = ""
	date    = ""
)

// usageError marks an error as the user's: wrong flags, arguments or configuration.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitCode maps an error to the process exit code.
func exitCode(err error) int {
	var ue usageError
	var ce *config.Error
	var ec interface{ ExitCode() int }
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue), errors.As(err, &ce):
		return 2
	case errors.As(err, &ec): // a command stopped by a signal: 128+signal
		return ec.ExitCode()
	}
	return 1
}

// app holds what every command shares: global flags, output streams.
type app struct {
	configPath string
	logLevel   string
	logFormat  string
	jsonOut    bool
	stdout     io.Writer
	stderr     io.Writer
	env        []string
}

func main() {
	a := &app{stdout: os.Stdout, stderr: os.Stderr, env: os.Environ()}
	err := a.root().ExecuteContext(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferry:", err)
	}
	os.Exit(exitCode(err))
}

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:           "ferry",
		Short:         "ferry: a service bus over SQL queues (PostgreSQL, SQLite)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.PersistentFlags().StringVarP(&a.configPath, "config", "c", "", "configuration file (default ./config.json, then $FERRY_CONFIG)")
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "", "debug, info, warn or error (overrides log.level)")
	root.PersistentFlags().StringVar(&a.logFormat, "log-format", "", "text or json (overrides log.format; default text on a terminal)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\n%s", err, c.UsageString())}
	})
	root.AddCommand(a.runCmd(), a.sendCmd(), a.queueCmd(), a.migrateCmd(), a.versionCmd(), a.demoCmd(), a.workersCmd(), a.dashboardCmd())
	if cmd := a.errorsCmd(); cmd != nil {
		root.AddCommand(cmd)
	}
	if cmd := a.benchCmd(); cmd != nil {
		root.AddCommand(cmd)
	}
	// Unknown commands and bad argument counts are usage errors too.
	wrapArgs(root)
	return root
}

// wrapArgs turns argument validation failures into usage errors. A command
// that only groups others (ferry, ferry queue, ferry errors) gets its own
// check for unknown subcommands: left to cobra, an unknown subcommand of a
// group prints help and exits 0, and one of the root exits 1.
func wrapArgs(c *cobra.Command) {
	if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
		c.Args = unknownCommand
		c.RunE = func(cmd *cobra.Command, args []string) error { return cmd.Help() }
	}
	if c.Args != nil {
		orig := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := orig(cmd, args); err != nil {
				if !cmd.HasParent() { // main prints "ferry:" already
					return usageError{fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())}
				}
				return usageError{fmt.Errorf("%s: %w (see '%s --help')", strings.TrimPrefix(cmd.CommandPath(), "ferry "), err, cmd.CommandPath())}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
}

// unknownCommand rejects any argument of a command that only groups others,
// suggesting the subcommand that was probably meant.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q", args[0])
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return errors.New(msg)
}

// load reads the configuration: -c, else ./config.json, else $FERRY_CONFIG.
func (a *app) load() (*config.Config, error) {
	path := a.configPath
	if path == "" {
		if _, err := os.Stat("config.json"); err == nil {
			path = "./config.json" // so that errors show which config.json
		} else if p := os.Getenv("FERRY_CONFIG"); p != "" {
			path = p
		} else {
			return nil, usagef("no configuration: pass -c FILE, or put config.json in the current folder, or set FERRY_CONFIG")
		}
	}
	return config.Load(path, a.env)
}

// logger builds the logger from configuration and flags.
func (a *app) logger(cfg *config.Config) (*slog.Logger, error) {
	level, format := a.logLevel, a.logFormat
	if cfg != nil {
		if level == "" {
			level = cfg.Log.Level
		}
		if format == "" {
			format = cfg.Log.Format
		}
	}
	if err := a.checkLogFlags(); err != nil {
		return nil, err
	}
	log, err := logging.New(a.stderr, level, format)
	if err != nil {
		return nil, usageError{err}
	}
	return log, nil
}

// checkLogFlags names the flag whose value is wrong: --log-level or --log-format.
func (a *app) checkLogFlags() error {
	if _, err := logging.New(io.Discard, a.logLevel, ""); err != nil {
		return usagef("--log-level: %v", err)
	}
	if _, err := logging.New(io.Discard, "", a.logFormat); err != nil {
		return usagef("--log-format: %v", err)
	}
	return nil
}

// connections opens the configured connections, migrating those that
// should be (SQLite by default) at once and checking that the others
// (PostgreSQL by default) are, so schema errors show at start.
func (a *app) connections(ctx context.Context, cfg *config.Config, log *slog.Logger) (*queue.Connections, error) {
	conns := queue.NewConnections(cfg.Connections, cfg.StoreOptions(log))
	for _, name := range conns.Names() {
		s, err := conns.Store(ctx, name)
		if err != nil {
			conns.Close()
			return nil, err
		}
		if cfg.Migrate(cfg.Connections[name]) {
			err = s.Migrate(ctx)
		} else {
			err = checkMigrated(ctx, s)
		}
		if err != nil {
			conns.Close()
			return nil, fmt.Errorf("connection %q: %w", name, err)
		}
	}
	return conns, nil
}

// checkMigrated fails when the store lacks migrations this binary has:
// without it an unmigrated PostgreSQL schema shows only as "relation does
// not exist" errors, or as a distributor that stands by for ever.
func checkMigrated(ctx context.Context, s queue.Store) error {
	pending, err := s.PendingMigrations(ctx)
	if errors.Is(err, queue.ErrUnmigrated) {
		return fmt.Errorf("%w: run 'ferry migrate' first, or set autoMigrate: true", err)
	}
	if err != nil {
		return fmt.Errorf("cannot read the schema version: %w", err)
	}
	if len(pending) > 0 {
		migs, err := queue.Migrations(s.Dialect())
		if err != nil {
			return err
		}
		return fmt.Errorf("the database schema lacks %d of %d migrations: run 'ferry migrate' first, or set autoMigrate: true", len(pending), len(migs))
	}
	return nil
}

// setup loads configuration, logger and connections: what most commands need.
func (a *app) setup(ctx context.Context) (*config.Config, *slog.Logger, *queue.Connections, error) {
	cfg, err := a.load()
	if err != nil {
		return nil, nil, nil, err
	}
	log, err := a.logger(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	conns, err := a.connections(ctx, cfg, log)
	if err != nil {
		return nil, nil, nil, err
	}
	return cfg, log, conns, nil
}

// newConnections opens nothing yet: stores open on first use, unmigrated.
func newConnections(cfg *config.Config, log *slog.Logger) *queue.Connections {
	return queue.NewConnections(cfg.Connections, cfg.StoreOptions(log))
}
