// Package storecheck holds the input checks that every taskbridge store
// applies to the events it is asked to append, so that the stores reject
// the same events with the same errors.
package storecheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/wire"
)

// NewEvent checks an event to append: no EventID or Seq (the store assigns
// them), a CreatedAt and a valid type. It fails with
// [taskbridge.ErrInvalidEvent].
func NewEvent(ev taskbridge.TaskEvent) error {
	switch {
	case ev.EventID != "" || ev.Seq != 0:
		return fmt.Errorf("%w: the store assigns EventID and Seq", taskbridge.ErrInvalidEvent)
	case ev.CreatedAt.IsZero():
		return fmt.Errorf("%w: CreatedAt is required", taskbridge.ErrInvalidEvent)
	case !ev.Type.Valid():
		return fmt.Errorf("%w: unknown event type %q", taskbridge.ErrInvalidEvent, ev.Type)
	}
	return nil
}

// Appendable checks an event for [taskbridge.EventStore.Append]: a new
// event that is not TASK_SUSPENDED or TASK_ACTION_ACCEPTED (those are
// appended by the SuspensionStore).
func Appendable(ev taskbridge.TaskEvent) error {
	if err := NewEvent(ev); err != nil {
		return err
	}
	if ev.Type == taskbridge.EventTaskSuspended || ev.Type == taskbridge.EventTaskActionAccepted {
		return fmt.Errorf("%w: %s is appended by the SuspensionStore", taskbridge.ErrInvalidEvent, ev.Type)
	}
	return nil
}

// Payload checks an event's payload for a store that vouches for its
// payloads (taskbridge.VettedAppender): empty or valid JSON, which it
// returns compacted (p itself when it is compact). Anything else fails with
// [taskbridge.ErrInvalidEvent].
func Payload(p json.RawMessage) (json.RawMessage, error) {
	if len(p) == 0 {
		return p, nil
	}
	ok, compact := wire.Valid(p)
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: the payload is not valid JSON", taskbridge.ErrInvalidEvent)
	case compact:
		return p, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, p); err != nil {
		return nil, fmt.Errorf("%w: the payload is not valid JSON", taskbridge.ErrInvalidEvent)
	}
	return buf.Bytes(), nil
}

// EventOf checks an event that a SuspensionStore method appends: a new
// event of type want for task taskID.
func EventOf(ev taskbridge.TaskEvent, want taskbridge.EventType, taskID string) error {
	if err := NewEvent(ev); err != nil {
		return err
	}
	if ev.Type != want {
		return fmt.Errorf("%w: event type is %s, want %s", taskbridge.ErrInvalidEvent, ev.Type, want)
	}
	if ev.TaskID != taskID {
		return fmt.Errorf("%w: event of task %q for task %q", taskbridge.ErrInvalidEvent, ev.TaskID, taskID)
	}
	return nil
}

// Limit checks the limit of a store method that returns at most limit
// items: at least 1. It fails with [taskbridge.ErrInvalidRequest].
func Limit(limit int) error {
	if limit < 1 {
		return fmt.Errorf("%w: limit %d must be at least 1", taskbridge.ErrInvalidRequest, limit)
	}
	return nil
}

// Lease checks the holder and ttl of a [taskbridge.LeaseStore] call: a
// holder and a positive ttl. It fails with [taskbridge.ErrInvalidRequest].
func Lease(holder string, ttl time.Duration) error {
	switch {
	case holder == "":
		return fmt.Errorf("%w: lease holder is empty", taskbridge.ErrInvalidRequest)
	case ttl <= 0:
		return fmt.Errorf("%w: lease ttl %v must be positive", taskbridge.ErrInvalidRequest, ttl)
	}
	return nil
}
