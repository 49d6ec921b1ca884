package temporalexec_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/httpapi"
	"github.com/taskbridge-go/taskbridge/sse"
	"github.com/taskbridge-go/taskbridge/temporalexec"
)

// Integration tests run against a real Temporal server (the CLI's dev
// server) at TASKBRIDGE_TEMPORAL_ADDR.

const (
	temporalAddrEnv = "TASKBRIDGE_TEMPORAL_ADDR"
	requireServices = "TASKBRIDGE_REQUIRE_SERVICES"
	integrationWait = 30 * time.Second
)

// temporalAddr returns the server's host:port, skipping the test when it is
// not set (failing it when TASKBRIDGE_REQUIRE_SERVICES=1).
func temporalAddr(t *testing.T) string {
	t.Helper()
	addr := os.Getenv(temporalAddrEnv)
	if addr == "" {
		msg := temporalAddrEnv + " is not set; start a dev server (temporal server start-dev --headless --ip 127.0.0.1 --port 7233) and set it to 127.0.0.1:7233 to run the Temporal integration tests"
		if os.Getenv(requireServices) == "1" {
			t.Fatalf("%s (required: %s=1)", msg, requireServices)
		}
		t.Skip(msg)
	}
	return addr
}

// gated emits progress 50, runs the "gate" activity, emits progress 100 and
// completes: a task with a point in the middle where a worker can die.
func gated(ctx workflow.Context, _ *taskbridge.Task) (any, error) {
	if _, err := temporalexec.Emit(ctx, taskbridge.ProgressPayload{Progress: 50}); err != nil {
		return nil, err
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 100 * time.Millisecond},
	})
	if err := workflow.ExecuteActivity(actx, "gate").Get(ctx, nil); err != nil {
		return nil, err
	}
	if _, err := temporalexec.Emit(ctx, taskbridge.ProgressPayload{Progress: 100}); err != nil {
		return nil, err
	}
	return "through", nil
}

var integrationWorkflows = map[string]temporalexec.WorkflowFunc{"greet": greet, "approval": approval, "gated": gated}

// deployment is one application: a Temporal task queue of its own and a
// store shared by its API processes and workers.
type deployment struct {
	addr  string
	queue string
	store taskbridge.Store
}

func newDeployment(t *testing.T) *deployment {
	t.Helper()
	addr := temporalAddr(t)
	store := newFlakyStore()
	t.Cleanup(func() { _ = store.Close() })
	return &deployment{addr: addr, queue: "taskbridge-test-" + uuid.NewString(), store: store}
}

// dial connects a new client, closed when the test ends.
func (d *deployment) dial(t *testing.T) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: d.addr, Logger: sdklog.NewStructuredLogger(quietLogger())})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func (d *deployment) executor(t *testing.T, c client.Client) *temporalexec.Executor {
	t.Helper()
	e, err := temporalexec.New(c, temporalexec.Config{
		TaskQueue: d.queue,
		Workflows: map[string]string{"greet": "", "approval": "", "gated": ""},
		Logger:    quietLogger(),
	})
	require.NoError(t, err)
	return e
}

// apiProcess is what an API process holds: a client, an Executor, a
// Service and its HTTP API with SSE, served by httptest.
type apiProcess struct {
	exec *temporalexec.Executor
	svc  *taskbridge.Service
	sse  *sse.Handler
	ts   *httptest.Server
	once sync.Once
}

var bearerAuth = taskbridge.AuthFunc(func(r *http.Request) (taskbridge.AuthContext, error) {
	user, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || user == "" {
		return taskbridge.AuthContext{}, taskbridge.ErrUnauthenticated
	}
	return taskbridge.AuthContext{Subject: user}, nil
})

// startAPI starts an API process; it stops when the test ends, if not
// before.
func (d *deployment) startAPI(t *testing.T) *apiProcess {
	t.Helper()
	c := d.dial(t)
	p := &apiProcess{exec: d.executor(t, c)}
	var err error
	p.svc, err = taskbridge.New(taskbridge.Config{Store: d.store, Executor: p.exec, Logger: quietLogger()})
	require.NoError(t, err)
	p.sse, err = sse.NewHandler(p.svc, sse.Config{Auth: bearerAuth})
	require.NoError(t, err)
	api, err := httpapi.New(p.svc, httpapi.Config{Auth: bearerAuth, Stream: p.sse})
	require.NoError(t, err)
	p.ts = httptest.NewUnstartedServer(api)
	p.ts.Config.RegisterOnShutdown(p.sse.Close)
	p.ts.Start()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop shuts the API process down: streams end, the server closes, the
// service stops.
func (p *apiProcess) stop(t *testing.T) {
	p.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), integrationWait)
		defer cancel()
		p.sse.Close()
		p.ts.Close()
		require.NoError(t, p.svc.Shutdown(ctx))
		require.NoError(t, p.sse.Shutdown(ctx))
	})
}

// workerProcess is what a worker process holds: a client, a Service over
// the store (for emitters) and a Temporal worker.
type workerProcess struct {
	w    worker.Worker
	once sync.Once
}

// startWorker starts a worker that appends through store (the deployment's,
// or a wrapper of it) and registers extra activities; it stops when the
// test ends, if not before.
func (d *deployment) startWorker(t *testing.T, store taskbridge.Store, gate func(context.Context) error) *workerProcess {
	t.Helper()
	c := d.dial(t)
	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: d.executor(t, c), Logger: quietLogger()})
	require.NoError(t, err)
	w := worker.New(c, d.queue, worker.Options{})
	require.NoError(t, temporalexec.Register(w, temporalexec.WorkerConfig{
		EmitterFunc:     svc.Emitter,
		Tasks:           store,
		Workflows:       integrationWorkflows,
		ActivityTimeout: 2 * time.Second,
		RetryPolicy:     &temporal.RetryPolicy{InitialInterval: 100 * time.Millisecond, MaximumInterval: time.Second},
	}))
	if gate == nil {
		gate = func(context.Context) error { return nil }
	}
	w.RegisterActivityWithOptions(gate, activity.RegisterOptions{Name: "gate"})
	require.NoError(t, w.Start())
	p := &workerProcess{w: w}
	t.Cleanup(func() {
		p.stop()
		require.NoError(t, svc.Shutdown(context.Background()))
	})
	return p
}

func (p *workerProcess) stop() { p.once.Do(p.w.Stop) }

// do sends an API request as alice and decodes the JSON response into out.
func (p *apiProcess) do(t *testing.T, method, path string, body any, wantStatus int, out any) {
	t.Helper()
	var rd bytes.Buffer
	if body != nil {
		require.NoError(t, json.NewEncoder(&rd).Encode(body))
	}
	ctx, cancel := context.WithTimeout(context.Background(), integrationWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, p.ts.URL+path, &rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer alice")
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.ts.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, wantStatus, resp.StatusCode)
	if out != nil {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
	}
}

func (p *apiProcess) create(t *testing.T, taskType string, input any) string {
	t.Helper()
	var resp taskbridge.CreateTaskResponse
	p.do(t, http.MethodPost, "/api/v1/tasks", map[string]any{
		"clientRequestId": uuid.NewString(), "taskType": taskType, "input": input,
	}, http.StatusCreated, &resp)
	return resp.TaskID
}

// waitFor long-polls the task's events until one has type typ and returns
// it.
func (p *apiProcess) waitFor(t *testing.T, taskID string, typ taskbridge.EventType) taskbridge.TaskEvent {
	t.Helper()
	deadline := time.Now().Add(integrationWait)
	after := ""
	for time.Now().Before(deadline) {
		resp, err := p.svc.PollEvents(context.Background(), alice, taskID,
			taskbridge.PollRequest{AfterEventID: after, WaitTimeout: time.Second})
		require.NoError(t, err)
		for _, ev := range resp.Events {
			if ev.Type == typ {
				return ev
			}
			after = ev.EventID
		}
	}
	t.Fatalf("no %s event in task %s within %s", typ, taskID, integrationWait)
	return taskbridge.TaskEvent{}
}

// stream reads the task's SSE stream after lastEventID until the server
// ends it (after the terminal event) and returns its events.
func (p *apiProcess) stream(t *testing.T, taskID, lastEventID string) []taskbridge.TaskEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), integrationWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.ts.URL+"/api/v1/tasks/"+taskID+"/events/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer alice")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := p.ts.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	var evs []taskbridge.TaskEvent
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var ev taskbridge.TaskEvent
		require.NoError(t, json.Unmarshal([]byte(data), &ev))
		if ev.Type == "HEARTBEAT" {
			continue
		}
		evs = append(evs, ev)
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, evs)
	require.True(t, evs[len(evs)-1].Terminal(), "the stream ends after the terminal event")
	for i, ev := range evs {
		require.Equal(t, taskID, ev.TaskID)
		if i > 0 {
			require.Equal(t, fmt.Sprint(mustSeq(t, evs[i-1])+1), ev.EventID, "events in order, none missing or repeated")
		}
	}
	return evs
}

func mustSeq(t *testing.T, ev taskbridge.TaskEvent) int64 {
	t.Helper()
	n, err := taskbridge.ParseEventID(ev.EventID)
	require.NoError(t, err)
	return n
}

// closedStatus waits for the task's workflow to close and returns its
// status.
func (p *apiProcess) closedStatus(t *testing.T, c client.Client, taskID string) enumspb.WorkflowExecutionStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), integrationWait)
	defer cancel()
	_ = c.GetWorkflow(ctx, p.exec.WorkflowID(taskID), "").Get(ctx, nil) // waits
	require.NoError(t, ctx.Err())
	desc, err := c.DescribeWorkflowExecution(ctx, p.exec.WorkflowID(taskID), "")
	require.NoError(t, err)
	return desc.GetWorkflowExecutionInfo().GetStatus()
}

func TestIntegrationGreetStreamsOverSSE(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	d.startWorker(t, d.store, nil)
	api := d.startAPI(t)
	require.NoError(t, api.exec.CheckReady(context.Background()))

	id := api.create(t, "greet", map[string]any{"name": "Ada", "steps": 3})
	evs := api.stream(t, id, "")
	require.Equal(t, []taskbridge.EventType{
		taskbridge.EventTaskStarted, taskbridge.EventTaskProgress, taskbridge.EventTaskProgress,
		taskbridge.EventTaskProgress, taskbridge.EventTaskCompleted,
	}, types(evs))
	require.JSONEq(t, `{"result":{"greeting":"Hello, Ada!"}}`, string(evs[4].Payload))

	// Resuming after event 2 replays the rest.
	require.Equal(t, evs[2:], api.stream(t, id, "2"))

	// Submitting again (a retried hand-off) starts nothing new; a cancel
	// of the closed workflow is not an error.
	c := d.dial(t)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, api.closedStatus(t, c, id))
	task, err := d.store.GetTask(context.Background(), id)
	require.NoError(t, err)
	require.NoError(t, api.exec.Submit(context.Background(), task, nil))
	require.NoError(t, api.exec.Cancel(context.Background(), task))
	require.Len(t, listRuns(t, c, api.exec.WorkflowID(id)), 1)
	require.Len(t, api.stream(t, id, ""), 5)
}

// listRuns returns the run ids of a workflow id.
func listRuns(t *testing.T, c client.Client, workflowID string) []string {
	t.Helper()
	var runs []string
	ctx, cancel := context.WithTimeout(context.Background(), integrationWait)
	defer cancel()
	for {
		// The visibility store of the dev server is eventually consistent.
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowId = %q", workflowID),
		})
		require.NoError(t, err)
		runs = runs[:0]
		for _, e := range resp.GetExecutions() {
			runs = append(runs, e.GetExecution().GetRunId())
		}
		if len(runs) > 0 || ctx.Err() != nil {
			return runs
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestIntegrationApprovalThroughSignal(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	d.startWorker(t, d.store, nil)
	api := d.startAPI(t)

	id := api.create(t, "approval", nil)
	suspended := api.waitFor(t, id, taskbridge.EventTaskSuspended)
	var sus taskbridge.SuspendedPayload
	require.NoError(t, json.Unmarshal(suspended.Payload, &sus))
	var resp taskbridge.ActionResponse
	api.do(t, http.MethodPost, "/api/v1/tasks/"+id+"/actions", map[string]any{
		"clientActionId": "a1", "suspendId": sus.SuspendID, "actionType": "approve", "payload": map[string]string{"note": "lgtm"},
	}, http.StatusAccepted, &resp)
	require.Equal(t, taskbridge.ActionAccepted, resp.Status)

	evs := api.stream(t, id, "")
	require.Equal(t, []taskbridge.EventType{
		taskbridge.EventTaskStarted, taskbridge.EventTaskSuspended, taskbridge.EventTaskActionAccepted,
		taskbridge.EventTaskMessage, taskbridge.EventTaskCompleted,
	}, types(evs))
	require.JSONEq(t, `{"result":{"approved":true,"by":"alice","note":"lgtm"}}`, string(evs[4].Payload))
}

func TestIntegrationCancel(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	d.startWorker(t, d.store, nil)
	api := d.startAPI(t)

	id := api.create(t, "approval", nil)
	api.waitFor(t, id, taskbridge.EventTaskSuspended)
	var resp taskbridge.CancelResponse
	api.do(t, http.MethodPost, "/api/v1/tasks/"+id+"/cancel", map[string]string{"reason": "no longer needed"}, http.StatusAccepted, &resp)
	require.Equal(t, taskbridge.CancelRequested, resp.Status)

	evs := api.stream(t, id, "")
	require.Equal(t, []taskbridge.EventType{
		taskbridge.EventTaskStarted, taskbridge.EventTaskSuspended, taskbridge.EventTaskCancelled,
	}, types(evs))
	require.JSONEq(t, `{"reason":"no longer needed","message":"Task cancelled by the client"}`, string(evs[2].Payload))
	c := d.dial(t)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, api.closedStatus(t, c, id))
}

// hookStore runs a hook after every committed append of a worker, as if
// the worker's process could die right there.
type hookStore struct {
	taskbridge.Store
	afterAppend func(ctx context.Context, ev taskbridge.TaskEvent) error
}

func (s hookStore) Append(ctx context.Context, ev taskbridge.TaskEvent) (taskbridge.TaskEvent, error) {
	got, err := s.Store.Append(ctx, ev)
	if err != nil {
		return got, err
	}
	if err := s.afterAppend(ctx, got); err != nil {
		return taskbridge.TaskEvent{}, err
	}
	return got, nil
}

func TestIntegrationWorkerDiesMidTask(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	api := d.startAPI(t)

	// The first worker commits the progress-50 event and dies before it
	// can report that to Temporal; it never gets through the gate either.
	committed := make(chan struct{})
	first := d.startWorker(t, hookStore{Store: d.store, afterAppend: func(ctx context.Context, ev taskbridge.TaskEvent) error {
		if ev.Type != taskbridge.EventTaskProgress {
			return nil
		}
		close(committed)
		<-ctx.Done() // until the worker stops
		return ctx.Err()
	}}, func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	id := api.create(t, "gated", nil)
	select {
	case <-committed:
	case <-time.After(integrationWait):
		t.Fatal("the first worker did not append progress 50")
	}
	first.stop()

	// A new worker retries the activity (its append is deduplicated),
	// passes the gate and finishes the task.
	d.startWorker(t, d.store, nil)
	evs := api.stream(t, id, "")
	require.Equal(t, []taskbridge.EventType{
		taskbridge.EventTaskStarted, taskbridge.EventTaskProgress, taskbridge.EventTaskProgress, taskbridge.EventTaskCompleted,
	}, types(evs))
	require.Equal(t, 50.0, payload(t, evs[1])["progress"])
	require.Equal(t, 100.0, payload(t, evs[2])["progress"])
	require.JSONEq(t, `{"result":"through"}`, string(evs[3].Payload))
}

func TestIntegrationAPIRestartsMidTask(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	// The gated task waits at its gate until no API process runs.
	atGate, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	d.startWorker(t, d.store, func(ctx context.Context) error {
		once.Do(func() { close(atGate) })
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})

	first := d.startAPI(t)
	approvalID := first.create(t, "approval", nil)
	gatedID := first.create(t, "gated", nil)
	first.waitFor(t, approvalID, taskbridge.EventTaskSuspended)
	select {
	case <-atGate:
	case <-time.After(integrationWait):
		t.Fatal("the gated task did not reach its gate")
	}
	first.stop(t)

	// With no API process, the gated task finishes: its events are
	// appended by the worker, not by an API process.
	c := d.dial(t)
	close(release)
	require.NoError(t, c.GetWorkflow(context.Background(), first.exec.WorkflowID(gatedID), "").Get(context.Background(), nil))

	second := d.startAPI(t)
	suspended := second.waitFor(t, approvalID, taskbridge.EventTaskSuspended)
	var sus taskbridge.SuspendedPayload
	require.NoError(t, json.Unmarshal(suspended.Payload, &sus))
	second.do(t, http.MethodPost, "/api/v1/tasks/"+approvalID+"/actions", map[string]any{
		"clientActionId": "a1", "suspendId": sus.SuspendID, "actionType": "reject",
	}, http.StatusAccepted, nil)

	require.Equal(t, []taskbridge.EventType{
		taskbridge.EventTaskStarted, taskbridge.EventTaskProgress, taskbridge.EventTaskProgress, taskbridge.EventTaskCompleted,
	}, types(second.stream(t, gatedID, "")))
	evs := second.stream(t, approvalID, "")
	require.Equal(t, []taskbridge.EventType{
		taskbridge.EventTaskStarted, taskbridge.EventTaskSuspended, taskbridge.EventTaskActionAccepted,
		taskbridge.EventTaskMessage, taskbridge.EventTaskCompleted,
	}, types(evs))
	require.JSONEq(t, `{"result":{"approved":false,"by":"alice","note":""}}`, string(evs[4].Payload))
}

func TestIntegrationReconcileEndsTerminatedWorkflows(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	d.startWorker(t, d.store, nil)
	api := d.startAPI(t)
	c := d.dial(t)

	id := api.create(t, "approval", nil)
	api.waitFor(t, id, taskbridge.EventTaskSuspended)
	require.NoError(t, c.TerminateWorkflow(context.Background(), api.exec.WorkflowID(id), "", "operator"))
	rep, err := api.exec.Reconcile(context.Background(), d.store, api.svc.Emitter)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Ended)
	evs := api.stream(t, id, "")
	require.Equal(t, taskbridge.EventTaskFailed, evs[len(evs)-1].Type)
	require.Equal(t, temporalexec.CodeWorkflowTerminated, payload(t, evs[len(evs)-1])["code"])
}
