package postgres

import (
	"strings"
	"testing"
)

// A schema name too long for a NOTIFY channel gets a hashed channel name
// that fits and stays distinct.
func TestNotifyChannel(t *testing.T) {
	if ch := notifyChannel("short"); ch != "ferry.short" {
		t.Errorf("channel %q", ch)
	}
	long := strings.Repeat("s", 60)
	if ch := notifyChannel(long); len(ch) > 63 || ch == notifyChannel(long+"x") {
		t.Errorf("channel %q for a long schema: too long or not distinct", ch)
	}
}
