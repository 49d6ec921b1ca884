package temporalexec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/taskbridge-go/taskbridge"
)

// reconcilePage is how many tasks Reconcile lists per store read.
const reconcilePage = 100

// ReconcileReport is the outcome of [Executor.Reconcile].
type ReconcileReport struct {
	// Checked counts the unfinished tasks looked at.
	Checked int
	// Submitted counts tasks whose workflow was never started and is now.
	Submitted int
	// Cancelled counts cancel requests sent again to running workflows.
	Cancelled int
	// Ended counts tasks given their terminal event here because their
	// workflow had closed, or vanished, without reporting one.
	Ended int
	// Failed counts tasks whose check failed; they are checked again next
	// time.
	Failed int
}

// Reconcile brings the unfinished tasks of tasks (ACCEPTED or RUNNING, of
// any owner) in line with their workflows, for what the workflows cannot
// report themselves:
//
//   - no workflow, and the task never started: the process died between
//     creating the task and submitting it, so it is submitted now;
//   - no workflow, but the task started (its history was deleted by the
//     namespace's retention): TASK_FAILED {code: EXECUTOR_LOST,
//     retryable: true};
//   - running, with a client's cancel request recorded: the cancellation
//     is requested again (the first request may have failed);
//   - closed without a terminal event, which happens when the workflow was
//     terminated or timed out (no workflow code runs then), or failed
//     before the adapter could report: TASK_FAILED {code:
//     WORKFLOW_TERMINATED or EXECUTOR_LOST, retryable: true}; a workflow
//     cancelled that way ends the task with TASK_CANCELLED and one that
//     completed with TASK_COMPLETED {its result}.
//
// Events go through emitter (pass [taskbridge.Service.Emitter]) with the
// idempotency key of the task's terminal event, so a task ends once however
// often Reconcile and the workflow race. It assumes that every unfinished
// task in tasks runs on this executor, started through a client of the same
// namespace with the same Config.WorkflowIDPrefix: a task whose workflow
// it cannot find is taken for lost. One failing task does not stop the
// pass; Reconcile returns the store error that prevented listing. Run it
// periodically (every few minutes), like [taskbridge.Service.RunMaintenance].
func (e *Executor) Reconcile(ctx context.Context, tasks taskbridge.TaskRegistry, emitter func(taskID string) taskbridge.Emitter) (ReconcileReport, error) {
	var rep ReconcileReport
	q := taskbridge.TaskQuery{
		Statuses: []taskbridge.TaskStatus{taskbridge.StatusAccepted, taskbridge.StatusRunning},
		Limit:    reconcilePage,
	}
	for {
		page, err := tasks.ListTasks(ctx, q)
		if err != nil {
			return rep, fmt.Errorf("temporalexec: listing unfinished tasks: %w", err)
		}
		for _, t := range page {
			rep.Checked++
			if err := e.reconcileOne(ctx, tasks, t, emitter(t.ID), &rep); err != nil {
				rep.Failed++
				e.log.LogAttrs(ctx, slog.LevelWarn, "temporalexec: reconciling task failed",
					slog.String("taskId", t.ID), slog.String("outcome", "failed"), slog.Any("error", err))
			}
		}
		if len(page) < q.Limit {
			return rep, nil
		}
		last := page[len(page)-1]
		q.Before = &taskbridge.TaskPosition{CreatedAt: last.CreatedAt, ID: last.ID}
	}
}

func (e *Executor) reconcileOne(ctx context.Context, tasks taskbridge.TaskRegistry, t taskbridge.Task, emit taskbridge.Emitter, rep *ReconcileReport) error {
	id := e.WorkflowID(t.ID)
	desc, err := e.c.DescribeWorkflowExecution(ctx, id, "")
	switch {
	case isNotFound(err) && t.Status == taskbridge.StatusAccepted && t.LastSeq == 0:
		if err := e.Submit(ctx, t, emit); err != nil {
			return err
		}
		rep.Submitted++
		e.logOutcome(ctx, t, "submitted")
		return nil
	case isNotFound(err):
		return e.endTask(ctx, t, emit, failedLost, rep)
	case err != nil:
		return fmt.Errorf("temporalexec: describing workflow %s: %w", id, err)
	}
	status := desc.GetWorkflowExecutionInfo().GetStatus()
	if status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		// The workflow reports its terminal event before it closes: read
		// the task again, since it may have done so after the listing.
		if t, err = tasks.GetTask(ctx, t.ID); err != nil || t.Status.Terminal() {
			if errors.Is(err, taskbridge.ErrTaskNotFound) {
				return nil
			}
			return err
		}
	}
	switch status {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		if !t.CancelRequested {
			return nil
		}
		if err := e.Cancel(ctx, t); err != nil {
			return err
		}
		rep.Cancelled++
		e.logOutcome(ctx, t, "cancel_requested")
		return nil
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		var result json.RawMessage
		if err := e.c.GetWorkflow(ctx, id, "").Get(ctx, &result); err != nil {
			return fmt.Errorf("temporalexec: reading the result of workflow %s: %w", id, err)
		}
		if len(result) == 0 {
			result = json.RawMessage("null")
		}
		return e.endTask(ctx, t, emit, taskbridge.CompletedPayload{Result: result}, rep)
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return e.endTask(ctx, t, emit, cancelledPayload(t), rep)
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return e.endTask(ctx, t, emit, failedTerminated, rep)
	default: // FAILED, or a run that continued as new and was then lost
		return e.endTask(ctx, t, emit, failedLost, rep)
	}
}

// endTask appends the terminal event p with the key the workflow would have
// used. A task that ended meanwhile is left alone.
func (e *Executor) endTask(ctx context.Context, t taskbridge.Task, emit taskbridge.Emitter, p taskbridge.Payload, rep *ReconcileReport) error {
	_, err := emit.EmitOnce(ctx, terminalKey(e.WorkflowID(t.ID)), p)
	switch {
	case errors.Is(err, taskbridge.ErrTaskTerminal), errors.Is(err, taskbridge.ErrTaskNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("temporalexec: ending task %s: %w", t.ID, err)
	}
	rep.Ended++
	e.logOutcome(ctx, t, string(p.EventType()))
	return nil
}

func (e *Executor) logOutcome(ctx context.Context, t taskbridge.Task, outcome string) {
	e.log.LogAttrs(ctx, slog.LevelWarn, "temporalexec: task reconciled",
		slog.String("taskId", t.ID), slog.String("taskType", t.TaskType), slog.String("outcome", outcome))
}
