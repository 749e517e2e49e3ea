package dashboard

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/queue"
)

// TestErrorGroupsFollowTheQueue: the remembered failure groups are
// brought up to date by new failures (added from the new rows), by a
// discard (counted again) and under a filter, within the memory's life.
func TestErrorGroupsFollowTheQueue(t *testing.T) {
	forEachStore(t, func(t *testing.T, conns *queue.Connections) {
		seedErrors(t, conns,
			failed{id: "m1", typ: "orders.placed", src: ordersURI, kind: bus.KindError, err: "order 12 timed out"},
			failed{id: "m2", typ: "orders.placed", src: ordersURI, kind: bus.KindPanic, err: "nil map"})
		h := newDash(t, conns, testConfig())
		look := func(target, total, matching string, groups int, largest string) {
			t.Helper()
			r := get(t, h, target)
			mustStatus(t, r, http.StatusOK, target)
			if got := testid(t, r.Body, "total"); got != total {
				t.Errorf("%s: total %s, want %s", target, got, total)
			}
			if got := testid(t, r.Body, "matching"); got != matching {
				t.Errorf("%s: matching %s, want %s", target, got, matching)
			}
			if n := strings.Count(r.Body, `data-testid="group-row"`); n != groups {
				t.Errorf("%s: %d groups, want %d", target, n, groups)
			}
			if groups == 0 {
				return
			}
			if got := testid(t, r.Body, "group-count"); got != largest {
				t.Errorf("%s: largest group %s, want %s", target, got, largest)
			}
		}
		look("/errors", "2", "2", 2, "1")
		look("/errors?kind=error", "2", "1", 1, "1")
		seedErrors(t, conns,
			failed{id: "m3", typ: "orders.placed", src: ordersURI, kind: bus.KindError, err: "order 99 timed out"},
			failed{id: "m4", typ: "orders.placed", src: ordersURI, kind: bus.KindDecode, err: "bad json"})
		look("/errors", "4", "4", 3, "2")
		look("/errors?kind=error", "4", "2", 1, "2")
		f := url.Values{"queue": {errorURI}, "scope": {"ids"}, "id": {"m1", "m3"}}
		confirmAndDo(t, h, "/errors/discard", f, 2)
		look("/errors", "2", "2", 2, "1")
		look("/errors?kind=error", "2", "0", 0, "")
	})
}
