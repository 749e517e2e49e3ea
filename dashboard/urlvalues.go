package dashboard

import "net/url"

// urlValues builds a query string of the keys that are set, in order.
type urlValues struct{ v url.Values }

func (u *urlValues) add(k, v string) {
	if v == "" {
		return
	}
	if u.v == nil {
		u.v = url.Values{}
	}
	u.v.Add(k, v)
}

func (u *urlValues) encode() string { return u.v.Encode() }

func urlQuery(s string) string { return url.QueryEscape(s) }
