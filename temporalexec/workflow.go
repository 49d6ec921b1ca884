package temporalexec

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/workflow"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/runner"
)

// SignalAction is the name of the signal through which [Executor.Resume]
// hands an accepted [Action] to the workflow waiting in [Suspend].
const SignalAction = "taskbridge.action"

// WorkflowInput is the single argument of the workflows the [Executor]
// starts, and of those continued by [ContinueAsNew].
type WorkflowInput struct {
	// Task is the task as it was created.
	Task taskbridge.Task `json:"task"`
	// Step is the number of steps (the TASK_STARTED event, [Emit] and
	// [Suspend] calls) taken by earlier runs of the workflow; zero in the
	// first run.
	Step int `json:"step,omitempty"`
	// Actions are the actions earlier runs received and did not take yet.
	Actions []Action `json:"actions,omitempty"`
}

// Action is a client action accepted for a suspension, as [Suspend]
// returns it: the runner package's type, so that workflow code reads
// actions as runner handlers do ([runner.Action.Decode]). It travels to the
// workflow in the [SignalAction] signal.
type Action = runner.Action

// run is the state of one workflow run, kept in its context. Everything in
// it changes only in workflow code, so it replays deterministically.
type run struct {
	cfg  *registration
	task taskbridge.Task
	// trace is the task's propagated context, passed to every activity.
	trace map[string]string
	// workflowID names the task's workflow across runs: step keys derive
	// from it and from step, never from a run id.
	workflowID string
	step       int
	received   map[string]Action // by suspend id
	order      []string          // suspend ids in the order received
	taken      map[string]bool   // suspend ids whose action Suspend returned
	// continued is set by ContinueAsNew: the continue-as-new error the
	// workflow function returns is the adapter's.
	continued bool
}

type runKey struct{}

func runFrom(ctx workflow.Context) *run {
	r, _ := ctx.Value(runKey{}).(*run)
	return r
}

// nextStep returns the number of the next step and counts it.
func (r *run) nextStep() int {
	n := r.step
	r.step++
	return n
}

// key is the idempotency key of an event appended by step n.
func (r *run) key(n int) string {
	return "temporal/" + r.workflowID + "/" + strconv.Itoa(n)
}

// terminalKey is the idempotency key of the task's terminal event.
func (r *run) terminalKey() string { return terminalKey(r.workflowID) }

func terminalKey(workflowID string) string { return "temporal/" + workflowID + "/terminal" }

// suspendNamespace is the UUID namespace of suspension ids derived from
// workflow steps.
var suspendNamespace = uuid.MustParse("6f1d3c4e-3b0a-4f51-9a55-1d0c2e7b9a10")

// suspendID is the id of the suspension opened by step n: the same in every
// run and replay of the step.
func (r *run) suspendID(n int) string {
	return uuid.NewSHA1(suspendNamespace, []byte(r.key(n))).String()
}

// receive records an action signal. The first action for a suspension
// counts; a repeated hand-off of it is ignored.
func (r *run) receive(a Action) {
	if a.SuspendID == "" {
		return
	}
	if _, dup := r.received[a.SuspendID]; dup {
		return
	}
	r.received[a.SuspendID] = a
	r.order = append(r.order, a.SuspendID)
}

// untaken returns the received actions no Suspend returned yet, in the
// order they arrived.
func (r *run) untaken() []Action {
	var out []Action
	for _, id := range r.order {
		if !r.taken[id] {
			out = append(out, r.received[id])
		}
	}
	return out
}

// activity runs one of the adapter's activities with its options and maps
// taskbridge sentinels back.
func (r *run) activity(ctx workflow.Context, name string, in, out any) error {
	ctx = workflow.WithActivityOptions(ctx, r.cfg.activityOptions)
	return fromActivityError(workflow.ExecuteActivity(ctx, name, in).Get(ctx, out))
}

// emit appends p once per key through ActivityEmit.
func (r *run) emit(ctx workflow.Context, key string, p taskbridge.Payload) (taskbridge.TaskEvent, error) {
	raw, err := encodeChecked(p)
	if err != nil {
		return taskbridge.TaskEvent{}, err
	}
	var ev taskbridge.TaskEvent
	err = r.activity(ctx, ActivityEmit, emitInput{TaskID: r.task.ID, Key: key, Type: p.EventType(), Payload: raw, Trace: r.trace}, &ev)
	return ev, err
}

// encodeChecked encodes p and checks that the activity will decode it: the
// strict decoding refuses a few values encoding lets through (such as
// numbers beyond float64 in a result), which a retry would not fix.
func encodeChecked(p taskbridge.Payload) (json.RawMessage, error) {
	raw, err := taskbridge.EncodePayload(p)
	if err != nil {
		return nil, err
	}
	if _, err := taskbridge.DecodePayload(taskbridge.TaskEvent{Type: p.EventType(), Payload: raw}); err != nil {
		return nil, err
	}
	return raw, nil
}

// Emit appends a TASK_PROGRESS or TASK_MESSAGE event for the task of the
// workflow, through an activity, and returns it. ctx must be the context of
// a [WorkflowFunc] (or derived from it).
//
// The event is appended once even when the activity is retried or the
// workflow replays after a worker restart: its idempotency key is the
// workflow id and the number of the step (each Emit and [Suspend] call is
// one step, counted in workflow order, across runs continued by
// [ContinueAsNew]). Errors of the store that a retry cannot fix come back
// wrapping their sentinel, such as [taskbridge.ErrTaskTerminal] when the
// task has ended meanwhile; an invalid payload fails with
// [taskbridge.ErrInvalidEvent] without running an activity. TASK_STARTED and
// the terminal events are the adapter's: a workflow ends its task by
// returning.
func Emit(ctx workflow.Context, p taskbridge.Payload) (taskbridge.TaskEvent, error) {
	r := runFrom(ctx)
	if r == nil {
		return taskbridge.TaskEvent{}, ErrNotInWorkflow
	}
	if p == nil {
		return taskbridge.TaskEvent{}, fmt.Errorf("%w: nil payload", taskbridge.ErrInvalidEvent)
	}
	switch t := p.EventType(); t {
	case taskbridge.EventTaskProgress, taskbridge.EventTaskMessage:
	case taskbridge.EventTaskSuspended, taskbridge.EventTaskActionAccepted:
		return taskbridge.TaskEvent{}, fmt.Errorf("%w: %s cannot be emitted directly (use Suspend; actions are appended by the service)",
			taskbridge.ErrInvalidEvent, t)
	default:
		return taskbridge.TaskEvent{}, fmt.Errorf("%w: the adapter emits %s; a workflow ends its task by returning",
			taskbridge.ErrInvalidTransition, t)
	}
	if err := p.Validate(); err != nil {
		return taskbridge.TaskEvent{}, err
	}
	return r.emit(ctx, r.key(r.nextStep()), p)
}

// Suspend opens a suspension for the task of the workflow, through an
// activity, and waits until a client action is accepted for it, then
// returns the action. ctx must be the context of a [WorkflowFunc] (or
// derived from it). The service appends TASK_ACTION_ACCEPTED before
// [Executor.Resume] signals the action, so every event the workflow emits
// afterwards follows it in the log.
//
// An empty opts.SuspendID is replaced by an id derived from the workflow id
// and the step, so that a retried activity or a replay opens the same
// suspension; an explicit id must be unique within the task. A positive
// opts.TTL is turned into opts.ExpiresAt from the workflow's clock.
//
// When the deadline passes first, the workflow expires the suspension
// through an activity (a later action is then REJECTED_EXPIRED) and Suspend
// fails with [ErrSuspensionExpired], unless an action won the race, which
// it then waits for and returns. Suspend fails with a canceled error when
// the workflow is cancelled, and with the wrapped sentinels of [Emit] (such
// as [taskbridge.ErrInvalidEvent] for invalid opts).
func Suspend(ctx workflow.Context, opts taskbridge.SuspendOpts) (Action, error) {
	r := runFrom(ctx)
	if r == nil {
		return Action{}, ErrNotInWorkflow
	}
	step := r.nextStep()
	if opts.SuspendID == "" {
		opts.SuspendID = r.suspendID(step)
	}
	if opts.ExpiresAt == nil && opts.TTL > 0 {
		at := workflow.Now(ctx).Add(opts.TTL)
		opts.ExpiresAt = &at
	}
	opts.TTL = 0
	if opts.ExpiresAt != nil {
		at := opts.ExpiresAt.UTC().Truncate(time.Millisecond)
		opts.ExpiresAt = &at
	}
	if err := r.activity(ctx, ActivitySuspend, suspendInput{TaskID: r.task.ID, Opts: opts, Trace: r.trace}, nil); err != nil {
		return Action{}, err
	}
	return r.await(ctx, opts.SuspendID, opts.ExpiresAt)
}

// await waits for the action of suspension id, its deadline or ctx.
func (r *run) await(ctx workflow.Context, id string, expiresAt *time.Time) (Action, error) {
	arrived := func() bool { _, ok := r.received[id]; return ok }
	for {
		var err error
		ok := arrived()
		switch {
		case ok:
		case expiresAt == nil:
			err = workflow.Await(ctx, arrived)
			ok = err == nil
		default:
			if d := expiresAt.Sub(workflow.Now(ctx)); d > 0 {
				ok, err = workflow.AwaitWithTimeout(ctx, d, arrived)
			}
		}
		if err != nil {
			return Action{}, fmt.Errorf("temporalexec: waiting on suspension %s: %w", id, err)
		}
		if ok {
			r.taken[id] = true
			return r.received[id], nil
		}
		expiresAt = nil
		var res closeResult
		if err := r.activity(ctx, ActivityCloseSuspension, closeInput{TaskID: r.task.ID, SuspendID: id, Trace: r.trace}, &res); err != nil {
			return Action{}, fmt.Errorf("temporalexec: expiring suspension %s: %w", id, err)
		}
		switch {
		case res.Changed || res.Status == taskbridge.SuspensionExpired:
			return Action{}, fmt.Errorf("%w: suspension %s", ErrSuspensionExpired, id)
		case res.Status == taskbridge.SuspensionResolved:
			// An action won the race; its signal is on the way.
		default: // CANCELLED: the task ended.
			return Action{}, fmt.Errorf("temporalexec: suspension %s was %s: %w", id, res.Status, taskbridge.ErrTaskTerminal)
		}
	}
}

// ContinueAsNew returns the error that, returned by a [WorkflowFunc], ends
// the workflow's run and continues the workflow as a new run with a fresh
// history, calling the same WorkflowFunc with task. Put what the new run
// needs to resume in task.Input. Step numbering (and with it the
// idempotency of events) and actions received but not yet taken carry over;
// TASK_STARTED is not emitted again. Returning a continue-as-new error made
// any other way fails the task with INTERNAL.
func ContinueAsNew(ctx workflow.Context, task *taskbridge.Task) error {
	r := runFrom(ctx)
	if r == nil {
		return ErrNotInWorkflow
	}
	in := WorkflowInput{Task: *task, Step: r.step}
	in.Task.ID = r.task.ID
	// Take the signals that arrived but were not read yet.
	ch := workflow.GetSignalChannel(ctx, SignalAction)
	for {
		var a Action
		if !ch.ReceiveAsync(&a) {
			break
		}
		r.receive(a)
	}
	in.Actions = r.untaken()
	r.continued = true
	return workflow.NewContinueAsNewError(ctx, workflow.GetInfo(ctx).WorkflowType.Name, in)
}
