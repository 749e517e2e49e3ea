//go:build unix

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// sessionFile is an open file holding an exclusive flock; the kernel
// releases the lock when the process dies.
type sessionFile struct {
	f      *os.File
	remove bool
}

// openSessionFile creates path and locks it; an error when another live
// session holds it.
func openSessionFile(path string) (*sessionFile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is held by another live session", path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &sessionFile{f: f}, nil
}

// tryDeadSession locks the session file of another owner: a file (still
// there) whose lock can be taken belongs to a process that died. nil when
// the owner is alive or never had a session file.
func tryDeadSession(path string) (*sessionFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, nil // no session file: an owner of an older version, or on another machine
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, nil
	}
	return &sessionFile{f: f, remove: true}, nil
}

// close unlocks the file, and removes it when it was a dead owner's: the
// file of a live session stays (removed by Unlock, or by whoever takes the
// lock over), so that a session closed without Unlock, as in a crash, still
// reads as dead.
func (s *sessionFile) close() error {
	if s.remove {
		os.Remove(s.f.Name())
	}
	return s.f.Close()
}
