package distributor

import "github.com/ferrybus/ferry/bus"

// Name is the distributor's name (Config.Name).
func (d *Distributor) Name() string { return d.cfg.Name }

// Endpoints are the endpoints the distributor runs, for metrics and
// tooling: its control inbox's, then, unless it only distributes
// (Config.Distribute), the one that handles inbox messages here.
func (d *Distributor) Endpoints() []*bus.Endpoint {
	if d.local == nil {
		return []*bus.Endpoint{d.control}
	}
	return []*bus.Endpoint{d.control, d.local}
}
