package bus

import "github.com/ferrybus/ferry/internal/waiter"

// MaxErrorBackoff is the cap of the receive loop's error backoff, for tests.
const MaxErrorBackoff = waiter.DefaultMaxBackoff

// Abandon stops ep as a crash would, for failure tests.
func Abandon(ep *Endpoint) { ep.abandon() }

// PausedPolls counts the receive loop's waits on a paused inbox, for tests.
func PausedPolls(ep *Endpoint) int64 { return ep.pausedPolls.Load() }
