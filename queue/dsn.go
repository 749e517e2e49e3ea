package queue

import (
	"net/url"
	"regexp"
	"strings"
)

// kvPassword finds password=VALUE in a key/value connection string, the
// value bare or single-quoted.
var kvPassword = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)`)

// RedactDSN hides the password of a connection string, for logs and errors:
// in the user info or a password parameter of a URL, in a key/value string
// (host=… password=…), and in a URL too malformed to parse (its user info is
// hidden whole).
func RedactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		out := kvPassword.ReplaceAllString(dsn, "${1}xxxxx")
		if scheme, rest, ok := strings.Cut(out, "://"); ok {
			if at := strings.LastIndex(rest, "@"); at >= 0 {
				out = scheme + "://xxxxx" + rest[at:]
			}
		}
		return out
	}
	changed := false
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			changed = true
		}
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
		changed = true
	}
	if !changed {
		return dsn
	}
	return u.String()
}
