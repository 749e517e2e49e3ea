package config

import "fmt"

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
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case *Error:
			if e.File == "" {
				e.File = path
			}
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x)
			}
		}
	}
	walk(err)
	return err
}
