package taskbridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
)

// TestIDsMustBeUTF8 checks that the service refuses client ids that are not
// UTF-8 text, whatever transport (or Go caller) passes them.
func TestIDsMustBeUTF8(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	_, err := e.svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: "a\xff", TaskType: "t\xfe"})
	var verr *taskbridge.ValidationError
	require.True(t, errors.As(err, &verr), "%v", err)
	require.Equal(t, []taskbridge.FieldError{
		{Field: "clientRequestId", Message: "must be UTF-8 text"},
		{Field: "taskType", Message: "must be UTF-8 text"},
	}, verr.Fields)

	id := e.started(t, alice, "req-1")
	_, err = e.svc.SubmitAction(ctx, alice, id, taskbridge.ActionRequest{ClientActionID: "a\xff", SuspendID: "s", ActionType: "approve"})
	require.True(t, errors.As(err, &verr), "%v", err)
	require.Equal(t, []taskbridge.FieldError{{Field: "clientActionId", Message: "must be UTF-8 text"}}, verr.Fields)
}

// payloadStore records loads of whole task records (with their input).
type payloadStore struct {
	*memstore.Store
	fullLoads atomic.Int64
}

func (s *payloadStore) GetTask(ctx context.Context, taskID string) (taskbridge.Task, error) {
	s.fullLoads.Add(1)
	return s.Store.GetTask(ctx, taskID)
}

// TestOwnershipCheckedBeforeInputIsLoaded checks that a request for another
// owner's task is refused before the task's input is loaded, so that its
// answer takes no longer for a large task than for a missing one.
func TestOwnershipCheckedBeforeInputIsLoaded(t *testing.T) {
	t.Parallel()
	ps := &payloadStore{Store: memstore.New(memstore.Config{})}
	t.Cleanup(func() { _ = ps.Close() })
	exec := &fakeExecutor{}
	svc, err := taskbridge.New(taskbridge.Config{Store: ps, Executor: exec, Logger: discardLogger()})
	require.NoError(t, err)
	ctx := context.Background()
	resp, err := svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{
		ClientRequestID: "big", TaskType: "demo",
		Input: json.RawMessage(`{"blob":"` + strings.Repeat("x", 1<<20) + `"}`),
	})
	require.NoError(t, err)
	id := resp.TaskID

	var seen []taskbridge.Task
	svc2, err := taskbridge.New(taskbridge.Config{Store: ps, Executor: exec, Logger: discardLogger(),
		Ownership: policyFunc(func(task taskbridge.Task) { seen = append(seen, task) })})
	require.NoError(t, err)
	ps.fullLoads.Store(0)
	for name, call := range map[string]func(taskbridge.AuthContext) error{
		"get": func(a taskbridge.AuthContext) error { _, err := svc2.GetTask(ctx, a, id); return err },
		"poll": func(a taskbridge.AuthContext) error {
			_, err := svc2.PollEvents(ctx, a, id, taskbridge.PollRequest{})
			return err
		},
		"cancel": func(a taskbridge.AuthContext) error {
			_, err := svc2.CancelTask(ctx, a, id, taskbridge.CancelRequest{})
			return err
		},
		"action": func(a taskbridge.AuthContext) error {
			_, err := svc2.SubmitAction(ctx, a, id, taskbridge.ActionRequest{ClientActionID: "a", SuspendID: "s", ActionType: "x"})
			return err
		},
		"subscribe": func(a taskbridge.AuthContext) error {
			sub, err := svc2.Subscribe(ctx, a, id, "", taskbridge.SubscribeOpts{})
			if err == nil {
				sub.Close()
			}
			return err
		},
	} {
		require.ErrorIs(t, call(bob), taskbridge.ErrTaskNotFound, name)
		require.Zero(t, ps.fullLoads.Load(), "%s: the input of a task bob may not see was loaded", name)
	}
	require.NotEmpty(t, seen)
	for _, task := range seen {
		require.Equal(t, "alice", task.OwnerID, "the policy sees the owner")
		require.Nil(t, task.Input, "the policy does not see the input")
	}
	_, err = svc2.GetTask(ctx, alice, id)
	require.NoError(t, err, "the owner still gets the task")
}

// policyFunc is OwnerOnly that also reports every task it is asked about.
type policyFunc func(task taskbridge.Task)

func (f policyFunc) CanCreate(ctx context.Context, auth taskbridge.AuthContext, req taskbridge.CreateTaskRequest) error {
	return taskbridge.OwnerOnly{}.CanCreate(ctx, auth, req)
}

func (f policyFunc) CanAccess(ctx context.Context, auth taskbridge.AuthContext, task taskbridge.Task) error {
	f(task)
	return taskbridge.OwnerOnly{}.CanAccess(ctx, auth, task)
}
