package taskbridge

import (
	"context"
	"time"
)

// TaskExecutor runs tasks. The host picks one: the in-process runner
// package, or an adapter to a queue or workflow engine.
type TaskExecutor interface {
	// Submit hands a newly created task to the executor. It should only
	// enqueue: the work runs elsewhere and reports through emit. An error
	// fails the task (TASK_FAILED is appended) and the create request with
	// TASK_SUBMISSION_ERROR (HTTP 503).
	Submit(ctx context.Context, task Task, emit Emitter) error

	// Cancel tells the executor that a client asked to cancel the task. It
	// is called after the request was recorded (task.CancelRequested is
	// true), normally once per task; with several processes (see
	// [LocalExecutor]) it may be called again, and for tasks this
	// executor does not hold, which it then ignores. The executor ends the
	// task with TASK_CANCELLED through its Emitter when it has stopped the
	// work.
	Cancel(ctx context.Context, task Task) error
}

// Resumer is implemented by executors whose tasks wait on suspensions. After
// an action is accepted the service calls Resume; an error leaves the hand-off
// PENDING, and [Service.Reconcile] retries it later. The hand-off is
// at-least-once: Resume may be called again for an action it already took
// (after a crash between Resume and recording the hand-off, or by the
// control relay of a [LocalExecutor]'s process as well as by the service
// that accepted the action), so it must tolerate duplicates.
type Resumer interface {
	Resume(ctx context.Context, task Task, s Suspension, r ActionReceipt) error
}

// TaskValidator is implemented by executors that can reject a create request
// before a task exists, for example an unknown task type. An error that is a
// [*ValidationError] becomes 422 REQUEST_VALIDATION_ERROR; any other error
// becomes 400 INVALID_REQUEST with the error's text as message.
type TaskValidator interface {
	ValidateTask(ctx context.Context, req CreateTaskRequest) error
}

// TaskAdmitter is implemented by executors that bound the tasks they hold,
// in all or per owner. The service calls AdmitTask on create, after the
// request was validated and before the task exists, so that a refusal
// leaves no task behind and a retry with the same clientRequestId can
// succeed. An error wrapping [ErrTooManyTasks] says that the caller has too
// many unfinished tasks (429 TOO_MANY_TASKS, with Retry-After); any other
// error that the executor cannot take the task now (503
// TASK_SUBMISSION_ERROR, or 503 SERVICE_UNAVAILABLE for [ErrClosed]).
// Clients retry both. A refused create that repeats an existing task's
// clientRequestId is still answered with that task (deduplicated) when it
// is among the caller's 100 newest tasks.
//
// On success the executor keeps room for the task until release is called.
// The service calls release exactly once: after Submit returned, or when it
// does not submit (the request was deduplicated or the store failed). A
// Submit for the task's owner uses room kept that way instead of checking
// the limits again, so concurrent creates cannot overshoot them.
type TaskAdmitter interface {
	AdmitTask(ctx context.Context, auth AuthContext, req CreateTaskRequest) (release func(), err error)
}

// Emitter is how executors report a task's progress. It enforces the
// protocol: events are validated against the schema, the status goes
// ACCEPTED → RUNNING → exactly one terminal status, and nothing is accepted
// after a terminal event ([ErrTaskTerminal]).
type Emitter interface {
	// TaskID is the task the emitter reports for.
	TaskID() string
	// Emit appends an event with payload p (TASK_SUSPENDED and
	// TASK_ACTION_ACCEPTED excepted: use Suspend, and actions are appended
	// by the service).
	Emit(ctx context.Context, p Payload) (TaskEvent, error)
	// EmitOnce is Emit for a step that may run more than once, such as a
	// retried workflow activity: the event is appended only if the task
	// has no event emitted with the same key, otherwise the earlier event
	// is returned and nothing is appended (see [EventStore.Append]). key
	// must not be empty.
	EmitOnce(ctx context.Context, key string, p Payload) (TaskEvent, error)
	// Suspend opens a suspension and appends its TASK_SUSPENDED event in one
	// step.
	Suspend(ctx context.Context, opts SuspendOpts) (Suspension, error)
	// CloseSuspension withdraws or expires an OPEN suspension (status
	// EXPIRED or CANCELLED); changed is false if it was no longer OPEN.
	CloseSuspension(ctx context.Context, suspendID string, status SuspensionStatus) (s Suspension, changed bool, err error)
}

// SuspendOpts describes a suspension to open.
type SuspendOpts struct {
	// SuspendID identifies the suspension within the task. Empty means a
	// new UUID. Ids are never reused within a task.
	SuspendID string
	// Kind defaults to USER_ACTION_REQUIRED.
	Kind SuspensionKind
	// ReasonCode is required.
	ReasonCode string
	// AllowedActions lists the accepted actionType values; at least one.
	AllowedActions []string
	// SchemaVersion of the interaction; defaults to 1.
	SchemaVersion int
	// TTL sets ExpiresAt to now+TTL when positive; ExpiresAt wins if set.
	TTL time.Duration
	// ExpiresAt is the deadline for an action; nil means none.
	ExpiresAt *time.Time
	// UIHints and Interaction are free-form objects for the client.
	UIHints     map[string]any
	Interaction map[string]any
}
