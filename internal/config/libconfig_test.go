package config

import (
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/distributor"
	"github.com/ferrybus/ferry/worker"
)

// TestLibraryConfigs: the libraries' configurations carry every setting of
// the endpoint they are built from.
func TestLibraryConfigs(t *testing.T) {
	m := base()
	set("endpoints.distributor.lockTTL", "7s")(m)
	set("endpoints.worker.subscribe", []any{"orders.*"})(m)
	cfg, err := Parse(encode(t, m), nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	log := slog.New(slog.DiscardHandler)

	d := cfg.Endpoints["distributor"]
	want := distributor.Config{
		Name: "dist", Inbox: d.Inbox.InboxConfig, Distribute: true, DistributeSendCount: 5,
		ControlInbox: *d.ControlInbox, ReclaimAfter: 30 * time.Second, LockTTL: 7 * time.Second, Logger: log,
	}
	if got := d.DistributorConfig("dist", log); !reflect.DeepEqual(got, want) {
		t.Errorf("DistributorConfig = %+v, want %+v", got, want)
	}

	w, err := cfg.WithID("worker", "w7")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := w.WorkerConfig("w7"), (worker.Config{ID: "w7", DistributorControlQueue: "sql://default/control-inbox-work", AvailabilityInterval: 15 * time.Second}); got != want {
		t.Errorf("WorkerConfig = %+v, want %+v", got, want)
	}
	bc := w.BusConfig("w7", cfg.Routes, log)
	if bc.Name != "w7" || bc.Inbox != &w.Inbox.InboxConfig || !reflect.DeepEqual(bc.Routes, cfg.Routes) ||
		!reflect.DeepEqual(bc.Subscribe, []string{"orders.*"}) || bc.Logger != log {
		t.Errorf("BusConfig = %+v", bc)
	}

	// An endpoint without an inbox sends only; one without a worker section
	// gives a worker.Config with only its id.
	var plain Endpoint
	if bc := plain.BusConfig("p", nil, log); bc.Inbox != nil || bc.Name != "p" {
		t.Errorf("BusConfig without inbox = %+v", bc)
	}
	if got := plain.WorkerConfig("p"); got != (worker.Config{ID: "p"}) {
		t.Errorf("WorkerConfig without worker = %+v", got)
	}
	if got := plain.DistributorConfig("p", nil); !reflect.DeepEqual(got, distributor.Config{Name: "p", Inbox: bus.InboxConfig{}}) {
		t.Errorf("DistributorConfig without inboxes = %+v", got)
	}
}
