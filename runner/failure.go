package runner

import (
	"errors"

	"github.com/taskbridge-go/taskbridge"
)

// TASK_FAILED codes the runner uses on its own.
const (
	// CodeTaskFailed is the code of a handler error that is not a [*Failure].
	CodeTaskFailed = "TASK_EXECUTION_FAILED"
	// CodeInternal is the code of a handler panic, of a result that cannot
	// be encoded as JSON and of a task whose TASK_STARTED could not be
	// appended.
	CodeInternal = "INTERNAL"
	// CodeExecutorShutdown is the code of a task stopped by
	// [Runner.Shutdown]; it is retryable.
	CodeExecutorShutdown = "EXECUTOR_SHUTDOWN"
	// CodeExecutorLost is the code [Runner.Recover] gives tasks left
	// unfinished by a process that died; it is retryable.
	CodeExecutorLost = "EXECUTOR_LOST"
	// CodeSuspensionExpired is the code of [ErrSuspensionExpired].
	CodeSuspensionExpired = "SUSPENSION_EXPIRED"
)

// Failure is an error a handler returns to choose the TASK_FAILED payload:
// its Code, Message and Retryable are sent to clients as they are, so the
// message must be safe to show. The runner finds it with errors.As, so it
// may be wrapped.
type Failure struct {
	// Code is the machine-readable failure code; empty means
	// [CodeTaskFailed].
	Code string
	// Message is the human-readable, client-visible description.
	Message string
	// Retryable tells clients whether creating the task again may succeed.
	Retryable bool
	// Err is an optional cause. It is logged, never sent to clients.
	Err error
}

// Error implements error.
func (f *Failure) Error() string {
	code := f.Code
	if code == "" {
		code = CodeTaskFailed
	}
	s := code
	if f.Message != "" {
		s += ": " + f.Message
	}
	if f.Err != nil {
		s += ": " + f.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (f *Failure) Unwrap() error { return f.Err }

// Payload returns the TASK_FAILED payload f stands for: its code (or
// [CodeTaskFailed] when empty), message and retryable flag.
func (f *Failure) Payload() taskbridge.FailedPayload {
	p := taskbridge.FailedPayload{Code: f.Code, Message: f.Message, Retryable: f.Retryable}
	if p.Code == "" {
		p.Code = CodeTaskFailed
	}
	return p
}

// ErrSuspensionExpired is returned (wrapped) by [Suspend] when the
// suspension's deadline passed before an action was accepted. It is a
// [*Failure], so a handler that returns it fails the task with
// {code: SUSPENSION_EXPIRED, retryable: false}.
var ErrSuspensionExpired = &Failure{
	Code:    CodeSuspensionExpired,
	Message: "No action was taken before the suspension expired",
}

// Errors of the runner.
var (
	// ErrQueueFull is returned (wrapped with [taskbridge.ErrSubmission]) by
	// [Runner.AdmitTask], and by [Runner.Submit], when Concurrency+QueueSize
	// tasks are running or waiting for a slot. The service answers 503
	// TASK_SUBMISSION_ERROR, which clients retry.
	ErrQueueFull = errors.New("runner: queue is full")
	// ErrUnknownTaskType is returned by [Runner.Submit] for a task type
	// without a handler.
	ErrUnknownTaskType = errors.New("runner: no handler for task type")
	// ErrNotWaiting is returned by [Runner.Resume] when no handler of this
	// runner waits on the suspension (for example after a restart), so the
	// hand-off stays PENDING.
	ErrNotWaiting = errors.New("runner: no handler is waiting on the suspension")
	// ErrNotInHandler is returned by [Suspend] when its context does not
	// come from a handler run by a [Runner].
	ErrNotInHandler = errors.New("runner: Suspend called outside a runner handler")
)

// Failure payloads the runner emits on its own.
var (
	failedInternal = taskbridge.FailedPayload{
		Code: CodeInternal, Message: "The task handler failed unexpectedly", Retryable: false,
	}
	failedResult = taskbridge.FailedPayload{
		Code: CodeInternal, Message: "The task result could not be encoded", Retryable: false,
	}
	failedStart = taskbridge.FailedPayload{
		Code: CodeInternal, Message: "The task could not be started", Retryable: true,
	}
	failedPlain = taskbridge.FailedPayload{
		Code: CodeTaskFailed, Message: "The task failed", Retryable: false,
	}
	failedShutdown = taskbridge.FailedPayload{
		Code: CodeExecutorShutdown, Message: "The server shut down before the task finished; retry it", Retryable: true,
	}
	failedLost = taskbridge.FailedPayload{
		Code: CodeExecutorLost, Message: "The task was interrupted by a server restart; retry it", Retryable: true,
	}
)

// DefaultCancelReason is the TASK_CANCELLED reason when the cancel request
// gave none.
const DefaultCancelReason = "cancelled_by_user"

const cancelledMessage = "Task cancelled by the client"

func cancelledPayload(reason string) taskbridge.CancelledPayload {
	if reason == "" {
		reason = DefaultCancelReason
	}
	return taskbridge.CancelledPayload{Reason: reason, Message: cancelledMessage}
}
