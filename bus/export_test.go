package bus

import "github.com/ferrybus/ferry/internal/waiter"

// MaxErrorBackoff is the cap of the receive loop's error backoff, for tests.
const MaxErrorBackoff = waiter.DefaultMaxBackoff
