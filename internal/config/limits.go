package config

// MaxSendBodyLimit is the largest maxSendBodyBytes accepted: 1 GiB, the
// largest value PostgreSQL stores in a bytea column.
const MaxSendBodyLimit = 1 << 30

// checkSendLimits checks the send limits: when set they must be positive
// (zero is not taken for "the default") and within what the stores hold.
func (c *Config) checkSendLimits() []error {
	if c.MaxSendBodyBytes == nil {
		return nil
	}
	switch n := *c.MaxSendBodyBytes; {
	case n <= 0:
		return []error{errorf("maxSendBodyBytes", "%d: want a positive number of bytes (leave the key out for the default, 4 MiB)", n)}
	case n > MaxSendBodyLimit:
		return []error{errorf("maxSendBodyBytes", "%d is over the limit of %d (1 GiB)", n, MaxSendBodyLimit)}
	}
	return nil
}

// SendBodyLimit is the maxSendBodyBytes to give bus.Config: zero (the
// bus's default) when the key is not set.
func (c *Config) SendBodyLimit() int {
	if c.MaxSendBodyBytes == nil {
		return 0
	}
	return *c.MaxSendBodyBytes
}
