package streamlife

import (
	"fmt"
	"time"
)

// Heartbeat limits shared by the sse and ws handlers.
const (
	// DefaultHeartbeatInterval is the interval used when a handler's
	// config leaves it zero.
	DefaultHeartbeatInterval = 15 * time.Second
	// MaxHeartbeatInterval is the longest interval a handler accepts. The
	// TaskBridge SDK reconnects when a stream has been silent for 60s, and
	// an idle subscription gets its heartbeat between 1 and 1.25 intervals
	// after its last frame: at 40s it is never silent for more than 50s,
	// which leaves 10s for the network.
	MaxHeartbeatInterval = 40 * time.Second
)

// QuietAfter is how long a stream must have sent nothing for its next
// step (reading its subscriptions, writing a batch or a heartbeat) to run
// on a goroutine of its handler's offload pool rather than its own (see
// packages internal/offstack and internal/gopool): a busy stream works on
// its own goroutine, a quiet one keeps that goroutine's stack small. The
// sse and ws handlers use it.
const QuietAfter = time.Second

// HeartbeatInterval checks a handler's heartbeat settings and returns the
// interval to use: 0 when disabled, DefaultHeartbeatInterval for a zero
// interval. pkg prefixes the error messages ("sse", "ws").
func HeartbeatInterval(pkg string, interval time.Duration, disabled bool) (time.Duration, error) {
	switch {
	case disabled && interval != 0:
		return 0, fmt.Errorf("%s: Config.HeartbeatInterval is %v and DisableHeartbeats is set: leave the interval zero", pkg, interval)
	case disabled:
		return 0, nil
	case interval < 0:
		return 0, fmt.Errorf("%s: Config.HeartbeatInterval is negative (%v): set DisableHeartbeats to send none", pkg, interval)
	case interval > MaxHeartbeatInterval:
		return 0, fmt.Errorf("%s: Config.HeartbeatInterval %v exceeds %v: the TaskBridge SDK reconnects after 60s without a frame, and heartbeats go out up to 1.25 intervals apart",
			pkg, interval, MaxHeartbeatInterval)
	case interval == 0:
		return DefaultHeartbeatInterval, nil
	}
	return interval, nil
}
