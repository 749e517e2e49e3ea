package queue

import (
	"errors"
	"fmt"
	"math"
)

// MinPriority and MaxPriority bound Message.Priority. The priority column
// is a 32-bit INTEGER on PostgreSQL; SQLite, whose INTEGER is wider, is held
// to the same range so that a priority means the same on both stores and a
// message can move from one to the other.
const (
	MinPriority = math.MinInt32
	MaxPriority = math.MaxInt32
)

// ErrPriority is returned by Enqueue and EnqueueTx for a message whose
// priority is outside MinPriority to MaxPriority; nothing is stored.
var ErrPriority = errors.New("priority out of range")

// CheckPriority returns an error wrapping ErrPriority, naming p and the
// range, when p is outside MinPriority to MaxPriority.
func CheckPriority(p int) error {
	if p < MinPriority || p > MaxPriority {
		return fmt.Errorf("%w: %d is not within %d to %d", ErrPriority, p, MinPriority, MaxPriority)
	}
	return nil
}
