package bus

// MaxErrorBackoff is the cap of the receive loop's error backoff, for tests.
const MaxErrorBackoff = maxErrorBackoff
