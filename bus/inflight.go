package bus

// InFlight is how many of the inbox's messages a handler thread has now:
// started and not yet finished (those waiting in the prefetch buffer are
// not counted). It reads the endpoint's table of leased messages, which is
// bounded by its threads and prefetch, so it costs the hot path nothing;
// metrics read it at scrape time.
func (e *Endpoint) InFlight() int {
	n := 0
	e.inflight.Range(func(_, v any) bool {
		f := v.(*inflight)
		f.mu.Lock()
		if f.started {
			n++
		}
		f.mu.Unlock()
		return true
	})
	return n
}
