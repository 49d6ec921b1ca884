package redisstore

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/taskbridge-go/taskbridge"
)

// taskData is the JSON of a task's immutable fields (hash field "data").
type taskData struct {
	ID              string                  `json:"id"`
	OwnerID         string                  `json:"owner"`
	ClientRequestID string                  `json:"crid"`
	TaskType        string                  `json:"type"`
	Input           json.RawMessage         `json:"input,omitempty"`
	Metadata        json.RawMessage         `json:"metadata,omitempty"`
	Attachments     []taskbridge.Attachment `json:"attachments,omitempty"`
	Fingerprint     string                  `json:"fp"`
	CreatedAt       time.Time               `json:"createdAt"`
}

// decodeTask builds a task from the fields data, status, seq, upd, cxl and
// cxr of its hash (as a script or HMGET returns them).
func decodeTask(f reply) (taskbridge.Task, error) {
	var d taskData
	if err := json.Unmarshal([]byte(f.str(0)), &d); err != nil {
		return taskbridge.Task{}, fmt.Errorf("redisstore: malformed task record: %w", err)
	}
	seq, err := strconv.ParseInt(f.str(2), 10, 64)
	if err != nil {
		return taskbridge.Task{}, fmt.Errorf("redisstore: malformed task seq %q", f.str(2))
	}
	upd, err := parseTimeKey(f.str(3))
	if err != nil {
		return taskbridge.Task{}, err
	}
	return taskbridge.Task{
		ID:              d.ID,
		OwnerID:         d.OwnerID,
		ClientRequestID: d.ClientRequestID,
		TaskType:        d.TaskType,
		Input:           d.Input,
		Metadata:        d.Metadata,
		Attachments:     d.Attachments,
		Fingerprint:     d.Fingerprint,
		Status:          taskbridge.TaskStatus(f.str(1)),
		LastSeq:         seq,
		CancelRequested: f.str(4) == "1",
		CancelReason:    f.str(5),
		CreatedAt:       d.CreatedAt.UTC(),
		UpdatedAt:       upd,
	}, nil
}

// taskFields are the hash fields decodeTask needs, in its order.
var taskFields = []string{"data", "status", "seq", "upd", "cxl", "cxr"}

// suspensionData is the JSON of a suspension's immutable fields. The
// payload is a named field, not embedded: its MarshalJSON would be promoted
// and drop CreatedAt.
type suspensionData struct {
	Payload   taskbridge.SuspendedPayload `json:"payload"`
	CreatedAt time.Time                   `json:"createdAt"`
}

// decodeSuspension builds a suspension of taskID from the fields d, s, q,
// r, m and c of its hash.
func decodeSuspension(taskID string, f reply) (taskbridge.Suspension, error) {
	var d suspensionData
	if err := json.Unmarshal([]byte(f.str(0)), &d); err != nil {
		return taskbridge.Suspension{}, fmt.Errorf("redisstore: malformed suspension record: %w", err)
	}
	seq, err := strconv.ParseInt(f.str(2), 10, 64)
	if err != nil {
		return taskbridge.Suspension{}, fmt.Errorf("redisstore: malformed suspension seq %q", f.str(2))
	}
	closed, err := parseTimeKey(f.str(5))
	if err != nil {
		return taskbridge.Suspension{}, err
	}
	if d.Payload.ExpiresAt != nil {
		at := d.Payload.ExpiresAt.UTC()
		d.Payload.ExpiresAt = &at
	}
	return taskbridge.Suspension{
		TaskID:           taskID,
		SuspendedPayload: d.Payload,
		Status:           taskbridge.SuspensionStatus(f.str(1)),
		EventSeq:         seq,
		ResolvedActionID: f.str(3),
		ResumeStatus:     taskbridge.ResumeStatus(f.str(4)),
		CreatedAt:        d.CreatedAt.UTC(),
		ClosedAt:         closed,
	}, nil
}

// suspensionFields are the per-suspension hash field prefixes
// decodeSuspension needs, in its order.
var suspensionFields = []string{"d:", "s:", "q:", "r:", "m:", "c:"}

// receiptData is the JSON of a receipt's immutable fields.
type receiptData struct {
	TaskID         string          `json:"taskId"`
	SuspendID      string          `json:"suspendId"`
	ClientActionID string          `json:"clientActionId"`
	ActionType     string          `json:"actionType"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
	ActorID        string          `json:"actorId"`
	Fingerprint    string          `json:"fingerprint"`
	CreatedAt      time.Time       `json:"createdAt"`
}

// decodeReceipt builds a receipt from the fields j and q of its hash.
func decodeReceipt(f reply) (taskbridge.ActionReceipt, error) {
	var d receiptData
	if err := json.Unmarshal([]byte(f.str(0)), &d); err != nil {
		return taskbridge.ActionReceipt{}, fmt.Errorf("redisstore: malformed receipt record: %w", err)
	}
	seq, err := strconv.ParseInt(f.str(1), 10, 64)
	if err != nil {
		return taskbridge.ActionReceipt{}, fmt.Errorf("redisstore: malformed receipt seq %q", f.str(1))
	}
	return taskbridge.ActionReceipt{
		TaskID:         d.TaskID,
		SuspendID:      d.SuspendID,
		ClientActionID: d.ClientActionID,
		ActionType:     d.ActionType,
		Payload:        d.Payload,
		Metadata:       d.Metadata,
		ActorID:        d.ActorID,
		Fingerprint:    d.Fingerprint,
		EventSeq:       seq,
		CreatedAt:      d.CreatedAt.UTC(),
	}, nil
}

// eventArgs returns the event arguments of an appending script
// (ARGV[5..14]): type, created, payload, idempotency key, MaxLen and the
// transitions of the state machine for the event's type.
func (s *Store) eventArgs(ev taskbridge.TaskEvent) []any {
	args := []any{string(ev.Type), timeKey(ev.CreatedAt), []byte(ev.Payload), ev.IdempotencyKey, s.cfg.MaxLen}
	return append(args, transitions(ev.Type)...)
}

// statusOrder is the order of the transition arguments of a script.
var statusOrder = []taskbridge.TaskStatus{
	taskbridge.StatusAccepted, taskbridge.StatusRunning,
	taskbridge.StatusCompleted, taskbridge.StatusFailed, taskbridge.StatusCancelled,
}

// transitions returns, for each status of statusOrder, the status an event
// of type et leads to by [taskbridge.NextStatus], or "!T" (the task is
// terminal) or "!I" (not allowed).
func transitions(et taskbridge.EventType) []any {
	out := make([]any, len(statusOrder))
	for i, cur := range statusOrder {
		next, err := taskbridge.NextStatus(cur, et)
		switch {
		case err == nil:
			out[i] = string(next)
		case cur.Terminal():
			out[i] = "!T"
		default:
			out[i] = "!I"
		}
	}
	return out
}

// transitionError returns the state machine's error for appending an event
// of type et to a task in status cur.
func transitionError(taskID string, cur string, et taskbridge.EventType) error {
	if _, err := taskbridge.NextStatus(taskbridge.TaskStatus(cur), et); err != nil {
		return fmt.Errorf("task %q: %w", taskID, err)
	}
	return fmt.Errorf("%w: task %q: %s refused in status %s", taskbridge.ErrInvalidTransition, taskID, et, cur)
}
