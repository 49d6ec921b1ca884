package taskbridge

import (
	"encoding/json"
	"time"
)

// TaskStatus is the lifecycle state of a task.
type TaskStatus string

// Task statuses. A task starts ACCEPTED, becomes RUNNING when its executor
// reports TASK_STARTED and ends in exactly one terminal status.
const (
	StatusAccepted  TaskStatus = "ACCEPTED"
	StatusRunning   TaskStatus = "RUNNING"
	StatusCompleted TaskStatus = "COMPLETED"
	StatusFailed    TaskStatus = "FAILED"
	StatusCancelled TaskStatus = "CANCELLED"
)

// Terminal reports whether s is COMPLETED, FAILED or CANCELLED.
func (s TaskStatus) Terminal() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// Valid reports whether s is one of the five protocol statuses.
func (s TaskStatus) Valid() bool {
	switch s {
	case StatusAccepted, StatusRunning, StatusCompleted, StatusFailed, StatusCancelled:
		return true
	}
	return false
}

// EventType is the type of a [TaskEvent].
type EventType string

// The eight protocol event types.
const (
	EventTaskStarted        EventType = "TASK_STARTED"
	EventTaskProgress       EventType = "TASK_PROGRESS"
	EventTaskMessage        EventType = "TASK_MESSAGE"
	EventTaskSuspended      EventType = "TASK_SUSPENDED"
	EventTaskActionAccepted EventType = "TASK_ACTION_ACCEPTED"
	EventTaskCompleted      EventType = "TASK_COMPLETED"
	EventTaskFailed         EventType = "TASK_FAILED"
	EventTaskCancelled      EventType = "TASK_CANCELLED"
)

// Terminal reports whether t ends a task's event log.
func (t EventType) Terminal() bool {
	return t == EventTaskCompleted || t == EventTaskFailed || t == EventTaskCancelled
}

// Valid reports whether t is one of the eight protocol event types.
func (t EventType) Valid() bool {
	switch t {
	case EventTaskStarted, EventTaskProgress, EventTaskMessage, EventTaskSuspended,
		EventTaskActionAccepted, EventTaskCompleted, EventTaskFailed, EventTaskCancelled:
		return true
	}
	return false
}

// TerminalStatus returns the task status a terminal event type leads to, or
// "" for a non-terminal type.
func (t EventType) TerminalStatus() TaskStatus {
	switch t {
	case EventTaskCompleted:
		return StatusCompleted
	case EventTaskFailed:
		return StatusFailed
	case EventTaskCancelled:
		return StatusCancelled
	}
	return ""
}

// TaskEvent is the protocol event envelope delivered by polling, SSE and
// WebSocket.
//
// EventID is opaque to clients. Stores assign it on append together with Seq,
// the event's position in its task's log (see [EventStore]); EventID is always
// [FormatEventID](Seq) for events read from a store.
type TaskEvent struct {
	Type      EventType       `json:"type"`
	TaskID    string          `json:"taskId"`
	EventID   string          `json:"eventId"`
	CreatedAt time.Time       `json:"createdAt"`
	Payload   json.RawMessage `json:"payload"`

	// Seq is the store-assigned position of the event within its task:
	// 1 for the first event, strictly increasing. It is not sent on the wire.
	Seq int64 `json:"-"`

	// IdempotencyKey, when set on an event to append, makes the append
	// happen at most once per task and key: see [EventStore.Append] and
	// [Emitter.EmitOnce]. Stores keep it with the event and return it from
	// Read; it is not sent on the wire. Only Append honours it: the events
	// the [SuspensionStore] appends are never repeated this way, and the
	// service leaves it empty on them.
	IdempotencyKey string `json:"-"`
}

// Terminal reports whether e ends its task's event log.
func (e TaskEvent) Terminal() bool { return e.Type.Terminal() }

// Attachment describes a file uploaded with a task. The bytes themselves live
// wherever the host's upload sink put them; Ref says where.
type Attachment struct {
	// Field is the multipart field name the file arrived in.
	Field string `json:"field"`
	// Filename is the client's file name reduced to its last path segment.
	Filename string `json:"filename"`
	// ContentType is the declared media type of the part.
	ContentType string `json:"contentType"`
	// Size is the number of bytes received.
	Size int64 `json:"size"`
	// SHA256 is the hex-encoded SHA-256 of the content.
	SHA256 string `json:"sha256"`
	// Ref locates the stored bytes (a file path, an object key); sink-defined.
	Ref string `json:"ref,omitempty"`
}

// Task is a task record as kept by a [TaskRegistry].
type Task struct {
	ID              string          `json:"taskId"`
	OwnerID         string          `json:"ownerId"`
	ClientRequestID string          `json:"clientRequestId"`
	TaskType        string          `json:"taskType"`
	Input           json.RawMessage `json:"input"`
	Metadata        json.RawMessage `json:"metadata"`
	Attachments     []Attachment    `json:"attachments,omitempty"`
	// Fingerprint identifies the logical request (task type, input and
	// attachments) for create idempotency; computed by the service.
	Fingerprint string     `json:"fingerprint"`
	Status      TaskStatus `json:"status"`
	// LastSeq is the Seq of the task's newest event, 0 if it has none.
	// Stores keep it in step with every append.
	LastSeq int64 `json:"lastSeq"`
	// CancelRequested is set once a client asked to cancel the task;
	// CancelReason is the reason given with the first request.
	CancelRequested bool      `json:"cancelRequested"`
	CancelReason    string    `json:"cancelReason,omitempty"`
	CreatedAt       time.Time `json:"createdAt"`
	UpdatedAt       time.Time `json:"updatedAt"`
}

// ValidTaskID reports whether id is acceptable to TaskBridge clients: it
// matches ^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,254}$ and does not contain "..",
// as the Android SDK requires. Every request naming a task checks its id,
// so this is a loop over the bytes rather than a regular expression.
func ValidTaskID(id string) bool {
	if len(id) == 0 || len(id) > 255 || !alnum(id[0]) {
		return false
	}
	for i := 1; i < len(id); i++ {
		switch c := id[i]; {
		case alnum(c), c == '_', c == '@', c == '-':
		case c == '.':
			if id[i-1] == '.' {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// alnum reports whether c is an ASCII letter or digit.
func alnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// CreateTaskRequest asks the service to create a task. Input and Metadata must
// be JSON objects when set; nil means {}.
type CreateTaskRequest struct {
	ClientRequestID string          `json:"clientRequestId"`
	TaskType        string          `json:"taskType"`
	Input           json.RawMessage `json:"input,omitempty"`
	Metadata        json.RawMessage `json:"metadata,omitempty"`
	// Attachments are files already received by the transport.
	Attachments []Attachment `json:"-"`
}

// CreateTaskResponse is the answer to a create request: 201 when created,
// 200 when Deduplicated.
type CreateTaskResponse struct {
	TaskID          string     `json:"taskId"`
	Status          TaskStatus `json:"status"`
	ClientRequestID string     `json:"clientRequestId"`
	Deduplicated    bool       `json:"deduplicated"`
}

// PollRequest selects the events a poll returns.
type PollRequest struct {
	// AfterEventID is the cursor; "" means from the start of the retained log.
	AfterEventID string
	// MaxEvents bounds the batch, 1..500. Zero means the default, 100.
	MaxEvents int
	// WaitTimeout is how long to wait for a first event when none is
	// available, 0..60s, also at the end of a finished task (where none
	// can come). Zero returns at once.
	WaitTimeout time.Duration
}

// Poll limits.
const (
	DefaultMaxEvents = 100
	MaxMaxEvents     = 500
	MaxWaitTimeout   = 60 * time.Second
)

// PollResponse is a batch of events strictly after the request's cursor.
type PollResponse struct {
	TaskID string      `json:"taskId"`
	Events []TaskEvent `json:"events"`
	// NextAfterEventID is the id of the last returned event, or the request's
	// cursor echoed when none was returned (null if that was empty too).
	NextAfterEventID *string `json:"nextAfterEventId"`
	// HasMore reports that more events are available right now.
	HasMore bool `json:"hasMore"`
}

// CancelRequest asks to cancel a task. Reason is optional.
type CancelRequest struct {
	Reason string `json:"reason,omitempty"`
}

// CancelStatus is the outcome of a cancel request.
type CancelStatus string

// Cancel outcomes.
const (
	CancelRequested       CancelStatus = "CANCELLATION_REQUESTED"
	CancelAlreadyTerminal CancelStatus = "ALREADY_TERMINAL"
)

// CancelResponse is the answer to a cancel request (always HTTP 202).
type CancelResponse struct {
	TaskID string       `json:"taskId"`
	Status CancelStatus `json:"status"`
}

// ActionRequest answers a suspension. Payload and Metadata must be JSON
// objects when set; nil means {}.
type ActionRequest struct {
	ClientActionID string          `json:"clientActionId"`
	SuspendID      string          `json:"suspendId"`
	ActionType     string          `json:"actionType"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
}

// ActionStatus is the outcome of an action submission.
type ActionStatus string

// Action outcomes.
const (
	ActionAccepted                ActionStatus = "ACCEPTED"
	ActionDeduplicated            ActionStatus = "DEDUPLICATED"
	ActionRejectedAlreadyResolved ActionStatus = "REJECTED_ALREADY_RESOLVED"
	ActionRejectedExpired         ActionStatus = "REJECTED_EXPIRED"
)

// ActionResponse is the answer to an action submission.
type ActionResponse struct {
	TaskID         string       `json:"taskId"`
	SuspendID      string       `json:"suspendId"`
	ClientActionID string       `json:"clientActionId"`
	Status         ActionStatus `json:"status"`
}

// TaskSummary is the client view of a task in a list.
type TaskSummary struct {
	TaskID          string     `json:"taskId"`
	Status          TaskStatus `json:"status"`
	TaskType        string     `json:"taskType"`
	ClientRequestID string     `json:"clientRequestId"`
	CreatedAt       time.Time  `json:"createdAt"`
	UpdatedAt       time.Time  `json:"updatedAt"`
	// LastEventID is the id of the newest event, null if there is none.
	LastEventID     *string `json:"lastEventId"`
	CancelRequested bool    `json:"cancelRequested"`
}

// TaskSnapshot is the client view of one task: its summary plus the most
// recently opened suspension still waiting for an action, if any.
type TaskSnapshot struct {
	TaskSummary
	Suspension *SuspendedPayload `json:"suspension"`
}

// ListTasksRequest selects a page of the caller's tasks, newest first.
type ListTasksRequest struct {
	// Limit is the page size, 1..100; zero means 20.
	Limit int
	// Cursor is the NextCursor of the previous page; "" starts at the newest.
	Cursor string
	// Statuses keeps only tasks in one of these statuses; empty keeps all.
	Statuses []TaskStatus
}

// List limits.
const (
	DefaultListLimit = 20
	MaxListLimit     = 100
)

// TaskList is a page of tasks.
type TaskList struct {
	Tasks []TaskSummary `json:"tasks"`
	// NextCursor continues the listing; null on the last page.
	NextCursor *string `json:"nextCursor"`
}

// SubscribeFrame is the client's WebSocket subscribe frame.
type SubscribeFrame struct {
	Action      string  `json:"action"`
	TaskID      string  `json:"taskId"`
	LastEventID *string `json:"lastEventId,omitempty"`
}

// WebSocket control frame types.
const (
	FrameSubscribe             = "subscribe"
	FrameSubscriptionConfirmed = "SUBSCRIPTION_CONFIRMED"
	FrameHeartbeat             = "HEARTBEAT"
)

// SubscriptionConfirmedFrame acknowledges a WebSocket subscription.
type SubscriptionConfirmedFrame struct {
	Type                      string  `json:"type"`
	TaskID                    string  `json:"taskId"`
	ReplayStartedAfterEventID *string `json:"replayStartedAfterEventId"`
	Live                      bool    `json:"live"`
}

// HeartbeatFrame is the WebSocket keep-alive frame sent while idle.
type HeartbeatFrame struct {
	Type   string `json:"type"`
	TaskID string `json:"taskId"`
	Live   bool   `json:"live"`
}

// ErrorEnvelope is the protocol's error body.
type ErrorEnvelope struct {
	Code      string         `json:"code"`
	Message   string         `json:"message"`
	Details   map[string]any `json:"details"`
	Timestamp time.Time      `json:"timestamp"`
}
