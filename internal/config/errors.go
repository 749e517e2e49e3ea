package config

import (
	"errors"
	"fmt"
)

// Error is a configuration error; Key is the key path at fault, File the
// configuration file (empty for configuration parsed from memory).
type Error struct {
	File string
	Key  string
	Msg  string
}

// Error formats the error as "config FILE: KEY: MSG".
func (e *Error) Error() string {
	prefix := "config"
	if e.File != "" {
		prefix += " " + e.File
	}
	if e.Key == "" {
		return prefix + ": " + e.Msg
	}
	return fmt.Sprintf("%s: %s: %s", prefix, e.Key, e.Msg)
}

// errorf is an *Error about key; Load or Validate names the file later.
func errorf(key, format string, args ...any) error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// inFile sets File to path in err, or in each error err joins, when it is
// an *Error that names no file yet. (It does not look inside fmt.Errorf
// wrappers: their text is fixed when they are made.)
func inFile(err error, path string) error {
	if path == "" {
		return err
	}
	eachError(err, func(e *Error) {
		if e.File == "" {
			e.File = path
		}
	})
	return err
}

// eachError calls fn with every *Error inside err: err itself, what it
// wraps, and each of the errors it joins.
func eachError(err error, fn func(*Error)) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			eachError(e, fn)
		}
		return
	}
	var ce *Error
	if errors.As(err, &ce) {
		fn(ce)
	}
}
