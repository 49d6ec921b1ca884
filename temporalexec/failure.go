package temporalexec

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/taskbridge-go/taskbridge"
)

// TASK_FAILED codes the adapter uses on its own. They match the runner
// package's codes where the situation is the same.
const (
	// CodeTaskFailed is the code of a workflow error that is not a failure
	// made by [NewFailure].
	CodeTaskFailed = "TASK_EXECUTION_FAILED"
	// CodeInternal is the code of a workflow result that cannot be encoded
	// as JSON, and of a workflow that tried to continue as new without
	// [ContinueAsNew].
	CodeInternal = "INTERNAL"
	// CodeSuspensionExpired is the code of [ErrSuspensionExpired].
	CodeSuspensionExpired = "SUSPENSION_EXPIRED"
	// CodeExecutorLost is the code [Executor.Reconcile] gives a task whose
	// workflow ended without reporting, or vanished; it is retryable.
	CodeExecutorLost = "EXECUTOR_LOST"
	// CodeWorkflowTerminated is the code [Executor.Reconcile] gives a task
	// whose workflow was terminated (by an operator, or by a
	// workflow-level timeout); it is retryable.
	CodeWorkflowTerminated = "WORKFLOW_TERMINATED"
)

// FailureType is the [temporal.ApplicationError] type of the errors made by
// [NewFailure].
const FailureType = "taskbridge.Failure"

// NewFailure returns an error that, returned by a [WorkflowFunc], fails the
// task with TASK_FAILED {code, message, retryable}. code, message and
// retryable are sent to clients as they are, so the message must be safe to
// show; an empty code means [CodeTaskFailed]. retryable tells clients
// whether creating the task again may succeed.
//
// The error is a non-retryable [*temporal.ApplicationError] of type
// [FailureType] carrying the payload as its details, so it survives
// serialization: an activity may return it too (it is then not retried),
// and the workflow function may return the [*temporal.ActivityError] that
// wraps it as it is. Wrapping it with %w keeps it recognisable.
func NewFailure(code, message string, retryable bool) error {
	if code == "" {
		code = CodeTaskFailed
	}
	return temporal.NewNonRetryableApplicationError(message, FailureType, nil,
		taskbridge.FailedPayload{Code: code, Message: message, Retryable: retryable})
}

// ErrSuspensionExpired is returned (wrapped) by [Suspend] when the
// suspension's deadline passed before an action was accepted. It is a
// failure made by [NewFailure], so a workflow function that returns it fails
// the task with {code: SUSPENSION_EXPIRED, retryable: false}.
var ErrSuspensionExpired = NewFailure(CodeSuspensionExpired,
	"No action was taken before the suspension expired", false)

// Errors of the adapter.
var (
	// ErrNotInWorkflow is returned by [Emit], [Suspend] and
	// [ContinueAsNew] when their context does not come from a workflow
	// registered by [Register].
	ErrNotInWorkflow = errors.New("temporalexec: not called from a workflow registered by temporalexec.Register")
	// ErrUnknownTaskType is returned by [Executor.Submit] for a task type
	// that Config.Workflows does not map to a workflow.
	ErrUnknownTaskType = errors.New("temporalexec: no workflow for task type")
)

// failurePayload returns the TASK_FAILED payload of a failure made by
// NewFailure anywhere in err's chain.
func failurePayload(err error) (taskbridge.FailedPayload, bool) {
	var appErr *temporal.ApplicationError
	for e := err; errors.As(e, &appErr); e = appErr.Unwrap() {
		if appErr.Type() != FailureType {
			continue
		}
		var p taskbridge.FailedPayload
		if !appErr.HasDetails() || appErr.Details(&p) != nil || p.Code == "" {
			p = taskbridge.FailedPayload{Code: CodeTaskFailed, Message: appErr.Message()}
		}
		return p, true
	}
	return taskbridge.FailedPayload{}, false
}

// Failure payloads the adapter emits on its own.
var (
	failedPlain = taskbridge.FailedPayload{
		Code: CodeTaskFailed, Message: "The task failed", Retryable: false,
	}
	failedResult = taskbridge.FailedPayload{
		Code: CodeInternal, Message: "The task result could not be encoded", Retryable: false,
	}
	failedStart = taskbridge.FailedPayload{
		Code: CodeInternal, Message: "The task could not be started", Retryable: true,
	}
	failedContinueAsNew = taskbridge.FailedPayload{
		Code: CodeInternal, Message: "The task failed unexpectedly", Retryable: false,
	}
	failedLost = taskbridge.FailedPayload{
		Code: CodeExecutorLost, Message: "The task's workflow ended without reporting; retry it", Retryable: true,
	}
	failedTerminated = taskbridge.FailedPayload{
		Code: CodeWorkflowTerminated, Message: "The task's workflow was stopped; retry it", Retryable: true,
	}
)

// DefaultCancelReason is the TASK_CANCELLED reason when the client's cancel
// request gave none.
const DefaultCancelReason = "cancelled_by_user"

// WorkflowCancelReason is the TASK_CANCELLED reason when the workflow was
// cancelled through Temporal (an operator, another workflow) rather than by
// a client's cancel request.
const WorkflowCancelReason = "workflow_cancelled"

// cancelledPayload is the TASK_CANCELLED payload of a task whose workflow
// was cancelled.
func cancelledPayload(task taskbridge.Task) taskbridge.CancelledPayload {
	switch {
	case task.CancelRequested && task.CancelReason != "":
		return taskbridge.CancelledPayload{Reason: task.CancelReason, Message: "Task cancelled by the client"}
	case task.CancelRequested:
		return taskbridge.CancelledPayload{Reason: DefaultCancelReason, Message: "Task cancelled by the client"}
	}
	return taskbridge.CancelledPayload{Reason: WorkflowCancelReason, Message: "The task's workflow was cancelled"}
}

// Activity error types of the taskbridge sentinels that a retry cannot fix.
// An activity returns them as non-retryable application errors; workflow
// code gets them back as errors wrapping the sentinel.
var sentinels = []struct {
	err error
	typ string
}{
	{taskbridge.ErrTaskTerminal, "taskbridge.ErrTaskTerminal"},
	{taskbridge.ErrTaskNotFound, "taskbridge.ErrTaskNotFound"},
	{taskbridge.ErrInvalidEvent, "taskbridge.ErrInvalidEvent"},
	{taskbridge.ErrInvalidTransition, "taskbridge.ErrInvalidTransition"},
	{taskbridge.ErrSuspensionNotFound, "taskbridge.ErrSuspensionNotFound"},
}

// toActivityError turns the sentinels a retry cannot fix into non-retryable
// application errors; other errors are retried.
func toActivityError(err error) error {
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return temporal.NewNonRetryableApplicationError(err.Error(), s.typ, nil)
		}
	}
	return err
}

// fromActivityError makes an activity error that stands for a taskbridge
// sentinel wrap that sentinel again.
func fromActivityError(err error) error {
	var appErr *temporal.ApplicationError
	if err == nil || !errors.As(err, &appErr) {
		return err
	}
	for _, s := range sentinels {
		if appErr.Type() == s.typ {
			return fmt.Errorf("%w (%w)", s.err, err)
		}
	}
	return err
}
