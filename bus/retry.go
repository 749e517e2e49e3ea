package bus

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// RetryPolicy decides what happens to a message whose handling failed:
// immediate retries, then delayed retries on a backoff schedule (the Backoff
// list, or Exponential), then the error queue. The failure count is durable
// (kept in the message), so many instances consuming one failing message
// never multiply it, and a restart does not reset it. Delays are the queue's
// visibility time: no goroutine sleeps through them.
//
// In JSON, durations are strings ("1s", "250ms") or nanoseconds.
type RetryPolicy struct {
	// MaxAttempts is the number of handling attempts in all before the
	// message goes to the error queue. Default 5.
	MaxAttempts int `json:"maxAttempts" koanf:"maxAttempts"`
	// Immediate is how many of the retries happen at once, before delays.
	Immediate int `json:"immediate" koanf:"immediate"`
	// Backoff lists the delays of the delayed retries; the last repeats.
	// Empty (and no Exponential): every retry is immediate.
	Backoff []time.Duration `json:"backoff" koanf:"backoff"`
	// Exponential, when set, computes the delays instead of Backoff (set one
	// of the two, not both).
	Exponential *ExponentialBackoff `json:"exponential,omitempty" koanf:"exponential"`
}

// ExponentialBackoff is a delay schedule that grows by Factor from Initial
// up to Max, each delay shortened by a random part of at most Jitter of it,
// so that messages failing together do not come back together.
type ExponentialBackoff struct {
	// Initial is the first delay. Default 1s.
	Initial time.Duration `json:"initial" koanf:"initial"`
	// Max caps every delay. Default 1h.
	Max time.Duration `json:"max" koanf:"max"`
	// Factor multiplies the delay at each delayed retry. Default 2; at least 1.
	Factor float64 `json:"factor" koanf:"factor"`
	// Jitter, from 0 to 1, is the largest part of a delay taken off at
	// random: with 0.2 a 10s delay becomes 8s to 10s. Default 0.
	Jitter float64 `json:"jitter" koanf:"jitter"`
}

// DefaultRetryPolicy is used when an inbox sets none: five attempts, the
// first retry at once, then after 1s, 5s and 30s.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 5, Immediate: 1, Backoff: []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}}
}

func (p RetryPolicy) maxAttempts() int {
	if p.MaxAttempts <= 0 {
		return 5
	}
	return p.MaxAttempts
}

// Delay returns how long to wait before the next attempt after failures
// failed attempts, and whether another attempt is allowed at all.
func (p RetryPolicy) Delay(failures int) (time.Duration, bool) {
	if failures >= p.maxAttempts() {
		return 0, false
	}
	if failures <= p.Immediate || (len(p.Backoff) == 0 && p.Exponential == nil) {
		return 0, true
	}
	i := failures - p.Immediate - 1 // 0 for the first delayed retry
	if p.Exponential != nil {
		return p.Exponential.Delay(i), true
	}
	if i >= len(p.Backoff) {
		i = len(p.Backoff) - 1
	}
	return p.Backoff[i], true
}

// Validate checks the policy; errors name the offending key.
func (p RetryPolicy) Validate() error {
	if p.MaxAttempts < 0 {
		return fmt.Errorf("maxAttempts: %d is negative", p.MaxAttempts)
	}
	if p.Immediate < 0 {
		return fmt.Errorf("immediate: %d is negative", p.Immediate)
	}
	for i, d := range p.Backoff {
		if d < 0 {
			return fmt.Errorf("backoff[%d]: %s is negative", i, d)
		}
	}
	if p.Exponential != nil {
		if len(p.Backoff) > 0 {
			return errors.New("backoff and exponential: set one, not both")
		}
		if err := p.Exponential.Validate(); err != nil {
			return fmt.Errorf("exponential.%w", err)
		}
	}
	return nil
}

func (b ExponentialBackoff) initial() time.Duration {
	if b.Initial <= 0 {
		return time.Second
	}
	return b.Initial
}

func (b ExponentialBackoff) max() time.Duration {
	if b.Max <= 0 {
		return time.Hour
	}
	return b.Max
}

func (b ExponentialBackoff) factor() float64 {
	if b.Factor == 0 {
		return 2
	}
	return b.Factor
}

// Base is the n-th delay (from 0) before jitter: Initial·Factor^n, at most Max.
func (b ExponentialBackoff) Base(n int) time.Duration {
	if n < 0 {
		n = 0
	}
	d := float64(b.initial()) * math.Pow(b.factor(), float64(n))
	if math.IsInf(d, 0) || math.IsNaN(d) || d >= float64(b.max()) {
		return b.max()
	}
	return time.Duration(d)
}

// Delay is the n-th delay (from 0) with its jitter applied.
func (b ExponentialBackoff) Delay(n int) time.Duration {
	d := b.Base(n)
	if b.Jitter > 0 {
		d -= time.Duration(rand.Float64() * b.Jitter * float64(d))
	}
	return d
}

// Validate checks the schedule; errors name the offending key.
func (b ExponentialBackoff) Validate() error {
	switch {
	case b.Initial < 0:
		return fmt.Errorf("initial: %s is negative", b.Initial)
	case b.Max < 0:
		return fmt.Errorf("max: %s is negative", b.Max)
	case b.Max > 0 && b.Max < b.initial():
		return fmt.Errorf("max: %s is less than initial %s", b.Max, b.initial())
	case b.Factor != 0 && (b.Factor < 1 || math.IsNaN(b.Factor) || math.IsInf(b.Factor, 0)):
		return fmt.Errorf("factor: %v, want 1 or more", b.Factor)
	case b.Jitter < 0 || b.Jitter > 1 || math.IsNaN(b.Jitter):
		return fmt.Errorf("jitter: %v, want 0 to 1", b.Jitter)
	}
	return nil
}

// jsonDuration is a time.Duration that reads JSON as "1.5s" or as
// nanoseconds, and writes it as "1.5s".
type jsonDuration time.Duration

// MarshalJSON writes the duration as a string such as "1m30s".
func (d jsonDuration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "1m30s" or a number of nanoseconds.
func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = jsonDuration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration: want a string such as \"1s\" or nanoseconds, got %s", b)
	}
	*d = jsonDuration(n)
	return nil
}

type retryPolicyJSON struct {
	MaxAttempts int                 `json:"maxAttempts"`
	Immediate   int                 `json:"immediate"`
	Backoff     []jsonDuration      `json:"backoff"`
	Exponential *ExponentialBackoff `json:"exponential,omitempty"`
}

// MarshalJSON writes the delays as strings ("1s").
func (p RetryPolicy) MarshalJSON() ([]byte, error) {
	j := retryPolicyJSON{MaxAttempts: p.MaxAttempts, Immediate: p.Immediate, Exponential: p.Exponential}
	for _, d := range p.Backoff {
		j.Backoff = append(j.Backoff, jsonDuration(d))
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads delays as strings ("1s") or nanoseconds.
func (p *RetryPolicy) UnmarshalJSON(b []byte) error {
	var j retryPolicyJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*p = RetryPolicy{MaxAttempts: j.MaxAttempts, Immediate: j.Immediate, Exponential: j.Exponential}
	for _, d := range j.Backoff {
		p.Backoff = append(p.Backoff, time.Duration(d))
	}
	return nil
}

type exponentialJSON struct {
	Initial jsonDuration `json:"initial"`
	Max     jsonDuration `json:"max"`
	Factor  float64      `json:"factor"`
	Jitter  float64      `json:"jitter"`
}

// MarshalJSON writes the delays as strings ("1s").
func (b ExponentialBackoff) MarshalJSON() ([]byte, error) {
	return json.Marshal(exponentialJSON{jsonDuration(b.Initial), jsonDuration(b.Max), b.Factor, b.Jitter})
}

// UnmarshalJSON reads delays as strings ("1s") or nanoseconds.
func (b *ExponentialBackoff) UnmarshalJSON(data []byte) error {
	var j exponentialJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*b = ExponentialBackoff{Initial: time.Duration(j.Initial), Max: time.Duration(j.Max), Factor: j.Factor, Jitter: j.Jitter}
	return nil
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent: the message goes to the error queue at
// once, without retries (unless a rule discards it).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
