package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"

	"github.com/taskbridge-go/taskbridge"
)

// job is one submitted (or taken over) task.
type job struct {
	r       *Runner
	task    taskbridge.Task
	handler HandlerFunc
	// emit is how every event of the task is reported: the emitter the
	// task came with, behind the lease check when leases are on.
	emit taskbridge.Emitter
	// ctx is the handler's context; it carries the job for [Suspend].
	ctx    context.Context
	cancel context.CancelCauseFunc
	// unlink stops the runner's shutdown from cancelling ctx, when ctx
	// does not derive from the runner's base context; nil otherwise.
	unlink func() bool
	// lease is the job's hold on its task; nil without leases.
	lease *jobLease
	// rerun is set when the job runs a taken-over task again: TASK_STARTED
	// is in the log already if the task is RUNNING, and the suspensions
	// an earlier run opened are looked up in susps (see Suspend).
	rerun bool
	susps taskbridge.SuspensionStore

	// Scheduling state (see fair.go), guarded by r.mu.
	owner   *owner
	slot    slotState
	granted chan struct{} // closed when a handler back from Suspend has a slot again

	mu         sync.Mutex
	returned   bool // the handler returned, or will never run
	userCancel bool // a cancel request arrived before that
	reason     string
	waiters    map[string]*waiter // suspensions a handler waits on
	delivered  map[string]string  // suspendId → clientActionId handed over
}

type jobKey struct{}

// newJob prepares a job. The handler's context carries the values of
// values (Submit's context: the create request's trace context, say) but
// not its cancellation: it is cancelled by a cancel request and by the
// runner's shutdown. values may be nil.
func (r *Runner) newJob(values context.Context, task taskbridge.Task, h HandlerFunc, emit taskbridge.Emitter) *job {
	j := &job{r: r, task: task, handler: h, emit: emit}
	parent := r.base
	if values != nil {
		parent = context.WithoutCancel(values)
	}
	ctx, cancel := context.WithCancelCause(parent)
	if values != nil {
		j.unlink = context.AfterFunc(r.base, func() { cancel(context.Cause(r.base)) })
	}
	j.ctx, j.cancel = context.WithValue(ctx, jobKey{}, j), cancel
	if r.cfg.Leases != nil {
		j.lease = &jobLease{}
		j.emit = leasedEmitter{emit, j}
	}
	return j
}

func jobFromContext(ctx context.Context) *job {
	j, _ := ctx.Value(jobKey{}).(*job)
	return j
}

// requestCancel records a client cancel and cancels the handler's context,
// unless the handler already returned.
func (j *job) requestCancel(reason string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.returned || j.userCancel {
		return
	}
	j.userCancel, j.reason = true, reason
	j.cancel(errUserCancel)
}

// finish marks the handler as returned and reports whether a cancel request
// came first. Waiters are dropped: nobody takes their actions any more.
func (j *job) finish() (userCancel bool, reason string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.returned = true
	j.stopLeaseTimerLocked()
	if j.unlink != nil {
		j.unlink()
	}
	j.waiters = nil
	return j.userCancel, j.reason
}

// outcome is what running a job produced.
type outcome struct {
	ran      bool // the handler was called
	startErr error
	panicked bool
	result   any
	err      error
}

// run starts j (TASK_STARTED), calls its handler and emits the one terminal
// event.
func (r *Runner) run(j *job) {
	var o outcome
	// The base context is checked too: cancelling it reaches the jobs'
	// contexts one after the other, so a slot freed by the shutdown could
	// otherwise start a queued job whose context is not cancelled yet.
	if j.ctx.Err() == nil && r.base.Err() == nil {
		var err error
		if !j.rerun || j.task.Status == taskbridge.StatusAccepted {
			_, err = j.emit.Emit(j.ctx, taskbridge.StartedPayload{Message: r.cfg.StartedMessage})
		}
		switch {
		case errors.Is(err, taskbridge.ErrTaskTerminal):
			// Ended elsewhere (recovered, or failed by the service):
			// there is nothing left to run or report.
			j.finish()
			r.log.LogAttrs(j.ctx, slog.LevelInfo, "runner: task already terminal, not started", j.attrs()...)
			r.release(j.ctx, j)
			return
		case err != nil:
			o.startErr = err
		default:
			o = r.call(j)
		}
	}
	userCancel, reason := j.finish()
	if j.leaseLost() {
		r.log.LogAttrs(j.ctx, slog.LevelWarn, "runner: task lease lost; the task is left to the process that takes it over",
			append(j.attrs(), slog.String("outcome", "lease_lost"))...)
		return
	}
	_ = r.end(j.ctx, j, r.decide(j, o, userCancel, reason))
}

// end emits the job's terminal event, unless the job lost its lease, and
// then lets go of the lease. A lease is kept when the event could not be
// appended, so that the task is taken over once it expires.
func (r *Runner) end(ctx context.Context, j *job, p taskbridge.Payload) error {
	if err := r.emitTerminal(ctx, j, p); err != nil {
		return err
	}
	r.release(ctx, j)
	return nil
}

// call runs the handler, turning a panic into an outcome.
func (r *Runner) call(j *job) (o outcome) {
	o.ran = true
	defer func() {
		if v := recover(); v != nil {
			o.panicked = true
			r.log.LogAttrs(j.ctx, slog.LevelError, "runner: task handler panicked",
				append(j.attrs(), slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))...)
		}
	}()
	task := j.task
	o.result, o.err = j.handler(j.ctx, &task, handlerEmitter{j.emit})
	return o
}

// decide picks the terminal payload. In order: a cancel request that came
// before the handler returned wins (TASK_CANCELLED); a panic is INTERNAL; a
// nil error completes the task; after a forced shutdown an error (or a task
// that never ran) is EXECUTOR_SHUTDOWN; then a failed start, a [*Failure]
// and finally any other error.
func (r *Runner) decide(j *job, o outcome, userCancel bool, reason string) taskbridge.Payload {
	var f *Failure
	switch {
	case userCancel:
		return cancelledPayload(reason)
	case o.panicked:
		return failedInternal
	case o.ran && o.err == nil:
		p := taskbridge.CompletedPayload{Result: o.result}
		if err := p.Validate(); err != nil {
			r.log.LogAttrs(j.ctx, slog.LevelError, "runner: task result cannot be encoded",
				append(j.attrs(), slog.Any("error", err))...)
			return failedResult
		}
		return p
	case r.base.Err() != nil:
		return failedShutdown
	case o.startErr != nil:
		r.log.LogAttrs(j.ctx, slog.LevelError, "runner: TASK_STARTED could not be emitted",
			append(j.attrs(), slog.Any("error", o.startErr))...)
		return failedStart
	case errors.As(o.err, &f):
		r.log.LogAttrs(j.ctx, slog.LevelInfo, "runner: task failed",
			append(j.attrs(), slog.Any("error", o.err))...)
		return f.Payload()
	default:
		r.log.LogAttrs(j.ctx, slog.LevelWarn, "runner: task handler error",
			append(j.attrs(), slog.Any("error", o.err))...)
		return failedPlain
	}
}

// emitTerminal appends a terminal event with a context that outlives ctx's
// cancellation but is bounded by EmitTimeout. A task that is already
// terminal is not an error: the store keeps exactly one terminal event.
func (r *Runner) emitTerminal(ctx context.Context, j *job, p taskbridge.Payload) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.EmitTimeout)
	defer cancel()
	_, err := j.emit.Emit(ctx, p)
	attrs := append(j.attrs(), slog.String("outcome", string(p.EventType())))
	switch {
	case err == nil:
		r.log.LogAttrs(ctx, slog.LevelDebug, "runner: task ended", attrs...)
	case errors.Is(err, taskbridge.ErrTaskTerminal):
		r.log.LogAttrs(ctx, slog.LevelInfo, "runner: task was already terminal", attrs...)
		return nil
	case errors.Is(err, taskbridge.ErrLeaseLost):
		r.log.LogAttrs(ctx, slog.LevelWarn, "runner: task lease lost; the task is left to the process that takes it over",
			append(attrs, slog.Any("error", err))...)
		return err
	default:
		r.log.LogAttrs(ctx, slog.LevelError, "runner: terminal event not emitted",
			append(attrs, slog.Any("error", err))...)
		return fmt.Errorf("runner: emitting %s for task %s: %w", p.EventType(), j.task.ID, err)
	}
	return nil
}

func (j *job) attrs() []slog.Attr {
	return []slog.Attr{slog.String("taskId", j.task.ID), slog.String("taskType", j.task.TaskType)}
}

// handlerEmitter is the Emitter handlers get: the task's emitter, except
// that TASK_STARTED and the terminal events belong to the runner.
type handlerEmitter struct {
	taskbridge.Emitter
}

// Emit implements [taskbridge.Emitter].
func (e handlerEmitter) Emit(ctx context.Context, p taskbridge.Payload) (taskbridge.TaskEvent, error) {
	if err := handlerMayEmit(p); err != nil {
		return taskbridge.TaskEvent{}, err
	}
	return e.Emitter.Emit(ctx, p)
}

// EmitOnce implements [taskbridge.Emitter].
func (e handlerEmitter) EmitOnce(ctx context.Context, key string, p taskbridge.Payload) (taskbridge.TaskEvent, error) {
	if err := handlerMayEmit(p); err != nil {
		return taskbridge.TaskEvent{}, err
	}
	return e.Emitter.EmitOnce(ctx, key, p)
}

// handlerMayEmit refuses TASK_STARTED and the terminal events, which the
// runner emits.
func handlerMayEmit(p taskbridge.Payload) error {
	if p != nil {
		if t := p.EventType(); t == taskbridge.EventTaskStarted || t.Terminal() {
			return fmt.Errorf("%w: the runner emits %s; a handler ends its task by returning", taskbridge.ErrInvalidTransition, t)
		}
	}
	return nil
}
