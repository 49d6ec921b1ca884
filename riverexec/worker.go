package riverexec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/runner"
)

// Idempotency keys of the events a worker emits for a task. Every run of a
// task's handler emits the same keys in the same order, so a run after a
// retry or a resume appends nothing that an earlier run appended.
const (
	startedKey   = "riverexec:started"
	emitKeyBase  = "riverexec:emit:"
	userKeyBase  = "riverexec:user:"
	lostFailCode = runner.CodeExecutorLost
)

// worker works task jobs.
type worker struct {
	river.WorkerDefaults[JobArgs]
	e *Executor
}

// Work runs one attempt of a task's job. It returns nil when the task
// ended, or waits for an action with the job completed; it returns an
// error (River then retries the job) when the attempt was cut short by a
// shutdown or could not reach the store.
func (w *worker) Work(ctx context.Context, job *river.Job[JobArgs]) error {
	e := w.e
	svc, err := e.service()
	if err != nil {
		return err
	}
	id := job.Args.TaskID
	task, err := e.store.GetTask(ctx, id)
	switch {
	case errors.Is(err, taskbridge.ErrTaskNotFound):
		return nil // deleted by retention
	case err != nil:
		return err
	case task.Status.Terminal():
		return nil
	}
	// The create request's trace (taskbridge.Config.Propagator) joins the
	// job's context, so the handler's work and its events belong to it.
	ctx = svc.TaskContext(ctx, task)
	emit := svc.Emitter(id)
	attrs := []slog.Attr{slog.String("taskId", id), slog.String("taskType", task.TaskType),
		slog.Int64("jobId", job.ID), slog.Int("attempt", job.Attempt)}
	switch {
	case task.CancelRequested:
		return e.emitTerminal(ctx, emit, id, cancelledPayload(task.CancelReason))
	case job.Attempt > e.cfg.MaxAttempts:
		e.log.LogAttrs(ctx, slog.LevelWarn, "riverexec: task attempts exhausted", attrs...)
		if err := e.emitTerminal(ctx, emit, id, failedLost); err != nil {
			// Snoozing does not use up an attempt: try again later.
			return river.JobSnooze(time.Minute)
		}
		return nil
	}
	h := e.cfg.Handlers[task.TaskType]
	if h == nil {
		e.log.LogAttrs(ctx, slog.LevelError, "riverexec: no handler for the task type", attrs...)
		return e.emitTerminal(ctx, emit, id, failedUnknownType)
	}
	if _, err := emit.EmitOnce(ctx, startedKey, taskbridge.StartedPayload{Message: e.cfg.StartedMessage}); err != nil {
		if errors.Is(err, taskbridge.ErrTaskTerminal) {
			return nil
		}
		return fmt.Errorf("riverexec: emitting TASK_STARTED of task %s: %w", id, err)
	}

	st := &run{e: e, job: job, task: task, emit: &replayEmitter{base: emit, taskID: id, store: e.store}}
	o := st.call(context.WithValue(ctx, runKey{}, st), h)
	if st.isParked() {
		// The job ended in the transaction that parked the task. A cancel
		// that found this job still running left the task to this worker:
		// end it here, with the deadline job the park scheduled.
		if cur, err := e.store.GetTask(context.WithoutCancel(ctx), id); err == nil && cur.CancelRequested {
			if err := e.emitTerminal(ctx, emit, id, cancelledPayload(cur.CancelReason)); err != nil {
				return err
			}
			return e.cancelLeftovers(context.WithoutCancel(ctx), id)
		}
		return nil
	}
	// A cancel request recorded before the handler returned wins over its
	// result, as in the runner.
	if cur, err := e.store.GetTask(context.WithoutCancel(ctx), id); err == nil && cur.CancelRequested {
		return e.emitTerminal(ctx, emit, id, cancelledPayload(cur.CancelReason))
	}
	var f *runner.Failure
	var p taskbridge.Payload
	switch {
	case o.panicked:
		p = failedInternal
	case o.err == nil:
		cp := taskbridge.CompletedPayload{Result: o.result}
		if err := cp.Validate(); err != nil {
			e.log.LogAttrs(ctx, slog.LevelError, "riverexec: task result cannot be encoded",
				append(attrs, slog.Any("error", err))...)
			p = failedResult
		} else {
			p = cp
		}
	case ctx.Err() != nil:
		// Shutdown or River's job timeout, not a client cancel: River
		// runs the job again, here or in another process.
		e.log.LogAttrs(ctx, slog.LevelInfo, "riverexec: task interrupted; River will retry it",
			append(attrs, slog.Any("error", o.err))...)
		return fmt.Errorf("riverexec: task %s interrupted: %w", id, context.Cause(ctx))
	case errors.As(o.err, &f):
		e.log.LogAttrs(ctx, slog.LevelInfo, "riverexec: task failed", append(attrs, slog.Any("error", o.err))...)
		p = f.Payload()
	default:
		e.log.LogAttrs(ctx, slog.LevelWarn, "riverexec: task handler error", append(attrs, slog.Any("error", o.err))...)
		p = failedPlain
	}
	return e.emitTerminal(ctx, emit, id, p)
}

// emitTerminal appends a terminal event with a context that outlives ctx's
// cancellation but is bounded by EmitTimeout. A task that is already
// terminal is not an error: the store keeps exactly one terminal event.
func (e *Executor) emitTerminal(ctx context.Context, emit taskbridge.Emitter, taskID string, p taskbridge.Payload) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.EmitTimeout)
	defer cancel()
	_, err := emit.Emit(ctx, p)
	switch {
	case err == nil, errors.Is(err, taskbridge.ErrTaskTerminal):
		return nil
	default:
		e.log.LogAttrs(ctx, slog.LevelError, "riverexec: terminal event not emitted",
			slog.String("taskId", taskID), slog.String("outcome", string(p.EventType())), slog.Any("error", err))
		return fmt.Errorf("riverexec: emitting %s for task %s: %w", p.EventType(), taskID, err)
	}
}

// run is one attempt of a task's handler.
type run struct {
	e    *Executor
	job  *river.Job[JobArgs]
	task taskbridge.Task
	emit *replayEmitter

	mu     sync.Mutex
	parked bool
}

type runKey struct{}

func runFromContext(ctx context.Context) *run {
	r, _ := ctx.Value(runKey{}).(*run)
	return r
}

func (r *run) isParked() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.parked
}

// outcome is what calling a handler produced.
type outcome struct {
	panicked bool
	result   any
	err      error
}

func (r *run) call(ctx context.Context, h HandlerFunc) (o outcome) {
	defer func() {
		if v := recover(); v != nil {
			o.panicked = true
			r.e.log.LogAttrs(ctx, slog.LevelError, "riverexec: task handler panicked",
				slog.String("taskId", r.task.ID), slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
		}
	}()
	task := r.task
	o.result, o.err = h(ctx, &task, r.emit)
	return o
}

// replayEmitter is the Emitter handlers get. Every Emit is keyed by its
// position in the run, so that a run of the handler after a retry or a
// resume appends nothing an earlier run appended; suspension ids default to
// ids derived from the task and the position too. TASK_STARTED and the
// terminal events belong to the worker.
type replayEmitter struct {
	base   taskbridge.Emitter
	taskID string
	store  interface {
		GetSuspension(ctx context.Context, taskID, suspendID string) (taskbridge.Suspension, error)
	}

	mu       sync.Mutex
	emits    int
	suspends int
}

// TaskID implements [taskbridge.Emitter].
func (r *replayEmitter) TaskID() string { return r.taskID }

func checkHandlerPayload(p taskbridge.Payload) error {
	if p != nil {
		if t := p.EventType(); t == taskbridge.EventTaskStarted || t.Terminal() {
			return fmt.Errorf("%w: the worker emits %s; a handler ends its task by returning",
				taskbridge.ErrInvalidTransition, t)
		}
	}
	return nil
}

// Emit implements [taskbridge.Emitter].
func (r *replayEmitter) Emit(ctx context.Context, p taskbridge.Payload) (taskbridge.TaskEvent, error) {
	if err := checkHandlerPayload(p); err != nil {
		return taskbridge.TaskEvent{}, err
	}
	r.mu.Lock()
	r.emits++
	key := emitKeyBase + strconv.Itoa(r.emits)
	r.mu.Unlock()
	return r.base.EmitOnce(ctx, key, p)
}

// EmitOnce implements [taskbridge.Emitter]; the handler's keys live in
// their own namespace.
func (r *replayEmitter) EmitOnce(ctx context.Context, key string, p taskbridge.Payload) (taskbridge.TaskEvent, error) {
	if err := checkHandlerPayload(p); err != nil {
		return taskbridge.TaskEvent{}, err
	}
	if key == "" {
		return taskbridge.TaskEvent{}, fmt.Errorf("%w: EmitOnce needs a key", taskbridge.ErrInvalidEvent)
	}
	return r.base.EmitOnce(ctx, userKeyBase+key, p)
}

// suspendID returns opts' id, or the id of the run's next suspension.
func (r *replayEmitter) suspendID(opts taskbridge.SuspendOpts) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.suspends++
	if opts.SuspendID != "" {
		return opts.SuspendID
	}
	return uuid.NewSHA1(suspendNamespace, []byte(r.taskID+"\x00"+strconv.Itoa(r.suspends))).String()
}

// suspendNamespace is the UUID namespace of derived suspension ids.
var suspendNamespace = uuid.MustParse("9b0f4a53-3f0e-4d59-9a56-2f4b6b1d2c71")

// Suspend implements [taskbridge.Emitter]: it opens the suspension, or
// returns it if an earlier run opened it.
func (r *replayEmitter) Suspend(ctx context.Context, opts taskbridge.SuspendOpts) (taskbridge.Suspension, error) {
	opts.SuspendID = r.suspendID(opts)
	return r.open(ctx, opts)
}

func (r *replayEmitter) open(ctx context.Context, opts taskbridge.SuspendOpts) (taskbridge.Suspension, error) {
	sp, err := r.store.GetSuspension(ctx, r.taskID, opts.SuspendID)
	if err == nil {
		return sp, nil
	}
	if !errors.Is(err, taskbridge.ErrSuspensionNotFound) {
		return taskbridge.Suspension{}, err
	}
	sp, err = r.base.Suspend(ctx, opts)
	if errors.Is(err, taskbridge.ErrDuplicateSuspension) {
		return r.store.GetSuspension(ctx, r.taskID, opts.SuspendID)
	}
	return sp, err
}

// CloseSuspension implements [taskbridge.Emitter].
func (r *replayEmitter) CloseSuspension(ctx context.Context, suspendID string, status taskbridge.SuspensionStatus) (taskbridge.Suspension, bool, error) {
	return r.base.CloseSuspension(ctx, suspendID, status)
}
