package temporalexec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/runner"
)

// Config configures an [Executor]. A zero field means its default.
type Config struct {
	// TaskQueue is the task queue workflows are started on; the workers
	// that run them ([Register]) poll it. Required.
	TaskQueue string
	// Workflows maps each task type the executor accepts to the name of
	// the workflow type that runs it; an empty name means the task type
	// itself. At least one is required; create requests for other types
	// are rejected with 400 INVALID_REQUEST.
	Workflows map[string]string
	// WorkflowIDPrefix is put before a task id to make the id of its
	// workflow. Defaults to "taskbridge-".
	WorkflowIDPrefix string
	// Logger receives failed cancels and reconciliation outcomes. Defaults
	// to slog.Default().
	Logger *slog.Logger
}

// DefaultWorkflowIDPrefix is the default of Config.WorkflowIDPrefix.
const DefaultWorkflowIDPrefix = "taskbridge-"

// Executor is a [taskbridge.TaskExecutor] that runs each task as a Temporal
// workflow, started through a client the caller owns. It also implements
// [taskbridge.Resumer], [taskbridge.TaskValidator] and
// [taskbridge.ReadinessProbe]. It holds no state of its own: any number of
// processes may use executors with the same Config, and a Temporal
// workflow reaches the task wherever it runs, so it does not implement
// [taskbridge.LocalExecutor]. Create it with [New]; it is safe for
// concurrent use.
type Executor struct {
	c   client.Client
	cfg Config
	log *slog.Logger
}

// Interface checks.
var (
	_ taskbridge.TaskExecutor   = (*Executor)(nil)
	_ taskbridge.Resumer        = (*Executor)(nil)
	_ taskbridge.TaskValidator  = (*Executor)(nil)
	_ taskbridge.ReadinessProbe = (*Executor)(nil)
)

// New validates cfg, fills in defaults and returns an Executor that starts
// workflows through c. The caller owns c and closes it after the executor
// is no longer used.
func New(c client.Client, cfg Config) (*Executor, error) {
	if c == nil {
		return nil, errors.New("temporalexec: New needs a Temporal client")
	}
	if cfg.TaskQueue == "" {
		return nil, errors.New("temporalexec: Config.TaskQueue is required")
	}
	if len(cfg.Workflows) == 0 {
		return nil, errors.New("temporalexec: Config.Workflows needs at least one task type")
	}
	workflows := make(map[string]string, len(cfg.Workflows))
	for taskType, name := range cfg.Workflows {
		if taskType == "" {
			return nil, errors.New("temporalexec: Config.Workflows has an empty task type")
		}
		if name == "" {
			name = taskType
		}
		workflows[taskType] = name
	}
	cfg.Workflows = workflows
	if cfg.WorkflowIDPrefix == "" {
		cfg.WorkflowIDPrefix = DefaultWorkflowIDPrefix
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Executor{c: c, cfg: cfg, log: cfg.Logger}, nil
}

// WorkflowID returns the id of the workflow that runs the task taskID.
func (e *Executor) WorkflowID(taskID string) string { return e.cfg.WorkflowIDPrefix + taskID }

// ValidateTask implements [taskbridge.TaskValidator]: a task type without a
// workflow is an error wrapping [taskbridge.ErrInvalidRequest], so the
// create request fails with 400 INVALID_REQUEST before the task exists.
func (e *Executor) ValidateTask(_ context.Context, req taskbridge.CreateTaskRequest) error {
	if _, ok := e.cfg.Workflows[req.TaskType]; !ok {
		return fmt.Errorf("%w: unknown taskType %q", taskbridge.ErrInvalidRequest, clip(req.TaskType, 64))
	}
	return nil
}

// Submit implements [taskbridge.TaskExecutor]: it starts the workflow of the
// task's type with id [Executor.WorkflowID] and a [WorkflowInput] holding
// the task. It is idempotent: when the workflow exists already, running or
// closed, it starts nothing and succeeds (a closed workflow is never run
// again). The workflow reports through its activities, not through emit.
// It fails with [ErrUnknownTaskType] for a type without a workflow and with
// the client's error when Temporal cannot be reached.
func (e *Executor) Submit(ctx context.Context, task taskbridge.Task, _ taskbridge.Emitter) error {
	name, ok := e.cfg.Workflows[task.TaskType]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownTaskType, clip(task.TaskType, 64))
	}
	_, err := e.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       e.WorkflowID(task.ID),
		TaskQueue:                e.cfg.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, name, WorkflowInput{Task: task})
	if err != nil {
		return fmt.Errorf("temporalexec: starting workflow %s: %w", e.WorkflowID(task.ID), err)
	}
	return nil
}

// Cancel implements [taskbridge.TaskExecutor]: it requests cancellation of
// the task's workflow, which then ends the task with TASK_CANCELLED {reason
// of the request}. A workflow that is closed already, or was never
// started, is not an error ([Executor.Reconcile] deals with those tasks).
func (e *Executor) Cancel(ctx context.Context, task taskbridge.Task) error {
	err := e.c.CancelWorkflow(ctx, e.WorkflowID(task.ID), "")
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("temporalexec: cancelling workflow %s: %w", e.WorkflowID(task.ID), err)
	}
	return nil
}

// Resume implements [taskbridge.Resumer]: it signals the accepted action to
// the task's workflow ([SignalAction]), where [Suspend] returns it. A
// repeated hand-off of the same action is ignored by the workflow. For a
// terminal task it returns nil, since nobody can take the action any more;
// it fails when the workflow is not running (the hand-off then stays
// PENDING, and [Executor.Reconcile] ends the task).
func (e *Executor) Resume(ctx context.Context, task taskbridge.Task, _ taskbridge.Suspension, rec taskbridge.ActionReceipt) error {
	if task.Status.Terminal() {
		return nil
	}
	if err := e.c.SignalWorkflow(ctx, e.WorkflowID(task.ID), "", SignalAction, runner.ActionFromReceipt(rec)); err != nil {
		return fmt.Errorf("temporalexec: signalling workflow %s: %w", e.WorkflowID(task.ID), err)
	}
	return nil
}

// CheckReady implements [taskbridge.ReadinessProbe] with the client's health
// check of the Temporal frontend.
func (e *Executor) CheckReady(ctx context.Context) error {
	if _, err := e.c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return fmt.Errorf("temporalexec: Temporal health check: %w", err)
	}
	return nil
}

func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
