package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/temporalexec"
)

// nopExecutor stands for the Executor: these tests start workflows in the
// SDK's test environment themselves.
type nopExecutor struct{}

var _ taskbridge.TaskExecutor = nopExecutor{}

func (nopExecutor) Submit(context.Context, taskbridge.Task, taskbridge.Emitter) error { return nil }
func (nopExecutor) Cancel(context.Context, taskbridge.Task) error                     { return nil }

// runWorkflow runs the workflow of taskType on input in the SDK's test
// environment and returns the task's events.
func runWorkflow(t *testing.T, taskType, input string, during func(env *testsuite.TestWorkflowEnvironment, svc *taskbridge.Service, taskID string)) []taskbridge.TaskEvent {
	t.Helper()
	ctx := context.Background()
	store := memstore.New(memstore.Config{})
	defer store.Close()
	var ts testsuite.WorkflowTestSuite
	quiet := slog.New(slog.DiscardHandler)
	ts.SetLogger(sdklog.NewStructuredLogger(quiet))
	env := ts.NewTestWorkflowEnvironment()
	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: nopExecutor{}, Now: env.Now, Logger: quiet})
	require.NoError(t, err)
	defer svc.Shutdown(ctx)
	require.NoError(t, temporalexec.Register(env, temporalexec.WorkerConfig{EmitterFunc: svc.Emitter, Tasks: store, Workflows: workflows}))
	alice := taskbridge.AuthContext{Subject: "alice"}
	created, err := svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: "r", TaskType: taskType, Input: json.RawMessage(input)})
	require.NoError(t, err)
	task, err := store.GetTask(ctx, created.TaskID)
	require.NoError(t, err)
	if during != nil {
		during(env, svc, task.ID)
	}
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "wf-" + task.ID})
	env.ExecuteWorkflow(taskType, temporalexec.WorkflowInput{Task: task})
	require.True(t, env.IsWorkflowCompleted())
	evs, err := store.Read(ctx, task.ID, 0, 100)
	require.NoError(t, err)
	return evs
}

func last(evs []taskbridge.TaskEvent) string { return string(evs[len(evs)-1].Payload) }

func TestGreet(t *testing.T) {
	t.Parallel()
	evs := runWorkflow(t, taskGreet, `{"name":"Ada","steps":4}`, nil)
	require.Len(t, evs, 6)
	require.JSONEq(t, `{"progress":25,"stage":"greeting"}`, string(evs[1].Payload))
	require.JSONEq(t, `{"result":{"greeting":"Hello, Ada!"}}`, last(evs))

	evs = runWorkflow(t, taskGreet, `{}`, nil)
	require.Len(t, evs, 2+defaultSteps)
	require.JSONEq(t, `{"result":{"greeting":"Hello, World!"}}`, last(evs))

	for _, bad := range []string{`{"steps":0}`, `{"steps":101}`, `{"stepDelayMs":-1}`, `{"name":7}`} {
		evs = runWorkflow(t, taskGreet, bad, nil)
		require.Equal(t, taskbridge.EventTaskFailed, evs[len(evs)-1].Type, bad)
		require.Contains(t, last(evs), `"code":"BAD_INPUT"`, bad)
	}
}

func TestApproval(t *testing.T) {
	t.Parallel()
	for action, approved := range map[string]bool{"approve": true, "reject": false} {
		evs := runWorkflow(t, taskApproval, `{}`, func(env *testsuite.TestWorkflowEnvironment, svc *taskbridge.Service, taskID string) {
			env.RegisterDelayedCallback(func() {
				snap, err := svc.GetTask(context.Background(), taskbridge.AuthContext{Subject: "alice"}, taskID)
				require.NoError(t, err)
				require.NotNil(t, snap.Suspension)
				env.SignalWorkflow(temporalexec.SignalAction, temporalexec.Action{SuspendID: snap.Suspension.SuspendID, ActionType: action})
			}, time.Minute)
		})
		require.JSONEq(t, `{"result":{"approved":`+map[bool]string{true: "true", false: "false"}[approved]+`}}`, last(evs), action)
	}

	evs := runWorkflow(t, taskApproval, `{"ttlMs":1000}`, nil)
	require.Contains(t, last(evs), `"code":"SUSPENSION_EXPIRED"`)
}
