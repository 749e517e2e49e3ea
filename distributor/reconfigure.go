package distributor

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ferrybus/ferry/bus"
)

// SendCount is how many messages one availability may take now:
// DistributeSendCount as in force.
func (d *Distributor) SendCount() int { return int(d.sendCount.Load()) }

// SetDistributeSendCount changes how many messages one availability may
// take, from the next move on; moves in flight keep the count they began
// with. n is at least 1.
func (d *Distributor) SetDistributeSendCount(n int) error {
	if n < 1 {
		return fmt.Errorf("distributor %q: inbox.distributeSendCount: %d: want at least 1", d.cfg.Name, n)
	}
	if old := d.sendCount.Swap(int64(n)); old != int64(n) {
		d.log.Info("distribute send count changed", "from", old, "to", n)
	}
	return nil
}

// Reconfigure applies new settings to a running distributor: the send
// count, and the inbox settings (bus.Endpoint.Reconfigure) of its local
// endpoint (when it handles messages itself) and of its control inbox.
// Everything is validated first; on an error nothing changes. What cannot
// change live is applied as far as it can and reported in a
// *bus.RestartError naming the keys.
func (d *Distributor) Reconfigure(cfg Config) error {
	if cfg.DistributeSendCount < 0 {
		return fmt.Errorf("distributor %q: inbox.distributeSendCount: %d is negative", d.cfg.Name, cfg.DistributeSendCount)
	}
	send := cfg.DistributeSendCount
	if send == 0 {
		send = 5 // as New: the default
	}
	var restart []string
	for _, k := range []struct {
		key     string
		changed bool
	}{
		{"distribute", cfg.Distribute != d.cfg.Distribute},
		{"reclaimAfter", cfg.ReclaimAfter > 0 && cfg.ReclaimAfter != d.cfg.ReclaimAfter},
		{"lockTTL", cfg.LockTTL > 0 && cfg.LockTTL != d.cfg.LockTTL},
		{"inbox.workQueue", cfg.Inbox.WorkQueue != d.cfg.Inbox.WorkQueue},
		{"controlInbox.workQueue", cfg.ControlInbox.WorkQueue != d.cfg.ControlInbox.WorkQueue},
	} {
		if k.changed {
			restart = append(restart, k.key)
		}
	}
	control := cfg.ControlInbox
	if control.Threads == 0 {
		control.Threads = 4 // as New
	}
	if control.Prefetch == 0 {
		control.Prefetch = controlPrefetch
	}
	// Validate both inboxes before changing either.
	if err := d.control.CheckInbox(control); err != nil {
		return fmt.Errorf("distributor %q: controlInbox: %w", d.cfg.Name, err)
	}
	local := d.local != nil && cfg.Distribute == d.cfg.Distribute
	if local {
		if err := d.local.CheckInbox(cfg.Inbox); err != nil {
			return fmt.Errorf("distributor %q: %w", d.cfg.Name, err)
		}
	}
	if err := d.SetDistributeSendCount(send); err != nil {
		return err
	}
	var re *bus.RestartError
	if err := d.control.Reconfigure(control); errors.As(err, &re) {
		for _, k := range re.Keys {
			restart = append(restart, "controlInbox."+strings.TrimPrefix(k, "inbox."))
		}
	} else if err != nil {
		return fmt.Errorf("distributor %q: controlInbox: %w", d.cfg.Name, err)
	}
	if local {
		if err := d.local.Reconfigure(cfg.Inbox); errors.As(err, &re) {
			restart = append(restart, re.Keys...)
		} else if err != nil {
			return fmt.Errorf("distributor %q: %w", d.cfg.Name, err)
		}
	}
	if len(restart) > 0 {
		return &bus.RestartError{Endpoint: d.cfg.Name, Keys: restart}
	}
	return nil
}
