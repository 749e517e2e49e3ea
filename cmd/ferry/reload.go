package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor"
	"github.com/ferrybus/ferry/internal/config"
	"github.com/ferrybus/ferry/internal/handlers"
	"github.com/ferrybus/ferry/worker"
	"github.com/fsnotify/fsnotify"
)

// Live reloading of `ferry run`: on SIGHUP, and when the configuration file
// changes (unless reload.watch is false), the whole file is loaded and
// validated again. A file that does not load is refused: the error names
// the key, and the old settings stay. Otherwise what can change on the
// running endpoint is applied at once (threads, prefetch, retry policy,
// rules and on… actions, distributeSendCount, availabilityInterval, the
// http handlers' URLs and timeouts), and every other changed key is logged
// as needing a restart.

// reloadDebounce is how long the file must stay unchanged before it is
// read: editors write a file in several steps, or write a new one and
// rename it over the old.
const reloadDebounce = 250 * time.Millisecond

// running is a started endpoint with what a reload can change in it.
type running struct {
	runner
	https []*handlers.HTTP // the http handlers by their index in the endpoint's handlers; nil for others
}

// reloader applies configuration reloads to a running endpoint.
type reloader struct {
	a        *app
	started  *config.Config  // the configuration the process started with
	ep       config.Endpoint // its endpoint, {id} filled
	name, id string
	r        running
	log      *slog.Logger
}

// reloadOnChange reloads the configuration at each SIGHUP on hup and, with
// reload.watch, each change of the file, until the returned stop is called.
func (a *app) reloadOnChange(cfg *config.Config, name, id string, r running, hup <-chan os.Signal, log *slog.Logger) (stop func()) {
	ep, err := cfg.WithID(name, id)
	if err != nil { // cannot happen: run checked it
		log.Error("reload disabled", "err", err)
		return func() {}
	}
	rl := &reloader{a: a, started: cfg, ep: ep, name: name, id: id, r: r, log: log}
	var changed <-chan struct{}
	var closeWatch func()
	if cfg.Reload.WatchFile() && cfg.File() != "" {
		changed, closeWatch, err = watchFile(cfg.File(), log)
		if err != nil {
			log.Warn("cannot watch the configuration file; reload with SIGHUP", "file", cfg.File(), "err", err)
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-hup:
				rl.reload("SIGHUP")
			case <-changed:
				rl.reload("file changed")
			}
		}
	}()
	log.Info("reloading the configuration on SIGHUP", "file", cfg.File(), "watch", changed != nil)
	return func() {
		close(done)
		wg.Wait()
		if closeWatch != nil {
			closeWatch()
		}
	}
}

// watchFile watches the folder of file (so that a file replaced by a
// rename is still followed) and signals on the returned channel once a
// change to file has settled for reloadDebounce.
func watchFile(file string, log *slog.Logger) (<-chan struct{}, func(), error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, nil, err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, nil, err
	}
	if err := w.Add(filepath.Dir(abs)); err != nil {
		w.Close()
		return nil, nil, err
	}
	out := make(chan struct{}, 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		settle := time.NewTimer(time.Hour)
		settle.Stop()
		defer settle.Stop()
		for {
			select {
			case <-done:
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if filepath.Clean(ev.Name) != abs || !ev.Has(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove) {
					continue
				}
				settle.Reset(reloadDebounce)
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				log.Warn("watching the configuration file", "file", file, "err", err)
			case <-settle.C:
				select {
				case out <- struct{}{}:
				default: // a reload is due already: it reads the file as it is then
				}
			}
		}
	}()
	return out, func() {
		close(done)
		w.Close()
		wg.Wait()
	}, nil
}

// reload loads the file again and applies it, or refuses it.
func (rl *reloader) reload(trigger string) {
	file := rl.started.File()
	log := rl.log.With("file", file, "trigger", trigger)
	refuse := func(err error) {
		args := []any{"err", err}
		var ce *config.Error
		if errors.As(err, &ce) && ce.Key != "" {
			args = append(args, "key", ce.Key)
		}
		log.Error("configuration refused; old settings kept", args...)
	}
	cfg, err := config.Load(file, rl.a.env)
	if err != nil {
		refuse(err)
		return
	}
	ep, err := cfg.WithID(rl.name, rl.id)
	if err != nil {
		refuse(err)
		return
	}
	restart := rl.restartKeys(cfg, ep)
	keyPrefix := "endpoints." + rl.name + "."
	if !slices.Contains(restart, "endpoints."+rl.name) { // the same role: apply
		var re *bus.RestartError
		if err := rl.apply(ep); errors.As(err, &re) {
			for _, k := range re.Keys {
				restart = append(restart, keyPrefix+k)
			}
		} else if err != nil {
			refuse(&config.Error{File: file, Key: "endpoints." + rl.name, Msg: err.Error()})
			return
		}
	}
	for _, k := range restart {
		log.Warn("changed setting needs a restart; kept as it runs", "key", k)
	}
	log.Info("configuration reloaded", "needRestart", len(restart))
}

// apply changes the running endpoint to ep's live settings: its role's
// Reconfigure (which validates everything before it changes anything),
// then the http handlers.
func (rl *reloader) apply(ep config.Endpoint) error {
	var err error
	switch r := rl.r.runner.(type) {
	case *distributor.Distributor:
		err = r.Reconfigure(ep.DistributorConfig(rl.name, rl.log))
	case *worker.Worker:
		err = r.Reconfigure(ep.Inbox.InboxConfig, ep.WorkerConfig(rl.id))
	case *bus.Endpoint:
		if ep.Inbox != nil {
			err = r.Reconfigure(ep.Inbox.InboxConfig)
		}
	}
	if err != nil && !bus.IsRestartError(err) {
		return err
	}
	for i, h := range ep.Handlers {
		if i < len(rl.r.https) && rl.r.https[i] != nil && h.HTTP != nil {
			if herr := rl.r.https[i].SetTargets(h.HTTP.URLs, h.HTTP.Timeout); herr != nil {
				return fmt.Errorf("handlers[%d].http.%w", i, herr)
			}
		}
	}
	return err
}

// restartKeys lists the changed keys, outside what the endpoint's role
// applies itself, that only a restart can apply. "endpoints.NAME" means
// the endpoint changed role (or lost or gained its inbox): nothing of it
// is applied.
func (rl *reloader) restartKeys(cfg *config.Config, ep config.Endpoint) []string {
	old, oep := rl.started, rl.ep
	var keys []string
	add := func(key string, changed bool) {
		if changed {
			keys = append(keys, key)
		}
	}
	add("connections", !reflect.DeepEqual(old.Connections, cfg.Connections))
	add("autoMigrate", !reflect.DeepEqual(old.AutoMigrate, cfg.AutoMigrate))
	add("syncConsume", old.SyncConsume != cfg.SyncConsume)
	add("noPrepare", old.NoPrepare != cfg.NoPrepare)
	add("routes", !reflect.DeepEqual(old.Routes, cfg.Routes))
	add("log", old.Log != cfg.Log)
	add("reload.watch", old.Reload.WatchFile() != cfg.Reload.WatchFile())
	prefix := "endpoints." + rl.name
	role := func(e config.Endpoint) string {
		return fmt.Sprint(e.ControlInbox != nil, e.Worker != nil, e.Inbox != nil)
	}
	if role(oep) != role(ep) {
		return append(keys, prefix)
	}
	add(prefix+".subscribe", !slices.Equal(oep.Subscribe, ep.Subscribe))
	kinds := func(hs []config.Handler) string {
		var b strings.Builder
		for _, h := range hs {
			fmt.Fprintf(&b, "%s:%v%v%v;", h.Type, h.HTTP != nil, h.Log != nil, h.Noop != nil)
		}
		return b.String()
	}
	add(prefix+".handlers", kinds(oep.Handlers) != kinds(ep.Handlers))
	return keys
}
