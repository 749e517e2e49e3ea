//go:build !unix

package sqlite

// sessionFile is not available here: SQLite locks are plain leases.
type sessionFile struct{}

func openSessionFile(string) (*sessionFile, error) { return nil, nil }

func tryDeadSession(string) (*sessionFile, error) { return nil, nil }

func (*sessionFile) close() error { return nil }
