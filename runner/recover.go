package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/taskbridge-go/taskbridge"
)

// recoverPage is how many tasks or leases Recover and TakeOver read per
// store call.
const recoverPage = 100

// EmitterFunc returns the emitter of a task; pass
// [taskbridge.Service.Emitter].
type EmitterFunc func(taskID string) taskbridge.Emitter

var errNoLeases = errors.New("runner: taking tasks over needs Config.Leases")

// Recover ends the tasks a previous process left unfinished. Call it once
// at startup with a durable store, before serving; emitter is
// [taskbridge.Service.Emitter] of the service over store.
//
// Without Config.Leases it assumes that this runner is the store's only
// executor: every task that is ACCEPTED or RUNNING, of any owner, and not
// held by this runner is ended. A task with a recorded cancel request ends
// with TASK_CANCELLED {reason}; every other one with TASK_FAILED {code:
// EXECUTOR_LOST, retryable: true}, so clients can create it again. Handlers
// are not re-run.
//
// With Config.Leases, processes sharing the store are left alone: a task
// is taken over (see [Runner.TakeOver]) only when its lease has expired, or
// when it has no lease and was last updated more than a LeaseTTL ago (a
// task created by a process that died before submitting it); a task with a
// live lease of another process, or updated recently, is not touched.
//
// A task that became terminal meanwhile is skipped. Recover returns how
// many tasks it ended or took over to run again.
func (r *Runner) Recover(ctx context.Context, store taskbridge.Store, emitter EmitterFunc) (int, error) {
	statuses := []taskbridge.TaskStatus{taskbridge.StatusAccepted, taskbridge.StatusRunning}
	if r.cfg.Leases == nil {
		return r.eachUnfinished(ctx, store, statuses, func(t taskbridge.Task) (bool, error) {
			return r.endLost(ctx, t, emitter(t.ID))
		})
	}
	n, err := r.takeOverStale(ctx, store, emitter, statuses)
	if err != nil {
		return n, err
	}
	m, err := r.takeOverExpired(ctx, store, emitter)
	return n + m, err
}

// TakeOver takes over the tasks whose process died: the tasks whose lease
// has expired ([taskbridge.LeaseStore.ExpiredLeases]), and ACCEPTED tasks
// without a lease last updated more than a LeaseTTL ago. Of all the
// processes trying, exactly one acquires a task's lease and ends it by the
// policy of the package documentation: TASK_CANCELLED when a cancel was
// requested, else a new run of the handler here for [Config].RerunTypes,
// else TASK_FAILED {code: EXECUTOR_LOST, retryable: true}. It returns how
// many tasks it took over. It needs Config.Leases; store and emitter are as
// for [Runner.Recover]. [Runner.RunRecovery] calls it periodically.
func (r *Runner) TakeOver(ctx context.Context, store taskbridge.Store, emitter EmitterFunc) (int, error) {
	if r.cfg.Leases == nil {
		return 0, errNoLeases
	}
	n, err := r.takeOverExpired(ctx, store, emitter)
	if err != nil {
		return n, err
	}
	m, err := r.takeOverStale(ctx, store, emitter, []taskbridge.TaskStatus{taskbridge.StatusAccepted})
	return n + m, err
}

// RunRecovery runs [Runner.TakeOver] every interval until ctx ends, then
// returns nil. A zero interval means LeaseTTL/2. The host starts it next to
// [taskbridge.Service.RunMaintenance] (go r.RunRecovery(ctx, store,
// svc.Emitter, 0)) and stops it by cancelling ctx. Errors of a pass are
// logged and the next pass runs as usual. It fails at once without
// Config.Leases or with a negative interval.
func (r *Runner) RunRecovery(ctx context.Context, store taskbridge.Store, emitter EmitterFunc, interval time.Duration) error {
	if r.cfg.Leases == nil {
		return errNoLeases
	}
	switch {
	case interval < 0:
		return errors.New("runner: recovery interval must not be negative")
	case interval == 0:
		interval = r.cfg.LeaseTTL / 2
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := r.TakeOver(ctx, store, emitter); err != nil && ctx.Err() == nil {
			r.log.LogAttrs(ctx, slog.LevelError, "runner: takeover pass failed", slog.Any("error", err))
		}
	}
}

// eachUnfinished calls fn for every task in one of statuses that this
// runner does not hold, and counts the calls that report true.
func (r *Runner) eachUnfinished(ctx context.Context, tasks taskbridge.TaskRegistry, statuses []taskbridge.TaskStatus, fn func(taskbridge.Task) (bool, error)) (int, error) {
	q := taskbridge.TaskQuery{Statuses: statuses, Limit: recoverPage}
	n := 0
	for {
		page, err := tasks.ListTasks(ctx, q)
		if err != nil {
			return n, fmt.Errorf("runner: listing unfinished tasks: %w", err)
		}
		for _, t := range page {
			if r.Holds(t.ID) {
				continue
			}
			ok, err := fn(t)
			if err != nil {
				return n, err
			}
			if ok {
				n++
			}
		}
		if len(page) < q.Limit {
			return n, nil
		}
		last := page[len(page)-1]
		q.Before = &taskbridge.TaskPosition{CreatedAt: last.CreatedAt, ID: last.ID}
	}
}

// takeOverStale tries to take over the tasks in statuses last updated more
// than a LeaseTTL ago: AcquireLease fails for those another process holds.
func (r *Runner) takeOverStale(ctx context.Context, store taskbridge.Store, emitter EmitterFunc, statuses []taskbridge.TaskStatus) (int, error) {
	cutoff := r.cfg.Now().Add(-r.cfg.LeaseTTL)
	return r.eachUnfinished(ctx, store, statuses, func(t taskbridge.Task) (bool, error) {
		if t.UpdatedAt.After(cutoff) {
			return false, nil
		}
		return r.takeOverTask(ctx, store, emitter, t.ID)
	})
}

// takeOverExpired tries to take over the tasks whose leases expired.
func (r *Runner) takeOverExpired(ctx context.Context, store taskbridge.Store, emitter EmitterFunc) (int, error) {
	n := 0
	// A lease this runner could not take (its handler has yet to return,
	// or another process won it) may be listed again: stop when a page
	// brings nothing new.
	for range recoverPage {
		leases, err := r.cfg.Leases.ExpiredLeases(ctx, r.cfg.Now(), recoverPage)
		if err != nil {
			return n, fmt.Errorf("runner: listing expired leases: %w", err)
		}
		taken := 0
		for _, l := range leases {
			if r.Holds(l.TaskID) {
				continue
			}
			ok, err := r.takeOverTask(ctx, store, emitter, l.TaskID)
			if err != nil {
				return n, err
			}
			if ok {
				taken++
			}
		}
		n += taken
		if len(leases) < recoverPage || taken == 0 {
			return n, nil
		}
	}
	return n, nil
}

// takeOverTask acquires the lease of a task no live process holds and ends
// or re-runs the task. It reports false when another process holds the
// task or the task ended meanwhile.
func (r *Runner) takeOverTask(ctx context.Context, store taskbridge.Store, emitter EmitterFunc, taskID string) (bool, error) {
	if r.renewalInFlight(taskID) {
		return false, nil // a later pass takes it
	}
	start, acquired, err := r.acquireLease(ctx, taskID)
	switch {
	case errors.Is(err, taskbridge.ErrTaskTerminal) || errors.Is(err, taskbridge.ErrTaskNotFound):
		return false, nil
	case err != nil:
		return false, err
	case !acquired:
		return false, nil
	}
	// Read the task once the lease is ours: the dead process's last
	// events and a cancel request are in.
	task, err := store.GetTask(ctx, taskID)
	if err != nil || task.Status.Terminal() {
		r.releaseLease(ctx, taskID)
		if err != nil && !errors.Is(err, taskbridge.ErrTaskNotFound) {
			return false, fmt.Errorf("runner: reading task %s: %w", taskID, err)
		}
		return false, nil
	}
	j := r.newJob(nil, task, r.cfg.Handlers[task.TaskType], emitter(taskID))
	rerun := !task.CancelRequested && r.rerun[task.TaskType]
	j.rerun = rerun
	if rerun {
		j.susps = store
	}
	j.renewed(start)
	if rerun {
		err := r.enqueue(j, true)
		if err == nil {
			r.log.LogAttrs(ctx, slog.LevelWarn, "runner: took over task to run it again",
				append(j.attrs(), slog.String("outcome", "rerun"))...)
			return true, nil
		}
		// Busy or shutting down: the lease expires again and this or
		// another process takes the task over later.
		j.finish()
		r.log.LogAttrs(ctx, slog.LevelWarn, "runner: took over task but cannot run it now",
			append(j.attrs(), slog.Any("error", err))...)
		return false, nil
	}
	ok, err := r.endLost(ctx, task, j.emit)
	j.finish()
	return ok, err
}

// endLost ends a task whose process died: TASK_CANCELLED if a cancel was
// requested, else TASK_FAILED EXECUTOR_LOST. It reports false when the task
// was terminal already.
func (r *Runner) endLost(ctx context.Context, t taskbridge.Task, e taskbridge.Emitter) (bool, error) {
	var p taskbridge.Payload = failedLost
	if t.CancelRequested {
		p = cancelledPayload(t.CancelReason)
	}
	_, err := e.Emit(ctx, p)
	switch {
	case errors.Is(err, taskbridge.ErrTaskTerminal):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("runner: ending task %s: %w", t.ID, err)
	}
	r.log.LogAttrs(ctx, slog.LevelWarn, "runner: recovered unfinished task",
		slog.String("taskId", t.ID), slog.String("taskType", t.TaskType),
		slog.String("outcome", string(p.EventType())))
	if r.cfg.Leases != nil {
		r.releaseLease(ctx, t.ID)
	}
	return true, nil
}
