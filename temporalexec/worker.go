package temporalexec

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/taskbridge-go/taskbridge"
)

// WorkflowFunc runs one task as a Temporal workflow. It is workflow code:
// it must be deterministic, do its I/O in activities, and use ctx for
// timers, signals and goroutines. It reports progress with [Emit], waits
// for client actions with [Suspend] and ends the task by returning:
//
//   - a nil error completes it with TASK_COMPLETED {result} (a result that
//     is not valid JSON fails it with INTERNAL instead);
//   - an error made by [NewFailure] anywhere in err's chain (also inside
//     the [*temporal.ActivityError] of an activity that returned it) fails
//     it with that code, message and retryable flag;
//   - any other error fails it with {code: TASK_EXECUTION_FAILED, message:
//     "The task failed", retryable: false}; the error is only logged and
//     recorded in the workflow's history, since it may hold internals;
//   - when the workflow was cancelled before it returned, the task ends with
//     TASK_CANCELLED, whatever it returned (cancellation wins).
//
// task is the function's own copy of the task as created.
type WorkflowFunc func(ctx workflow.Context, task *taskbridge.Task) (result any, err error)

// WorkerConfig configures [Register]. A zero field means its default.
type WorkerConfig struct {
	// EmitterFunc returns the emitter of a task: pass the Emitter method of
	// a [taskbridge.Service] over the store the API process serves from
	// (in the worker process, a Service whose executor is an [Executor]).
	// Required.
	EmitterFunc func(taskID string) taskbridge.Emitter
	// Tasks is that store, read for the reason of a client's cancel
	// request. Required.
	Tasks taskbridge.TaskRegistry
	// Workflows maps workflow type names to the functions that run them.
	// The [Executor]'s Config.Workflows maps task types to these names. At
	// least one is required.
	Workflows map[string]WorkflowFunc
	// StartedMessage is the message of the TASK_STARTED event emitted
	// before a WorkflowFunc is called. Defaults to "Task started".
	StartedMessage string
	// ActivityTimeout is the start-to-close timeout of each activity that
	// appends events. Defaults to 10s.
	ActivityTimeout time.Duration
	// RetryPolicy retries those activities when the store fails. Defaults
	// to retrying forever, after 1s, then backing off to once a minute: a
	// task waits out a store outage instead of losing events. Errors that
	// a retry cannot fix (the task is terminal or gone, an invalid event)
	// are never retried.
	RetryPolicy *temporal.RetryPolicy
	// Propagator extracts the create request's context (its trace), which
	// the API process's Service kept in the task (taskbridge.Config's
	// Propagator, see [taskbridge.TraceCarrier]), into the context of the
	// activities that append the task's events, so that they join the
	// request's trace. Pass the API's propagator. Defaults to none.
	Propagator taskbridge.Propagator
}

// Default configuration values of [WorkerConfig].
const (
	DefaultStartedMessage  = "Task started"
	DefaultActivityTimeout = 10 * time.Second
)

// DefaultRetryPolicy returns the retry policy of the adapter's activities
// when WorkerConfig.RetryPolicy is nil.
func DefaultRetryPolicy() *temporal.RetryPolicy {
	return &temporal.RetryPolicy{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    time.Minute,
	}
}

// registration is a validated WorkerConfig.
type registration struct {
	startedMessage  string
	activityOptions workflow.ActivityOptions
}

// Register registers, on a Temporal worker (or a test environment of the
// SDK's testsuite package), every workflow of cfg.Workflows under its name
// and the adapter's activities (see [ActivityEmit]). Call it once per
// worker, before the worker starts; the worker must poll the task queue the
// [Executor] starts workflows on. The caller owns the worker.
//
// Each registered workflow emits TASK_STARTED, calls its [WorkflowFunc] and
// emits the one terminal event from what the function returned (see
// WorkflowFunc). Every event is appended by an activity with an idempotency
// key derived from the workflow id and the step, so retries and replays
// append nothing twice.
func Register(w worker.Registry, cfg WorkerConfig) error {
	if cfg.EmitterFunc == nil {
		return errors.New("temporalexec: WorkerConfig.EmitterFunc is required")
	}
	if cfg.Tasks == nil {
		return errors.New("temporalexec: WorkerConfig.Tasks is required")
	}
	if len(cfg.Workflows) == 0 {
		return errors.New("temporalexec: WorkerConfig.Workflows needs at least one workflow")
	}
	for name, fn := range cfg.Workflows {
		if name == "" {
			return errors.New("temporalexec: WorkerConfig.Workflows has an empty name")
		}
		if fn == nil {
			return fmt.Errorf("temporalexec: WorkerConfig.Workflows[%q] is nil", name)
		}
	}
	if cfg.StartedMessage == "" {
		cfg.StartedMessage = DefaultStartedMessage
	}
	switch {
	case cfg.ActivityTimeout < 0:
		return errors.New("temporalexec: WorkerConfig.ActivityTimeout must not be negative")
	case cfg.ActivityTimeout == 0:
		cfg.ActivityTimeout = DefaultActivityTimeout
	}
	if cfg.RetryPolicy == nil {
		cfg.RetryPolicy = DefaultRetryPolicy()
	}
	g := &registration{
		startedMessage: cfg.StartedMessage,
		activityOptions: workflow.ActivityOptions{
			StartToCloseTimeout: cfg.ActivityTimeout,
			RetryPolicy:         cfg.RetryPolicy,
		},
	}
	for name, fn := range cfg.Workflows {
		w.RegisterWorkflowWithOptions(g.workflow(fn), workflow.RegisterOptions{Name: name})
	}
	a := &activities{emitter: cfg.EmitterFunc, tasks: cfg.Tasks, prop: cfg.Propagator}
	w.RegisterActivityWithOptions(a.emit, activity.RegisterOptions{Name: ActivityEmit})
	w.RegisterActivityWithOptions(a.suspend, activity.RegisterOptions{Name: ActivitySuspend})
	w.RegisterActivityWithOptions(a.closeSuspension, activity.RegisterOptions{Name: ActivityCloseSuspension})
	w.RegisterActivityWithOptions(a.emitCancelled, activity.RegisterOptions{Name: ActivityEmitCancelled})
	return nil
}

// workflow wraps fn into the workflow function registered for it.
func (g *registration) workflow(fn WorkflowFunc) func(workflow.Context, WorkflowInput) (any, error) {
	return func(ctx workflow.Context, in WorkflowInput) (any, error) {
		r := &run{
			cfg:        g,
			task:       in.Task,
			trace:      taskbridge.TraceCarrier(in.Task),
			workflowID: workflow.GetInfo(ctx).WorkflowExecution.ID,
			step:       in.Step,
			received:   map[string]Action{},
			taken:      map[string]bool{},
		}
		for _, a := range in.Actions {
			r.receive(a)
		}
		ctx = workflow.WithValue(ctx, runKey{}, r)
		actions := workflow.GetSignalChannel(ctx, SignalAction)
		workflow.Go(ctx, func(ctx workflow.Context) {
			for {
				var a Action
				actions.Receive(ctx, &a)
				r.receive(a)
			}
		})
		return g.execute(ctx, r, fn)
	}
}

// execute starts the task, runs fn and ends the task.
func (g *registration) execute(ctx workflow.Context, r *run, fn WorkflowFunc) (any, error) {
	log := workflow.GetLogger(ctx)
	if ctx.Err() != nil {
		// Cancelled before it started: the task never runs.
		return nil, g.cancelled(ctx, r)
	}
	if r.step == 0 {
		_, err := r.emit(ctx, r.key(r.nextStep()), taskbridge.StartedPayload{Message: g.startedMessage})
		switch {
		case ctx.Err() != nil:
			return nil, g.cancelled(ctx, r)
		case errors.Is(err, taskbridge.ErrTaskTerminal), errors.Is(err, taskbridge.ErrTaskNotFound):
			// Ended elsewhere (the service failed it, or it was deleted):
			// there is nothing left to run or report.
			log.Info("temporalexec: task already ended, not started", "taskId", r.task.ID, "error", err)
			return nil, nil
		case err != nil:
			log.Error("temporalexec: TASK_STARTED could not be emitted", "taskId", r.task.ID, "error", err)
			g.end(ctx, r, failedStart)
			return nil, err
		}
	}
	task := r.task
	result, err := fn(ctx, &task)
	switch {
	case ctx.Err() != nil:
		return nil, g.cancelled(ctx, r)
	case err == nil:
		p := taskbridge.CompletedPayload{Result: result}
		if _, verr := encodeChecked(p); verr != nil {
			log.Error("temporalexec: task result cannot be encoded", "taskId", r.task.ID, "error", verr)
			g.end(ctx, r, failedResult)
			return nil, NewFailure(failedResult.Code, failedResult.Message, failedResult.Retryable)
		}
		g.end(ctx, r, p)
		return result, nil
	case workflow.IsContinueAsNewError(err) && r.continued:
		return nil, err
	case workflow.IsContinueAsNewError(err):
		log.Error("temporalexec: a workflow continued as new without temporalexec.ContinueAsNew", "taskId", r.task.ID)
		g.end(ctx, r, failedContinueAsNew)
		return nil, NewFailure(failedContinueAsNew.Code, failedContinueAsNew.Message, failedContinueAsNew.Retryable)
	}
	if p, ok := failurePayload(err); ok {
		log.Info("temporalexec: task failed", "taskId", r.task.ID, "error", err)
		g.end(ctx, r, p)
		return nil, err
	}
	log.Warn("temporalexec: task workflow error", "taskId", r.task.ID, "error", err)
	g.end(ctx, r, failedPlain)
	return nil, err
}

// cancelled ends the task with TASK_CANCELLED and returns the canceled error
// that closes the workflow as cancelled.
func (g *registration) cancelled(ctx workflow.Context, r *run) error {
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	var ev taskbridge.TaskEvent
	err := r.activity(dctx, ActivityEmitCancelled, cancelledInput{TaskID: r.task.ID, Key: r.terminalKey(), Trace: r.trace}, &ev)
	g.logEnd(ctx, r, taskbridge.EventTaskCancelled, err)
	return ctx.Err()
}

// end appends the task's terminal event p, even when ctx is cancelled.
func (g *registration) end(ctx workflow.Context, r *run, p taskbridge.Payload) {
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	_, err := r.emit(dctx, r.terminalKey(), p)
	g.logEnd(ctx, r, p.EventType(), err)
}

// logEnd logs how appending the terminal event went. A task that is already
// terminal is fine: the store keeps exactly one terminal event.
func (g *registration) logEnd(ctx workflow.Context, r *run, t taskbridge.EventType, err error) {
	log := workflow.GetLogger(ctx)
	switch {
	case err == nil:
		log.Debug("temporalexec: task ended", "taskId", r.task.ID, "outcome", string(t))
	case errors.Is(err, taskbridge.ErrTaskTerminal):
		log.Info("temporalexec: task was already terminal", "taskId", r.task.ID, "outcome", string(t))
	default:
		log.Error("temporalexec: terminal event not emitted", "taskId", r.task.ID, "outcome", string(t), "error", err)
	}
}
