package fanout

import "context"

// Frame is one event as subscribers deliver it: its position, its id, and
// its compact JSON encoding, made once and shared by every subscriber.
// Frames are read-only.
type Frame struct {
	// Seq is the event's position in its task's log: 1, 2, 3, ...
	Seq int64
	// EventID is the event's wire id (the SSE "id:" field).
	EventID string
	// Terminal reports that the event ends its task's log.
	Terminal bool
	// JSON is the event envelope as every transport sends it.
	JSON []byte
	// CreatedAt is when the event was appended, in Unix nanoseconds (0 if
	// unknown), for append-to-delivery latency.
	CreatedAt int64

	// own marks a frame that one subscription read from the Source for
	// itself (a replay, or a solo topic member's read): nobody else holds
	// it, so Release may recycle it. A topic's frames are shared and
	// never recycled.
	own bool
	// one backs the slice Single returns.
	one [1]*Frame
}

// Source is the event log the engine fans out. The host package adapts its
// event store, encoding each event it reads into a Frame. Implementations
// must be safe for concurrent use.
type Source interface {
	// Read returns up to limit (>= 1) frames of the task's events with
	// Seq > after, in Seq order and dense (Seq after+1, after+2, ... when
	// after >= 1). after == 0 reads from the oldest retained event. It
	// fails with an error matching Config.ErrExpired when after >= 1 and
	// events with Seq > after were removed by retention, Config.ErrNotFound
	// for an unknown task, and Config.ErrInvalidCursor when after is beyond
	// the task's last event. Every call returns frames of its own, which
	// no earlier call returned and the Source does not keep: the engine
	// hands those a subscription reads for itself to one transport, which
	// may recycle them (see Release). Frames made with NewFrame reuse the
	// memory of recycled ones.
	Read(ctx context.Context, taskID string, after int64, limit int) ([]*Frame, error)

	// Watch registers notify to be called after events are appended to
	// taskID, until stop is called. It has the contract of
	// taskbridge.EventStore.Watch, which every store implements and on
	// which the engine's liveness rests: every append that succeeds after
	// Watch returns is followed by at least one call (calls may be
	// coalesced or spurious; the engine re-reads the log); appends to other
	// tasks do not call it; a task that does not exist yet may be watched;
	// notify does not block, call stop or call back into the store; stop is
	// idempotent and no call starts after it returns. The engine watches
	// first and reads after, so an append between a subscriber's last read
	// and the watch is read by the topic's first fetch.
	Watch(taskID string, notify func()) (stop func())
}
