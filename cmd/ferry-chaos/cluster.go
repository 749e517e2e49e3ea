package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/lib/pq" // the PostgreSQL driver for the suite's own checks

	"github.com/ferrybus/ferry/internal/testkit"
)

// cluster is a throwaway PostgreSQL cluster the suite creates on a free port,
// so that it can stop and restart a server without touching a shared one.
type cluster struct {
	version string
	name    string
	port    int
	log     *slog.Logger
}

// clusterAvailable says why a throwaway cluster cannot be made here, or "".
func clusterAvailable() string {
	if os.Geteuid() != 0 {
		return "not root (pg_createcluster needs root)"
	}
	if _, err := exec.LookPath("pg_createcluster"); err != nil {
		return "pg_createcluster not found"
	}
	if pgVersion() == "" {
		return "no /usr/lib/postgresql/*/bin/postgres"
	}
	return ""
}

// pgVersion is the newest installed PostgreSQL major version.
func pgVersion() string {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	var vs []string
	for _, b := range bins {
		vs = append(vs, filepath.Base(filepath.Dir(filepath.Dir(b))))
	}
	if len(vs) == 0 {
		return ""
	}
	sort.Slice(vs, func(i, j int) bool { return len(vs[i]) < len(vs[j]) || len(vs[i]) == len(vs[j]) && vs[i] < vs[j] })
	return vs[len(vs)-1]
}

// freePort is the first port from start on which nothing listens and
// that no cluster of this machine is configured for.
func freePort(start int) (int, error) {
	taken := clusterPorts()
	for p := start; p < start+200; p++ {
		if taken[p] {
			continue // another cluster's, perhaps not started yet
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		ln.Close()
		if _, err := os.Stat(fmt.Sprintf("/var/run/postgresql/.s.PGSQL.%d", p)); err == nil {
			continue
		}
		return p, nil
	}
	return 0, fmt.Errorf("no free port in %d-%d", start, start+199)
}

// createCluster makes and starts a cluster with trust authentication. The
// caller must drop it (also on failure).
func createCluster(ctx context.Context, startPort int, log *slog.Logger) (*cluster, error) {
	if why := clusterAvailable(); why != "" {
		return nil, errors.New("throwaway cluster: " + why)
	}
	dropStale(ctx, log)
	// Another suite running at the same time may take the same free port
	// between our look and our start: then the start fails, and the next
	// port is tried.
	const tries = 5
	next := startPort
	var lastErr error
	for range tries {
		port, err := freePort(next)
		if err != nil {
			return nil, fmt.Errorf("throwaway cluster: %w", err)
		}
		next = port + 1
		// The name carries the suite's pid, so that a later run can drop the
		// cluster of a suite that was killed before it could.
		c := &cluster{version: pgVersion(), name: fmt.Sprintf("ferrychaos%d_%d", port, os.Getpid()), port: port, log: log}
		if err := c.cmd(ctx, "pg_createcluster", "-p", fmt.Sprint(port), c.version, c.name, "--",
			"--auth=trust", "--no-sync"); err != nil {
			c.drop()
			lastErr = err
			continue
		}
		if err := c.start(ctx); err != nil {
			c.drop()
			lastErr = err
			log.Warn("throwaway cluster did not start; trying the next port", "port", port, "err", err)
			continue
		}
		log.Info("throwaway cluster started", "version", c.version, "name", c.name, "port", port)
		return c, nil
	}
	return nil, fmt.Errorf("throwaway cluster: %d tries failed, the last: %w", tries, lastErr)
}

// clusterPorts are the ports configured for the clusters of this machine,
// started or not.
func clusterPorts() map[int]bool {
	ports := map[int]bool{}
	files, _ := filepath.Glob("/etc/postgresql/*/*/postgresql.conf")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, "=")
			if !ok || strings.TrimSpace(k) != "port" {
				continue
			}
			v, _, _ = strings.Cut(v, "#")
			if p, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				ports[p] = true
			}
		}
	}
	return ports
}

// dropStale drops the clusters of suites that died without dropping them
// (killed by SIGKILL): those named ferrychaos<port>_<pid> whose pid is gone.
func dropStale(ctx context.Context, log *slog.Logger) {
	v := pgVersion()
	dirs, _ := filepath.Glob(filepath.Join("/etc/postgresql", v, "ferrychaos*_*"))
	for _, d := range dirs {
		name := filepath.Base(d)
		pid, err := strconv.Atoi(name[strings.LastIndexByte(name, '_')+1:])
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue // not ours, or its suite still runs
		}
		c := &cluster{version: v, name: name, log: log}
		log.Warn("dropping the throwaway cluster of a suite that died", "name", name, "pid", pid)
		c.drop()
	}
}

func (c *cluster) cmd(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (c *cluster) ctl(ctx context.Context, action string, extra ...string) error {
	return c.cmd(ctx, "pg_ctlcluster", append([]string{"--skip-systemctl-redirect", c.version, c.name, action}, extra...)...)
}

func (c *cluster) start(ctx context.Context) error { return c.ctl(ctx, "start") }

func (c *cluster) stop(ctx context.Context) error { return c.ctl(ctx, "stop", "-m", "fast") }

func (c *cluster) restart(ctx context.Context) error { return c.ctl(ctx, "restart", "-m", "fast") }

// drop stops and removes the cluster; it ignores the caller's context so that
// it also runs after an interrupt.
func (c *cluster) drop() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.cmd(ctx, "pg_dropcluster", "--stop", c.version, c.name); err != nil {
		c.log.Error("drop throwaway cluster", "name", c.name, "err", err)
		return
	}
	c.log.Info("throwaway cluster dropped", "name", c.name)
}

// dsn is the connection string of database db on the cluster.
func (c *cluster) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// createDB makes a fresh database for one scenario.
func (c *cluster) createDB(ctx context.Context, db string) error {
	conn, err := sql.Open("postgres", c.dsn("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
		return fmt.Errorf("drop database %s: %w", db, err)
	}
	if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+db); err != nil {
		return fmt.Errorf("create database %s: %w", db, err)
	}
	return nil
}

// waitAnswering polls with fresh connections until the database answers a
// query, and returns when it first did.
func waitAnswering(ctx context.Context, dsn string, timeout time.Duration) (time.Time, error) {
	var last error
	if err := testkit.Poll(ctx, timeout, 20*time.Millisecond, func() bool {
		last = ping(ctx, dsn)
		return last == nil
	}); err != nil {
		if ctx.Err() != nil {
			return time.Time{}, ctx.Err()
		}
		return time.Time{}, fmt.Errorf("database not answering after %s: %w", timeout, last)
	}
	return time.Now(), nil
}

func ping(ctx context.Context, dsn string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	db, err := sql.Open("postgres", dsn+"&connect_timeout=2")
	if err != nil {
		return err
	}
	defer db.Close()
	var one int
	return db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}
