package taskbridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Payload is a typed event payload. Only the types in this package implement
// it, and each can only encode to a payload the protocol schema accepts:
// [Payload.Validate] rejects values the schema would reject.
type Payload interface {
	// EventType is the event type the payload belongs to.
	EventType() EventType
	// Validate reports why the payload would violate the event schema.
	Validate() error
	sealed()
}

// MessageLevel is the optional severity of a TASK_MESSAGE.
type MessageLevel string

// Message levels allowed by the schema.
const (
	LevelInfo    MessageLevel = "info"
	LevelWarning MessageLevel = "warning"
	LevelDebug   MessageLevel = "debug"
)

// SuspensionKind says why a task is suspended.
type SuspensionKind string

// Suspension kinds.
const (
	KindUserActionRequired          SuspensionKind = "USER_ACTION_REQUIRED"
	KindExternalConfirmationPending SuspensionKind = "EXTERNAL_CONFIRMATION_PENDING"
	KindSystemPaused                SuspensionKind = "SYSTEM_PAUSED"
)

// Valid reports whether k is a protocol suspension kind.
func (k SuspensionKind) Valid() bool {
	return k == KindUserActionRequired || k == KindExternalConfirmationPending || k == KindSystemPaused
}

// StartedPayload is the payload of TASK_STARTED: {message?}.
type StartedPayload struct {
	Message string `json:"message,omitempty"`
}

// ProgressPayload is the payload of TASK_PROGRESS: {progress 0..100, stage?, message?}.
type ProgressPayload struct {
	Progress float64 `json:"progress"`
	Stage    string  `json:"stage,omitempty"`
	Message  string  `json:"message,omitempty"`
}

// MessagePayload is the payload of TASK_MESSAGE: {message, level?}.
type MessagePayload struct {
	Message string       `json:"message"`
	Level   MessageLevel `json:"level,omitempty"`
}

// SuspendedPayload is the payload of TASK_SUSPENDED.
type SuspendedPayload struct {
	SuspendID      string         `json:"suspendId"`
	Kind           SuspensionKind `json:"kind"`
	ReasonCode     string         `json:"reasonCode"`
	AllowedActions []string       `json:"allowedActions"`
	SchemaVersion  int            `json:"schemaVersion"`
	ExpiresAt      *time.Time     `json:"expiresAt,omitempty"`
	UIHints        map[string]any `json:"uiHints,omitempty"`
	Interaction    map[string]any `json:"interaction,omitempty"`
}

// ActionAcceptedPayload is the payload of TASK_ACTION_ACCEPTED.
type ActionAcceptedPayload struct {
	SuspendID      string    `json:"suspendId"`
	ClientActionID string    `json:"clientActionId"`
	ActionType     string    `json:"actionType"`
	AcceptedAt     time.Time `json:"acceptedAt"`
	Message        string    `json:"message,omitempty"`
}

// CompletedPayload is the payload of TASK_COMPLETED: {result}. Result is
// required on the wire but may be null.
type CompletedPayload struct {
	Result any `json:"result"`
}

// FailedPayload is the payload of TASK_FAILED: {code, message, retryable}.
type FailedPayload struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
}

// CancelledPayload is the payload of TASK_CANCELLED: {reason, message?}.
type CancelledPayload struct {
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
}

// EventType implements [Payload].
func (StartedPayload) EventType() EventType { return EventTaskStarted }

// EventType implements [Payload].
func (ProgressPayload) EventType() EventType { return EventTaskProgress }

// EventType implements [Payload].
func (MessagePayload) EventType() EventType { return EventTaskMessage }

// EventType implements [Payload].
func (SuspendedPayload) EventType() EventType { return EventTaskSuspended }

// EventType implements [Payload].
func (ActionAcceptedPayload) EventType() EventType { return EventTaskActionAccepted }

// EventType implements [Payload].
func (CompletedPayload) EventType() EventType { return EventTaskCompleted }

// EventType implements [Payload].
func (FailedPayload) EventType() EventType { return EventTaskFailed }

// EventType implements [Payload].
func (CancelledPayload) EventType() EventType { return EventTaskCancelled }

func (StartedPayload) sealed()        {}
func (ProgressPayload) sealed()       {}
func (MessagePayload) sealed()        {}
func (SuspendedPayload) sealed()      {}
func (ActionAcceptedPayload) sealed() {}
func (CompletedPayload) sealed()      {}
func (FailedPayload) sealed()         {}
func (CancelledPayload) sealed()      {}

func invalidPayload(t EventType, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidEvent, t, fmt.Sprintf(format, args...))
}

// Validate implements [Payload]; a started payload is always valid.
func (p StartedPayload) Validate() error { return nil }

// Validate implements [Payload]: progress must be a number in 0..100.
func (p ProgressPayload) Validate() error {
	if math.IsNaN(p.Progress) || p.Progress < 0 || p.Progress > 100 {
		return invalidPayload(EventTaskProgress, "progress %v is outside 0..100", p.Progress)
	}
	return nil
}

// Validate implements [Payload]: level, when set, is info, warning or debug.
func (p MessagePayload) Validate() error {
	switch p.Level {
	case "", LevelInfo, LevelWarning, LevelDebug:
		return nil
	}
	return invalidPayload(EventTaskMessage, "level %q is not info, warning or debug", p.Level)
}

// Validate implements [Payload].
func (p SuspendedPayload) Validate() error {
	t := EventTaskSuspended
	switch {
	case p.SuspendID == "":
		return invalidPayload(t, "suspendId is required")
	case !p.Kind.Valid():
		return invalidPayload(t, "kind %q is not a suspension kind", p.Kind)
	case p.ReasonCode == "":
		return invalidPayload(t, "reasonCode is required")
	case len(p.AllowedActions) == 0:
		return invalidPayload(t, "allowedActions needs at least one action")
	case p.SchemaVersion < 1:
		return invalidPayload(t, "schemaVersion must be at least 1")
	}
	for _, a := range p.AllowedActions {
		if a == "" {
			return invalidPayload(t, "allowedActions contains an empty action")
		}
	}
	return nil
}

// Validate implements [Payload].
func (p ActionAcceptedPayload) Validate() error {
	t := EventTaskActionAccepted
	switch {
	case p.SuspendID == "":
		return invalidPayload(t, "suspendId is required")
	case p.ClientActionID == "":
		return invalidPayload(t, "clientActionId is required")
	case p.ActionType == "":
		return invalidPayload(t, "actionType is required")
	case p.AcceptedAt.IsZero():
		return invalidPayload(t, "acceptedAt is required")
	}
	return nil
}

// Validate implements [Payload]: the result must be encodable as JSON.
func (p CompletedPayload) Validate() error {
	if _, err := json.Marshal(p.Result); err != nil {
		return invalidPayload(EventTaskCompleted, "result is not encodable: %v", err)
	}
	return nil
}

// Validate implements [Payload]: code is required.
func (p FailedPayload) Validate() error {
	if p.Code == "" {
		return invalidPayload(EventTaskFailed, "code is required")
	}
	return nil
}

// Validate implements [Payload]: reason is required.
func (p CancelledPayload) Validate() error {
	if p.Reason == "" {
		return invalidPayload(EventTaskCancelled, "reason is required")
	}
	return nil
}

// EncodePayload validates p and returns its JSON encoding.
func EncodePayload(p Payload) (json.RawMessage, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: nil payload", ErrInvalidEvent)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, invalidPayload(p.EventType(), "%v", err)
	}
	return b, nil
}

// DecodePayload decodes e.Payload into the typed payload of e.Type. It is
// strict: a field the schema does not allow (except in TASK_COMPLETED) is an
// error, as is a payload that fails the type's Validate.
func DecodePayload(e TaskEvent) (Payload, error) {
	var p Payload
	switch e.Type {
	case EventTaskStarted:
		p = &StartedPayload{}
	case EventTaskProgress:
		p = &ProgressPayload{}
	case EventTaskMessage:
		p = &MessagePayload{}
	case EventTaskSuspended:
		p = &SuspendedPayload{}
	case EventTaskActionAccepted:
		p = &ActionAcceptedPayload{}
	case EventTaskCompleted:
		p = &CompletedPayload{}
	case EventTaskFailed:
		p = &FailedPayload{}
	case EventTaskCancelled:
		p = &CancelledPayload{}
	default:
		return nil, fmt.Errorf("%w: unknown event type %q", ErrInvalidEvent, e.Type)
	}
	dec := json.NewDecoder(bytes.NewReader(e.Payload))
	if e.Type != EventTaskCompleted {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(p); err != nil {
		return nil, invalidPayload(e.Type, "%v", err)
	}
	if err := requirePayloadFields(e.Type, e.Payload); err != nil {
		return nil, err
	}
	// Return the value, not the pointer, so callers can type-switch on
	// StartedPayload, ProgressPayload, ...
	var v Payload
	switch q := p.(type) {
	case *StartedPayload:
		v = *q
	case *ProgressPayload:
		v = *q
	case *MessagePayload:
		v = *q
	case *SuspendedPayload:
		v = *q
	case *ActionAcceptedPayload:
		v = *q
	case *CompletedPayload:
		v = *q
	case *FailedPayload:
		v = *q
	case *CancelledPayload:
		v = *q
	}
	if err := v.Validate(); err != nil {
		return nil, err
	}
	return v, nil
}

// requiredFields lists the payload members the schema requires to be present
// (decoding into a struct cannot tell "absent" from a zero value).
var requiredFields = map[EventType][]string{
	EventTaskProgress:       {"progress"},
	EventTaskMessage:        {"message"},
	EventTaskSuspended:      {"suspendId", "kind", "reasonCode", "allowedActions", "schemaVersion"},
	EventTaskActionAccepted: {"suspendId", "clientActionId", "actionType", "acceptedAt"},
	EventTaskCompleted:      {"result"},
	EventTaskFailed:         {"code", "message", "retryable"},
	EventTaskCancelled:      {"reason"},
}

func requirePayloadFields(t EventType, raw json.RawMessage) error {
	names := requiredFields[t]
	if len(names) == 0 {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return invalidPayload(t, "%v", err)
	}
	for _, n := range names {
		if _, ok := m[n]; !ok {
			return invalidPayload(t, "%s is required", n)
		}
	}
	return nil
}
