package temporalexec_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/temporalexec"
)

var alice = taskbridge.AuthContext{Subject: "alice"}

var requestSeq atomic.Int64

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// envExecutor is the executor of the Service in testsuite tests: the test
// starts the workflow itself, and cancels and actions reach it through the
// suite's current environment as they would through Executor and a client.
type envExecutor struct {
	s *suite
}

var (
	_ taskbridge.TaskExecutor = envExecutor{}
	_ taskbridge.Resumer      = envExecutor{}
)

func (envExecutor) Submit(context.Context, taskbridge.Task, taskbridge.Emitter) error { return nil }

func (e envExecutor) Cancel(context.Context, taskbridge.Task) error {
	e.s.env.CancelWorkflow()
	return nil
}

func (e envExecutor) Resume(_ context.Context, _ taskbridge.Task, _ taskbridge.Suspension, r taskbridge.ActionReceipt) error {
	e.s.env.SignalWorkflow(temporalexec.SignalAction, temporalexec.Action{
		SuspendID: r.SuspendID, ClientActionID: r.ClientActionID, ActionType: r.ActionType,
		Payload: r.Payload, Metadata: r.Metadata, ActorID: r.ActorID, AcceptedAt: r.CreatedAt,
	})
	return nil
}

// flakyStore is a memstore whose writes can be made to succeed and then
// report an error, as when a worker dies (or its connection drops) after
// the store committed and before the activity reported: the activity is
// retried.
type flakyStore struct {
	*memstore.Store
	mu sync.Mutex
	// lose is the number of successful appends (and suspension opens)
	// whose success is reported as an error, per event type.
	lose map[taskbridge.EventType]int
	// lost counts the writes reported as errors.
	lost int
	// beforeClose, if set, runs before a suspension is closed.
	beforeClose func(taskID, suspendID string)
}

var _ taskbridge.Store = (*flakyStore)(nil)

func newFlakyStore() *flakyStore {
	return &flakyStore{
		Store: memstore.New(memstore.Config{}),
		lose:  map[taskbridge.EventType]int{},
	}
}

var errLost = errors.New("flaky store: connection reset after commit")

func (s *flakyStore) loseOne(t taskbridge.EventType) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lose[t] == 0 {
		return false
	}
	s.lose[t]--
	s.lost++
	return true
}

func (s *flakyStore) Append(ctx context.Context, ev taskbridge.TaskEvent) (taskbridge.TaskEvent, error) {
	got, err := s.Store.Append(ctx, ev)
	if err == nil && s.loseOne(ev.Type) {
		return taskbridge.TaskEvent{}, errLost
	}
	return got, err
}

func (s *flakyStore) OpenSuspension(ctx context.Context, sus taskbridge.Suspension, ev taskbridge.TaskEvent) (taskbridge.Suspension, taskbridge.TaskEvent, error) {
	gotS, gotE, err := s.Store.OpenSuspension(ctx, sus, ev)
	if err == nil && s.loseOne(ev.Type) {
		return taskbridge.Suspension{}, taskbridge.TaskEvent{}, errLost
	}
	return gotS, gotE, err
}

func (s *flakyStore) CloseSuspension(ctx context.Context, taskID, suspendID string, status taskbridge.SuspensionStatus, now time.Time) (taskbridge.Suspension, bool, error) {
	if s.beforeClose != nil {
		s.beforeClose(taskID, suspendID)
	}
	return s.Store.CloseSuspension(ctx, taskID, suspendID, status, now)
}

// suite is a Service over a (flaky) memstore and a testsuite environment
// with the adapter's workflows registered.
type suite struct {
	env   *testsuite.TestWorkflowEnvironment
	store *flakyStore
	svc   *taskbridge.Service
}

// fastRetries retries the adapter's activities at once (time is skipped in
// the test environment anyway).
var fastRetries = &temporal.RetryPolicy{InitialInterval: time.Millisecond, MaximumInterval: time.Millisecond}

// setup builds a suite running workflows (by workflow type name). The
// service's clock is the environment's, so suspension deadlines and action
// acceptance agree with the workflow's timers.
func setup(t *testing.T, workflows map[string]temporalexec.WorkflowFunc, adjust ...func(*temporalexec.WorkerConfig)) *suite {
	t.Helper()
	s := &suite{store: newFlakyStore()}
	svc, err := taskbridge.New(taskbridge.Config{
		Store: s.store, Executor: envExecutor{s}, Logger: quietLogger(),
		Now: func() time.Time { return s.env.Now() },
	})
	require.NoError(t, err)
	s.svc = svc
	t.Cleanup(func() {
		require.NoError(t, svc.Shutdown(context.Background()))
		require.NoError(t, s.store.Close())
	})
	s.newEnv(t, workflows, adjust...)
	return s
}

// newEnv gives the suite a new test environment, registered with
// workflows, as the environment of the next workflow run.
func (s *suite) newEnv(t *testing.T, workflows map[string]temporalexec.WorkflowFunc, adjust ...func(*temporalexec.WorkerConfig)) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	ts.SetLogger(testLog{t})
	env := ts.NewTestWorkflowEnvironment()
	cfg := temporalexec.WorkerConfig{
		EmitterFunc: s.svc.Emitter,
		Tasks:       s.store,
		Workflows:   workflows,
		RetryPolicy: fastRetries,
	}
	for _, f := range adjust {
		f(&cfg)
	}
	require.NoError(t, temporalexec.Register(env, cfg))
	s.env = env
	return env
}

// create creates a task of taskType through the service.
func (s *suite) create(t *testing.T, taskType string, input any) taskbridge.Task {
	t.Helper()
	raw, err := json.Marshal(input)
	require.NoError(t, err)
	resp, err := s.svc.CreateTask(context.Background(), alice, taskbridge.CreateTaskRequest{
		ClientRequestID: fmt.Sprintf("req-%d", requestSeq.Add(1)), TaskType: taskType, Input: raw,
	})
	require.NoError(t, err)
	task, err := s.store.GetTask(context.Background(), resp.TaskID)
	require.NoError(t, err)
	return task
}

// execute runs the workflow of the task's type to its end, as the Executor
// would start it.
func (s *suite) execute(task taskbridge.Task) {
	s.executeInput(task.TaskType, temporalexec.WorkflowInput{Task: task})
}

func (s *suite) executeInput(workflowType string, in temporalexec.WorkflowInput) {
	s.env.SetStartWorkflowOptions(startOptions(in.Task.ID))
	s.env.ExecuteWorkflow(workflowType, in)
}

// startOptions are the options the Executor starts the task's workflow
// with, as far as a test environment uses them.
func startOptions(taskID string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{ID: temporalexec.DefaultWorkflowIDPrefix + taskID}
}

// createWithID creates a task with a chosen id directly in the store.
func (s *suite) createWithID(t *testing.T, id, taskType string) taskbridge.Task {
	t.Helper()
	now := s.env.Now().UTC().Truncate(time.Millisecond)
	task, _, err := s.store.CreateTask(context.Background(), taskbridge.Task{
		ID: id, OwnerID: alice.Subject, ClientRequestID: id, TaskType: taskType,
		Input: json.RawMessage(`{}`), Metadata: json.RawMessage(`{}`),
		Status: taskbridge.StatusAccepted, CreatedAt: now, UpdatedAt: now,
	})
	require.NoError(t, err)
	return task
}

// events returns every event of the task.
func (s *suite) events(t *testing.T, taskID string) []taskbridge.TaskEvent {
	t.Helper()
	evs, err := s.store.Read(context.Background(), taskID, 0, 1000)
	require.NoError(t, err)
	return evs
}

// types returns the event types of evs.
func types(evs []taskbridge.TaskEvent) []taskbridge.EventType {
	out := make([]taskbridge.EventType, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

// payload decodes the payload of ev into a map.
func payload(t *testing.T, ev taskbridge.TaskEvent) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(ev.Payload, &m))
	return m
}

// testLog sends the SDK's warnings and errors to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Debug(string, ...any) {}
func (l testLog) Info(string, ...any)  {}
func (l testLog) Warn(msg string, kv ...any) {
	l.t.Helper()
	l.t.Log(append([]any{"WARN", msg}, kv...)...)
}
func (l testLog) Error(msg string, kv ...any) {
	l.t.Helper()
	l.t.Log(append([]any{"ERROR", msg}, kv...)...)
}
