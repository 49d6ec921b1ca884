package riverexec

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/runner"
)

// ErrWaiting is returned (wrapped) by [Suspend] when the task now waits for
// a client action: the job has ended, and the handler must return (return
// the error, as any error of Suspend). When an action is accepted, a new
// job runs the handler again, and Suspend then returns the action. The
// result of a handler that does not return it is ignored.
var ErrWaiting = errors.New("riverexec: task waits for an action; the handler runs again when one is accepted")

// ErrNotInHandler is returned by [Suspend] when its context does not come
// from a handler run by an [Executor].
var ErrNotInHandler = errors.New("riverexec: Suspend called outside a riverexec handler")

// Suspend opens a suspension for the task of the running handler, or finds
// the one an earlier run of the handler opened, and returns the action a
// client took on it. ctx must be the handler's context (or derived from it)
// and e its emitter. An empty opts.SuspendID gets an id derived from the
// task and the position of the call in the run, so every run of a
// deterministic handler names its suspensions alike.
//
// While no action is accepted the task does not hold a worker: the job
// ends in the same transaction that finds the suspension still OPEN (with
// the task row locked, so no action can slip in between) and Suspend
// returns [ErrWaiting]. When the suspension has a deadline, a job is
// scheduled for it; it finds the suspension expired and Suspend fails with
// [runner.ErrSuspensionExpired] (TASK_FAILED SUSPENSION_EXPIRED if the
// handler returns it). A suspension that was closed because the task ended
// fails with an error wrapping [taskbridge.ErrTaskTerminal].
func Suspend(ctx context.Context, e taskbridge.Emitter, opts taskbridge.SuspendOpts) (runner.Action, error) {
	r := runFromContext(ctx)
	if r == nil {
		return runner.Action{}, ErrNotInHandler
	}
	if e == nil || e.TaskID() != r.task.ID {
		return runner.Action{}, fmt.Errorf("riverexec: Suspend needs the emitter of task %s", r.task.ID)
	}
	opts.SuspendID = r.emit.suspendID(opts)
	sp, err := r.emit.open(ctx, opts)
	if err != nil {
		return runner.Action{}, err
	}
	for range 3 {
		switch sp.Status {
		case taskbridge.SuspensionResolved:
			rec, err := r.e.store.GetReceipt(ctx, r.task.ID, sp.ResolvedActionID)
			if err != nil {
				return runner.Action{}, fmt.Errorf("riverexec: reading the action of suspension %s: %w", sp.SuspendID, err)
			}
			return runner.ActionFromReceipt(rec), nil
		case taskbridge.SuspensionExpired:
			return runner.Action{}, fmt.Errorf("%w: suspension %s", runner.ErrSuspensionExpired, sp.SuspendID)
		case taskbridge.SuspensionCancelled:
			return runner.Action{}, fmt.Errorf("riverexec: suspension %s was cancelled: %w", sp.SuspendID, taskbridge.ErrTaskTerminal)
		}
		// OPEN.
		if sp.ExpiredAt(r.e.cfg.Now()) {
			if sp, _, err = e.CloseSuspension(ctx, sp.SuspendID, taskbridge.SuspensionExpired); err != nil {
				return runner.Action{}, fmt.Errorf("riverexec: expiring suspension %s: %w", sp.SuspendID, err)
			}
			continue
		}
		parked, cur, err := r.park(ctx, sp)
		if err != nil {
			return runner.Action{}, err
		}
		if parked {
			return runner.Action{}, fmt.Errorf("%w (suspension %s)", ErrWaiting, sp.SuspendID)
		}
		sp = cur // it changed meanwhile: decide again
	}
	return runner.Action{}, fmt.Errorf("riverexec: suspension %s keeps changing", sp.SuspendID)
}

// park ends the job while sp is still OPEN, atomically: in one transaction
// it locks the task, checks the suspension, completes the job and, when the
// suspension has a deadline, schedules the job that will expire it. An
// action accepted after the commit inserts a new job (see Executor.Resume).
// It returns the current suspension when it was no longer OPEN.
func (r *run) park(ctx context.Context, sp taskbridge.Suspension) (bool, taskbridge.Suspension, error) {
	var cur taskbridge.Suspension
	parked := false
	err := pgx.BeginFunc(ctx, r.e.pool, func(tx pgx.Tx) error {
		var err error
		cur, err = r.e.store.LockSuspensionTx(ctx, tx, r.task.ID, sp.SuspendID)
		if err != nil || cur.Status != taskbridge.SuspensionOpen {
			return err
		}
		if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, r.job); err != nil {
			return fmt.Errorf("completing job %d: %w", r.job.ID, err)
		}
		if cur.ExpiresAt != nil {
			opts := r.e.insertOpts()
			opts.ScheduledAt = *cur.ExpiresAt
			if _, err := r.e.client.InsertTx(ctx, tx, JobArgs{TaskID: r.task.ID}, opts); err != nil {
				return fmt.Errorf("scheduling the deadline of suspension %s: %w", cur.SuspendID, err)
			}
		}
		parked = true
		return nil
	})
	if err != nil {
		return false, taskbridge.Suspension{}, fmt.Errorf("riverexec: parking task %s: %w", r.task.ID, err)
	}
	if parked {
		r.mu.Lock()
		r.parked = true
		r.mu.Unlock()
	}
	return parked, cur, nil
}

// Failure payloads the worker emits on its own; their codes are the
// runner's.
var (
	failedInternal = taskbridge.FailedPayload{
		Code: runner.CodeInternal, Message: "The task handler failed unexpectedly", Retryable: false,
	}
	failedResult = taskbridge.FailedPayload{
		Code: runner.CodeInternal, Message: "The task result could not be encoded", Retryable: false,
	}
	failedPlain = taskbridge.FailedPayload{
		Code: runner.CodeTaskFailed, Message: "The task failed", Retryable: false,
	}
	failedUnknownType = taskbridge.FailedPayload{
		Code: runner.CodeInternal, Message: "No worker can run this task type", Retryable: false,
	}
	failedLost = taskbridge.FailedPayload{
		Code: lostFailCode, Message: "The task's workers kept stopping before it finished; retry it", Retryable: true,
	}
)

const cancelledMessage = "Task cancelled by the client"

func cancelledPayload(reason string) taskbridge.CancelledPayload {
	if reason == "" {
		reason = runner.DefaultCancelReason
	}
	return taskbridge.CancelledPayload{Reason: reason, Message: cancelledMessage}
}
