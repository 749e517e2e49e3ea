package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func (a *app) migrateCmd() *cobra.Command {
	var only string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the embedded schema migrations to every configured connection (safe to repeat)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, err := a.load()
			if err != nil {
				return err
			}
			log, err := a.logger(cfg)
			if err != nil {
				return err
			}
			conns := newConnections(cfg, log)
			defer conns.Close()
			results := map[string]int{}
			for _, name := range conns.Names() {
				if only != "" && name != only {
					continue
				}
				s, err := conns.Store(ctx, name)
				if err != nil {
					return err
				}
				n, err := s.MigrateCount(ctx)
				if err != nil {
					return fmt.Errorf("connection %q: %w", name, err)
				}
				results[name] = n
				if !a.jsonOut {
					fmt.Fprintf(a.stdout, "%s: applied %d migration(s)\n", name, n)
				}
			}
			if only != "" && len(results) == 0 {
				return usagef("migrate: --connection %q is not configured (configured: %v)", only, conns.Names())
			}
			if a.jsonOut {
				return a.report(results, "")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&only, "connection", "", "migrate only this connection")
	cmd.Flags().BoolVar(&a.jsonOut, "json", false, "print JSON")
	return cmd
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print version, commit and build date",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v, c, d := version, commit, date
			if info, ok := debug.ReadBuildInfo(); ok {
				for _, s := range info.Settings {
					switch {
					case s.Key == "vcs.revision" && c == "":
						c = s.Value
					case s.Key == "vcs.time" && d == "":
						d = s.Value
					}
				}
				if v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
					v = info.Main.Version
				}
			}
			if c == "" {
				c = "unknown"
			}
			if d == "" {
				d = "unknown"
			}
			fmt.Fprintf(a.stdout, "ferry %s (commit %s, built %s, %s %s/%s)\n", v, c, d, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
