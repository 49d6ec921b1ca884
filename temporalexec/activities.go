package temporalexec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/taskbridge-go/taskbridge"
)

// Names of the activities [Register] registers. Workflows registered by
// Register call them through [Emit] and [Suspend]; they are listed for
// operators reading workflow histories.
const (
	// ActivityEmit appends an event with an idempotency key.
	ActivityEmit = "taskbridge.Emit"
	// ActivitySuspend opens a suspension with its TASK_SUSPENDED event.
	ActivitySuspend = "taskbridge.Suspend"
	// ActivityCloseSuspension expires an OPEN suspension.
	ActivityCloseSuspension = "taskbridge.CloseSuspension"
	// ActivityEmitCancelled appends TASK_CANCELLED with the reason of the
	// client's cancel request.
	ActivityEmitCancelled = "taskbridge.EmitCancelled"
)

// emitInput is the input of ActivityEmit.
type emitInput struct {
	TaskID  string               `json:"taskId"`
	Key     string               `json:"key"`
	Type    taskbridge.EventType `json:"type"`
	Payload json.RawMessage      `json:"payload"`
	// Trace is the create request's propagated context (see
	// WorkerConfig.Propagator).
	Trace map[string]string `json:"trace,omitempty"`
}

// suspendInput is the input of ActivitySuspend. Opts has a SuspendID and,
// if the suspension expires, ExpiresAt (never TTL): both are fixed by the
// workflow, so a retried activity opens the same suspension.
type suspendInput struct {
	TaskID string                 `json:"taskId"`
	Opts   taskbridge.SuspendOpts `json:"opts"`
	// Trace is the create request's propagated context (see
	// WorkerConfig.Propagator).
	Trace map[string]string `json:"trace,omitempty"`
}

// closeInput is the input of ActivityCloseSuspension.
type closeInput struct {
	TaskID    string `json:"taskId"`
	SuspendID string `json:"suspendId"`
	// Trace is the create request's propagated context (see
	// WorkerConfig.Propagator).
	Trace map[string]string `json:"trace,omitempty"`
}

// closeResult is the result of ActivityCloseSuspension.
type closeResult struct {
	Status  taskbridge.SuspensionStatus `json:"status"`
	Changed bool                        `json:"changed"`
}

// cancelledInput is the input of ActivityEmitCancelled.
type cancelledInput struct {
	TaskID string `json:"taskId"`
	Key    string `json:"key"`
	// Trace is the create request's propagated context (see
	// WorkerConfig.Propagator).
	Trace map[string]string `json:"trace,omitempty"`
}

// activities append a task's events from the worker, through the emitters
// of a Service over the store the API reads.
type activities struct {
	emitter func(taskID string) taskbridge.Emitter
	tasks   taskbridge.TaskRegistry
	prop    taskbridge.Propagator // nil: none
}

// context returns ctx with the create request's propagated context.
func (a *activities) context(ctx context.Context, trace map[string]string) context.Context {
	if a.prop == nil || len(trace) == 0 {
		return ctx
	}
	return a.prop.Extract(ctx, trace)
}

// emit appends in.Payload once per (task, in.Key): a retry after the append
// succeeded returns the first event and appends nothing.
func (a *activities) emit(ctx context.Context, in emitInput) (taskbridge.TaskEvent, error) {
	ctx = a.context(ctx, in.Trace)
	p, err := taskbridge.DecodePayload(taskbridge.TaskEvent{Type: in.Type, Payload: in.Payload})
	if err != nil {
		return taskbridge.TaskEvent{}, toActivityError(err)
	}
	ev, err := a.emitter(in.TaskID).EmitOnce(ctx, in.Key, p)
	return ev, toActivityError(err)
}

// suspend opens the suspension in.Opts. A retry after it was opened finds
// its id taken and succeeds: ids derive from the workflow step, so the id is
// this step's own.
func (a *activities) suspend(ctx context.Context, in suspendInput) error {
	ctx = a.context(ctx, in.Trace)
	_, err := a.emitter(in.TaskID).Suspend(ctx, in.Opts)
	if errors.Is(err, taskbridge.ErrDuplicateSuspension) {
		return nil
	}
	return toActivityError(err)
}

// closeSuspension moves an OPEN suspension to EXPIRED and reports the
// status it has afterwards.
func (a *activities) closeSuspension(ctx context.Context, in closeInput) (closeResult, error) {
	ctx = a.context(ctx, in.Trace)
	s, changed, err := a.emitter(in.TaskID).CloseSuspension(ctx, in.SuspendID, taskbridge.SuspensionExpired)
	if err != nil {
		return closeResult{}, toActivityError(err)
	}
	return closeResult{Status: s.Status, Changed: changed}, nil
}

// emitCancelled appends TASK_CANCELLED once, with the reason of the
// client's cancel request when the task has one.
func (a *activities) emitCancelled(ctx context.Context, in cancelledInput) (taskbridge.TaskEvent, error) {
	ctx = a.context(ctx, in.Trace)
	task, err := a.tasks.GetTask(ctx, in.TaskID)
	if err != nil {
		return taskbridge.TaskEvent{}, toActivityError(fmt.Errorf("temporalexec: reading the cancel reason: %w", err))
	}
	ev, err := a.emitter(in.TaskID).EmitOnce(ctx, in.Key, cancelledPayload(task))
	return ev, toActivityError(err)
}
