package taskbridge

import (
	"context"
	"time"
)

// hub is the event fan-out shared by polling, SSE and WebSocket.
type hub struct{ s *Service }

func newHub(s *Service) *hub { return &hub{s: s} }

func (h *hub) shutdown(ctx context.Context) error { return nil }

// SubscribeOpts configures [Service.Subscribe].
type SubscribeOpts struct {
	// Transport names the transport ("sse", "ws", "poll") in the
	// streams_active gauge and in logs.
	Transport string
	// HeartbeatInterval is the idle time after which HeartbeatDue reports
	// true. Zero disables heartbeats.
	HeartbeatInterval time.Duration
	// Signal, when set, is used as the subscription's Ready channel, so one
	// connection can wait on several subscriptions. It must have capacity
	// of at least 1.
	Signal chan struct{}
}

// Frame is one event as delivered to subscribers: the event and its compact
// JSON encoding, made once and shared by every subscriber. Both are
// read-only.
type Frame struct {
	Event TaskEvent
	JSON  []byte
}

// Subscription is a replay-then-live stream of one task's events.
type Subscription struct{}

// Subscribe checks that auth may see the task and that lastEventID is a
// valid, unexpired cursor, and returns a subscription that delivers every
// event strictly after it: first replayed from the store, then live.
func (s *Service) Subscribe(ctx context.Context, auth AuthContext, taskID, lastEventID string, opts SubscribeOpts) (*Subscription, error) {
	return nil, errTODO
}

// TaskID returns the subscribed task's id.
func (sub *Subscription) TaskID() string { return "" }

// Ready is signalled when Next may have frames, a heartbeat is due or the
// subscription ended.
func (sub *Subscription) Ready() <-chan struct{} { return nil }

// Next appends the frames available now to dst and returns it. It reads the
// store while replaying but never waits for live events: with no frames and
// a nil error, wait on Ready. After returning a terminal event's frame, the
// next call returns io.EOF; it returns io.EOF at once if the stream started
// at or after the terminal event. It returns ErrClosed when the service
// shuts down.
func (sub *Subscription) Next(ctx context.Context, dst []*Frame) ([]*Frame, error) {
	return dst, errTODO
}

// HeartbeatDue reports, and clears, that no frame was returned for
// HeartbeatInterval.
func (sub *Subscription) HeartbeatDue() bool { return false }

// Close ends the subscription and releases its resources. Idempotent.
func (sub *Subscription) Close() {}

// Emitter returns the emitter that reports events for taskID.
func (s *Service) Emitter(taskID string) Emitter { return nil }
