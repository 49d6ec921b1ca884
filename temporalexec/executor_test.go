package temporalexec_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/temporalexec"
)

// fakeClient records the calls the Executor makes. Methods it does not
// override panic (the embedded interface is nil).
type fakeClient struct {
	client.Client

	mu        sync.Mutex
	started   []startCall
	cancelled []string
	signals   []signalCall
	// Per-method errors and canned answers.
	startErr, cancelErr, signalErr, healthErr error
	workflows                                 map[string]fakeWorkflow // by workflow id
}

var _ client.Client = (*fakeClient)(nil)

type startCall struct {
	opts     client.StartWorkflowOptions
	workflow any
	args     []any
}

type signalCall struct {
	workflowID, runID, name string
	arg                     any
}

type fakeWorkflow struct {
	status enumspb.WorkflowExecutionStatus
	result json.RawMessage
}

func (c *fakeClient) ExecuteWorkflow(_ context.Context, opts client.StartWorkflowOptions, wf any, args ...any) (client.WorkflowRun, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.started = append(c.started, startCall{opts, wf, args})
	return nil, c.startErr
}

func (c *fakeClient) CancelWorkflow(_ context.Context, workflowID, _ string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cancelled = append(c.cancelled, workflowID)
	return c.cancelErr
}

func (c *fakeClient) SignalWorkflow(_ context.Context, workflowID, runID, name string, arg any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.signals = append(c.signals, signalCall{workflowID, runID, name, arg})
	return c.signalErr
}

func (c *fakeClient) CheckHealth(context.Context, *client.CheckHealthRequest) (*client.CheckHealthResponse, error) {
	return &client.CheckHealthResponse{}, c.healthErr
}

func (c *fakeClient) DescribeWorkflowExecution(_ context.Context, workflowID, _ string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	wf, ok := c.workflows[workflowID]
	if !ok {
		return nil, serviceerror.NewNotFound("workflow not found")
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{
		WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{Status: wf.status},
	}, nil
}

func (c *fakeClient) GetWorkflow(_ context.Context, workflowID, _ string) client.WorkflowRun {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fakeRun{result: c.workflows[workflowID].result}
}

// fakeRun is a closed run with a JSON result.
type fakeRun struct {
	client.WorkflowRun
	result json.RawMessage
}

func (r fakeRun) Get(_ context.Context, valuePtr any) error {
	if r.result == nil {
		return nil
	}
	return json.Unmarshal(r.result, valuePtr)
}

func newExecutor(t *testing.T, c client.Client) *temporalexec.Executor {
	t.Helper()
	e, err := temporalexec.New(c, temporalexec.Config{
		TaskQueue: "tasks",
		Workflows: map[string]string{"greet": "", "resize": "ResizeWorkflow"},
		Logger:    quietLogger(),
	})
	require.NoError(t, err)
	return e
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	c := &fakeClient{}
	for name, tc := range map[string]struct {
		c   client.Client
		cfg temporalexec.Config
	}{
		"no client":      {nil, temporalexec.Config{TaskQueue: "q", Workflows: map[string]string{"a": ""}}},
		"no task queue":  {c, temporalexec.Config{Workflows: map[string]string{"a": ""}}},
		"no workflows":   {c, temporalexec.Config{TaskQueue: "q"}},
		"empty taskType": {c, temporalexec.Config{TaskQueue: "q", Workflows: map[string]string{"": "x"}}},
	} {
		_, err := temporalexec.New(tc.c, tc.cfg)
		require.Error(t, err, name)
	}
}

func TestSubmitStartsTheWorkflowOfTheTaskType(t *testing.T) {
	t.Parallel()
	c := &fakeClient{}
	e := newExecutor(t, c)
	ctx := context.Background()
	task := taskbridge.Task{ID: "t1", TaskType: "resize", Input: json.RawMessage(`{"w":10}`)}
	require.NoError(t, e.Submit(ctx, task, nil))
	require.NoError(t, e.Submit(ctx, taskbridge.Task{ID: "t2", TaskType: "greet"}, nil))

	require.Len(t, c.started, 2)
	require.Equal(t, client.StartWorkflowOptions{
		ID:                       "taskbridge-t1",
		TaskQueue:                "tasks",
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, c.started[0].opts)
	require.Equal(t, "ResizeWorkflow", c.started[0].workflow)
	require.Equal(t, []any{temporalexec.WorkflowInput{Task: task}}, c.started[0].args)
	require.Equal(t, "greet", c.started[1].workflow, "an empty name is the task type")
	require.Equal(t, "taskbridge-t2", e.WorkflowID("t2"))

	require.ErrorIs(t, e.Submit(ctx, taskbridge.Task{ID: "t3", TaskType: "nope"}, nil), temporalexec.ErrUnknownTaskType)
	c.startErr = errors.New("unavailable")
	require.ErrorContains(t, e.Submit(ctx, task, nil), "unavailable")
}

func TestWorkflowIDPrefix(t *testing.T) {
	t.Parallel()
	c := &fakeClient{}
	e, err := temporalexec.New(c, temporalexec.Config{TaskQueue: "q", Workflows: map[string]string{"a": ""}, WorkflowIDPrefix: "acme/"})
	require.NoError(t, err)
	require.NoError(t, e.Submit(context.Background(), taskbridge.Task{ID: "t1", TaskType: "a"}, nil))
	require.Equal(t, "acme/t1", c.started[0].opts.ID)
}

func TestValidateTask(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, &fakeClient{})
	require.NoError(t, e.ValidateTask(context.Background(), taskbridge.CreateTaskRequest{TaskType: "greet"}))
	require.ErrorIs(t, e.ValidateTask(context.Background(), taskbridge.CreateTaskRequest{TaskType: "nope"}), taskbridge.ErrInvalidRequest)
}

func TestCancel(t *testing.T) {
	t.Parallel()
	c := &fakeClient{}
	e := newExecutor(t, c)
	ctx := context.Background()
	require.NoError(t, e.Cancel(ctx, taskbridge.Task{ID: "t1"}))
	require.Equal(t, []string{"taskbridge-t1"}, c.cancelled)

	c.cancelErr = serviceerror.NewNotFound("workflow execution already completed")
	require.NoError(t, e.Cancel(ctx, taskbridge.Task{ID: "t1"}), "a closed workflow needs no cancel")
	c.cancelErr = serviceerror.NewUnavailable("down")
	require.ErrorContains(t, e.Cancel(ctx, taskbridge.Task{ID: "t1"}), "down")
}

func TestResumeSignalsTheAction(t *testing.T) {
	t.Parallel()
	c := &fakeClient{}
	e := newExecutor(t, c)
	ctx := context.Background()
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := taskbridge.ActionReceipt{
		TaskID: "t1", SuspendID: "s1", ClientActionID: "c1", ActionType: "approve",
		Payload: json.RawMessage(`{"x":1}`), Metadata: json.RawMessage(`{}`), ActorID: "alice", CreatedAt: at,
	}
	running := taskbridge.Task{ID: "t1", Status: taskbridge.StatusRunning}
	require.NoError(t, e.Resume(ctx, running, taskbridge.Suspension{}, rec))
	require.Equal(t, []signalCall{{"taskbridge-t1", "", temporalexec.SignalAction, temporalexec.Action{
		SuspendID: "s1", ClientActionID: "c1", ActionType: "approve",
		Payload: json.RawMessage(`{"x":1}`), Metadata: json.RawMessage(`{}`), ActorID: "alice", AcceptedAt: at,
	}}}, c.signals)

	// Nobody can take an action of a terminal task.
	require.NoError(t, e.Resume(ctx, taskbridge.Task{ID: "t1", Status: taskbridge.StatusCompleted}, taskbridge.Suspension{}, rec))
	require.Len(t, c.signals, 1)

	c.signalErr = serviceerror.NewNotFound("workflow execution already completed")
	require.Error(t, e.Resume(ctx, running, taskbridge.Suspension{}, rec), "the hand-off stays pending")
}

func TestCheckReady(t *testing.T) {
	t.Parallel()
	c := &fakeClient{}
	e := newExecutor(t, c)
	require.NoError(t, e.CheckReady(context.Background()))
	c.healthErr = serviceerror.NewUnavailable("down")
	require.ErrorContains(t, e.CheckReady(context.Background()), "down")
}

func TestReconcile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := memstore.New(memstore.Config{})
	defer store.Close()
	c := &fakeClient{workflows: map[string]fakeWorkflow{}}
	e := newExecutor(t, c)
	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: e, Logger: quietLogger()})
	require.NoError(t, err)
	defer svc.Shutdown(ctx)

	// Tasks created through the service are submitted; forget those starts.
	create := func(name string) string {
		resp, err := svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: name, TaskType: "greet"})
		require.NoError(t, err)
		return resp.TaskID
	}
	start := func(id string) {
		_, err := svc.Emitter(id).Emit(ctx, taskbridge.StartedPayload{})
		require.NoError(t, err)
	}
	never := create("never-started") // no workflow, ACCEPTED: submitted again
	lost := create("lost")           // no workflow, RUNNING: EXECUTOR_LOST
	start(lost)
	running := create("running") // running, cancel requested: cancelled again
	start(running)
	_, err = svc.CancelTask(ctx, alice, running, taskbridge.CancelRequest{Reason: "stop"})
	require.NoError(t, err)
	quiet := create("quiet") // running, nothing to do
	start(quiet)
	terminated := create("terminated")
	start(terminated)
	timedOut := create("timed-out")
	start(timedOut)
	completed := create("completed")
	start(completed)
	cancelled := create("cancelled")
	start(cancelled)
	failed := create("failed")
	start(failed)
	done := create("done") // already terminal: not looked at
	start(done)
	_, err = svc.Emitter(done).Emit(ctx, taskbridge.CompletedPayload{Result: 1})
	require.NoError(t, err)

	for id, wf := range map[string]fakeWorkflow{
		running:    {status: enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING},
		quiet:      {status: enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING},
		terminated: {status: enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED},
		timedOut:   {status: enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT},
		completed:  {status: enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, result: json.RawMessage(`{"greeting":"hi"}`)},
		cancelled:  {status: enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED},
		failed:     {status: enumspb.WORKFLOW_EXECUTION_STATUS_FAILED},
	} {
		c.workflows[e.WorkflowID(id)] = wf
	}
	c.started, c.cancelled = nil, nil

	rep, err := e.Reconcile(ctx, store, svc.Emitter)
	require.NoError(t, err)
	require.Equal(t, temporalexec.ReconcileReport{Checked: 9, Submitted: 1, Cancelled: 1, Ended: 6}, rep)
	require.Len(t, c.started, 1)
	require.Equal(t, e.WorkflowID(never), c.started[0].opts.ID)
	require.Equal(t, []string{e.WorkflowID(running)}, c.cancelled)

	last := func(id string) (taskbridge.EventType, string) {
		evs, err := store.Read(ctx, id, 0, 100)
		require.NoError(t, err)
		if len(evs) == 0 {
			return "", ""
		}
		ev := evs[len(evs)-1]
		return ev.Type, string(ev.Payload)
	}
	for id, want := range map[string]string{
		lost:       `{"code":"EXECUTOR_LOST","message":"The task's workflow ended without reporting; retry it","retryable":true}`,
		terminated: `{"code":"WORKFLOW_TERMINATED","message":"The task's workflow was stopped; retry it","retryable":true}`,
		timedOut:   `{"code":"WORKFLOW_TERMINATED","message":"The task's workflow was stopped; retry it","retryable":true}`,
		completed:  `{"result":{"greeting":"hi"}}`,
		cancelled:  `{"reason":"workflow_cancelled","message":"The task's workflow was cancelled"}`,
		failed:     `{"code":"EXECUTOR_LOST","message":"The task's workflow ended without reporting; retry it","retryable":true}`,
	} {
		typ, p := last(id)
		require.True(t, typ.Terminal(), id)
		require.JSONEq(t, want, p, id)
	}
	for _, id := range []string{never, running, quiet} {
		typ, _ := last(id)
		require.False(t, typ.Terminal(), id)
	}

	// A second pass finds only the tasks still running.
	c.started, c.cancelled = nil, nil
	rep, err = e.Reconcile(ctx, store, svc.Emitter)
	require.NoError(t, err)
	require.Equal(t, temporalexec.ReconcileReport{Checked: 3, Submitted: 1, Cancelled: 1}, rep)

	// Failures are counted and do not stop the pass.
	c.cancelErr = serviceerror.NewUnavailable("down")
	rep, err = e.Reconcile(ctx, store, svc.Emitter)
	require.NoError(t, err)
	require.Equal(t, temporalexec.ReconcileReport{Checked: 3, Submitted: 1, Failed: 1}, rep)
}
