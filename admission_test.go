package taskbridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
)

// admitter is a fakeExecutor that admits or refuses creates and counts the
// releases of the room it kept.
type admitter struct {
	*fakeExecutor

	mu       sync.Mutex
	refuse   error
	admitted []string // subjects
	releases int
	// releasedAtSubmit is how many releases had happened when Submit ran.
	releasedAtSubmit []int
}

var _ taskbridge.TaskAdmitter = (*admitter)(nil)

func (a *admitter) AdmitTask(_ context.Context, auth taskbridge.AuthContext, _ taskbridge.CreateTaskRequest) (func(), error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.refuse != nil {
		return nil, a.refuse
	}
	a.admitted = append(a.admitted, auth.Subject)
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			a.releases++
			a.mu.Unlock()
		})
	}, nil
}

func (a *admitter) setRefuse(err error) {
	a.mu.Lock()
	a.refuse = err
	a.mu.Unlock()
}

func (a *admitter) counts() (admitted, releases int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.admitted), a.releases
}

func setupAdmitter(t *testing.T) (*env, *admitter) {
	t.Helper()
	a := &admitter{fakeExecutor: &fakeExecutor{}}
	a.submitHook = func(taskbridge.Task, taskbridge.Emitter) {
		a.mu.Lock()
		a.releasedAtSubmit = append(a.releasedAtSubmit, a.releases)
		a.mu.Unlock()
	}
	e := setup(t, func(c *taskbridge.Config, _ *memstore.Config) { c.Executor = a })
	return e, a
}

func TestCreateAdmission(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	req := taskbridge.CreateTaskRequest{ClientRequestID: "c1", TaskType: "demo", Input: json.RawMessage(`{"n":1}`)}

	t.Run("refused create leaves no task and its retry works", func(t *testing.T) {
		t.Parallel()
		e, a := setupAdmitter(t)
		a.setRefuse(fmt.Errorf("%w: 80 of your tasks are running or waiting", taskbridge.ErrTooManyTasks))
		_, err := e.svc.CreateTask(ctx, alice, req)
		require.ErrorIs(t, err, taskbridge.ErrTooManyTasks)
		status, code, msg := taskbridge.HTTPError(err)
		require.Equal(t, 429, status)
		require.Equal(t, taskbridge.CodeTooManyTasks, code)
		require.Equal(t, "Too many tasks: 80 of your tasks are running or waiting", msg)
		list, err := e.svc.ListTasks(ctx, alice, taskbridge.ListTasksRequest{})
		require.NoError(t, err)
		require.Empty(t, list.Tasks, "no task was created")
		require.Zero(t, a.submits())

		a.setRefuse(nil)
		resp, err := e.svc.CreateTask(ctx, alice, req)
		require.NoError(t, err)
		require.False(t, resp.Deduplicated, "the retry creates the task")
		require.Equal(t, 1, a.submits())
		admitted, releases := a.counts()
		require.Equal(t, 1, admitted)
		require.Equal(t, 1, releases, "the room is released once")
		require.Equal(t, []int{0}, a.releasedAtSubmit, "and only after Submit")
		require.Equal(t, []string{"alice"}, a.admitted, "admission is asked for the caller")
	})

	t.Run("a repeated create is answered despite a refusal", func(t *testing.T) {
		t.Parallel()
		e, a := setupAdmitter(t)
		first, err := e.svc.CreateTask(ctx, alice, req)
		require.NoError(t, err)
		a.setRefuse(fmt.Errorf("%w: at your limit", taskbridge.ErrTooManyTasks))
		again, err := e.svc.CreateTask(ctx, alice, req)
		require.NoError(t, err)
		require.True(t, again.Deduplicated)
		require.Equal(t, first.TaskID, again.TaskID)
		other := req
		other.Input = json.RawMessage(`{"n":2}`)
		_, err = e.svc.CreateTask(ctx, alice, other)
		require.ErrorIs(t, err, taskbridge.ErrIdempotencyConflict, "a conflicting repeat is still a conflict")
		// Another user's request with the same id is not a repeat.
		_, err = e.svc.CreateTask(ctx, bob, req)
		require.ErrorIs(t, err, taskbridge.ErrTooManyTasks)
		require.Equal(t, 1, a.submits())
	})

	t.Run("a deduplicated create releases its room", func(t *testing.T) {
		t.Parallel()
		e, a := setupAdmitter(t)
		e.create(t, alice, "c1")
		e.create(t, alice, "c1")
		admitted, releases := a.counts()
		require.Equal(t, 2, admitted)
		require.Equal(t, 2, releases)
		require.Equal(t, 1, a.submits())
	})

	t.Run("other refusals are 503", func(t *testing.T) {
		t.Parallel()
		e, a := setupAdmitter(t)
		a.setRefuse(errors.New("executor: queue is full"))
		_, err := e.svc.CreateTask(ctx, alice, req)
		require.ErrorIs(t, err, taskbridge.ErrSubmission)
		status, code, _ := taskbridge.HTTPError(err)
		require.Equal(t, 503, status)
		require.Equal(t, taskbridge.CodeSubmission, code)

		a.setRefuse(fmt.Errorf("executor: %w", taskbridge.ErrClosed))
		_, err = e.svc.CreateTask(ctx, alice, req)
		status, code, _ = taskbridge.HTTPError(err)
		require.Equal(t, 503, status)
		require.Equal(t, taskbridge.CodeUnavailable, code)
		list, err := e.svc.ListTasks(ctx, alice, taskbridge.ListTasksRequest{})
		require.NoError(t, err)
		require.Empty(t, list.Tasks)
	})
}
