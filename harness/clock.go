package harness

import "time"

// Clock is the run's shared clock: nanoseconds since the run started, for
// clients, nemesis and log samples alike.
type Clock struct{ start time.Time }

// NewClock starts a clock now.
func NewClock() Clock { return Clock{start: time.Now()} }

// Now returns nanoseconds since the start.
func (c Clock) Now() int64 { return int64(time.Since(c.start)) }

// Start is the wall-clock time the run began.
func (c Clock) Start() time.Time { return c.start }
