package dashboard

import (
	"sync"
	"time"
)

// Failure groups and the matching count take a scan of up to MaxGroupScan
// messages (0.3–0.4 s at 10,000); the error-queue page keeps
// them for groupCacheTTL and says how old they are. An entry holds only
// while the queue's size and highest row are what they were when it was
// taken, so a retry, discard or new failure is seen at once: with no
// filter, failures that only arrived are added to the remembered groups by
// reading the new rows alone.
const (
	groupCacheTTL = 10 * time.Second
	// groupCacheMax bounds the filters remembered.
	groupCacheMax = 64
	// groupCacheGroups bounds the groups of a remembered scan: one with
	// more is not remembered.
	groupCacheGroups = 1000
)

// groupEntry is one remembered scan of an error queue under one filter.
type groupEntry struct {
	total, last int64      // the queue's size and highest row when taken
	tally       groupTally // never changed once stored
	at          time.Time  // when the full scan it grew from was taken
}

// groupCache remembers the failure groups per error queue and filter.
type groupCache struct {
	mu      sync.Mutex
	entries map[string]groupEntry
}

// get returns the entry for key if it is younger than groupCacheTTL.
func (c *groupCache) get(key string, now time.Time) (groupEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || now.Sub(e.at) >= groupCacheTTL || now.Before(e.at) {
		return groupEntry{}, false
	}
	return e, true
}

// put stores e, dropping stale entries (or all, when still full) to stay
// within groupCacheMax.
func (c *groupCache) put(key string, e groupEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]groupEntry{}
	}
	if _, ok := c.entries[key]; !ok && len(c.entries) >= groupCacheMax {
		for k, old := range c.entries {
			if e.at.Sub(old.at) >= groupCacheTTL {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= groupCacheMax {
			clear(c.entries)
		}
	}
	c.entries[key] = e
}

// reset forgets every entry.
func (c *groupCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
}
