package taskbridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
			sub, err := svc2.Subscribe(ctx, a, id, "")
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

// recordingDiscarder records the refs it is asked to discard.
type recordingDiscarder struct {
	mu   sync.Mutex
	refs []string
	err  error
}

var _ taskbridge.AttachmentDiscarder = (*recordingDiscarder)(nil)

func (d *recordingDiscarder) Discard(_ context.Context, ref string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refs = append(d.refs, ref)
	return d.err
}

func (d *recordingDiscarder) discarded() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Sorted(slices.Values(d.refs))
}

// TestPruneDiscardsAttachments checks that retention removes the uploaded
// files of the tasks it deletes, through Config.Attachments.
func TestPruneDiscardsAttachments(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := &recordingDiscarder{}
	e := setup(t, func(c *taskbridge.Config, _ *memstore.Config) {
		c.TaskRetention = time.Hour
		c.Attachments = d
	})
	create := func(crid string, refs ...string) string {
		req := taskbridge.CreateTaskRequest{ClientRequestID: crid, TaskType: "demo"}
		for _, ref := range refs {
			req.Attachments = append(req.Attachments, taskbridge.Attachment{Field: "attachments", Filename: ref, Size: 1, SHA256: "00", Ref: ref})
		}
		resp, err := e.svc.CreateTask(ctx, alice, req)
		require.NoError(t, err)
		return resp.TaskID
	}
	done := create("done", "/up/a", "/up/b")
	e.emit(t, done, taskbridge.FailedPayload{Code: "X", Message: "x"})
	noRef := create("noref", "") // a sink that keeps no ref
	e.emit(t, noRef, taskbridge.CompletedPayload{})
	create("running", "/up/c")

	e.clock.Advance(2 * time.Hour)
	rep, err := e.svc.Prune(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, rep.TasksDeleted)
	require.Equal(t, 2, rep.AttachmentsDiscarded)
	require.Equal(t, []string{"/up/a", "/up/b"}, d.discarded(), "the files of deleted tasks only")

	// A failing discard is logged; the tasks are deleted all the same.
	d2 := &recordingDiscarder{err: errors.New("disk gone")}
	e2 := setup(t, func(c *taskbridge.Config, _ *memstore.Config) {
		c.TaskRetention = time.Hour
		c.Attachments = d2
	})
	resp, err := e2.svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: "x", TaskType: "demo",
		Attachments: []taskbridge.Attachment{{Field: "attachments", Filename: "f", Ref: "/up/f"}}})
	require.NoError(t, err)
	e2.emit(t, resp.TaskID, taskbridge.CompletedPayload{})
	e2.clock.Advance(2 * time.Hour)
	rep, err = e2.svc.Prune(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, rep.TasksDeleted)
	require.Zero(t, rep.AttachmentsDiscarded)
	require.Equal(t, []string{"/up/f"}, d2.discarded())
}

// plainStore hides the optional interfaces of the store it wraps.
type plainStore struct{ taskbridge.Store }

// TestLiveTaskQuota checks Config.MaxLiveTasksPerOwner: an owner with that
// many tasks that have not ended gets ErrTaskQuota (429) for a new one,
// repeats of existing tasks are still deduplicated, and a task that ends
// frees its place. With memstore the quota is exact under concurrent
// creates; with a store without LiveTaskCreator it holds for sequential
// ones.
func TestLiveTaskQuota(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, wrap := range map[string]func(*memstore.Store) taskbridge.Store{
		"exact":       func(s *memstore.Store) taskbridge.Store { return s },
		"best-effort": func(s *memstore.Store) taskbridge.Store { return plainStore{s} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ms := memstore.New(memstore.Config{})
			t.Cleanup(func() { _ = ms.Close() })
			svc, err := taskbridge.New(taskbridge.Config{Store: wrap(ms), Executor: &fakeExecutor{}, Logger: discardLogger(),
				MaxLiveTasksPerOwner: 2})
			require.NoError(t, err)
			create := func(who taskbridge.AuthContext, crid string) (taskbridge.CreateTaskResponse, error) {
				return svc.CreateTask(ctx, who, taskbridge.CreateTaskRequest{ClientRequestID: crid, TaskType: "demo"})
			}
			first, err := create(alice, "a1")
			require.NoError(t, err)
			second, err := create(alice, "a2")
			require.NoError(t, err)
			_, err = svc.Emitter(second.TaskID).Emit(ctx, taskbridge.StartedPayload{})
			require.NoError(t, err)

			_, err = create(alice, "a3")
			require.ErrorIs(t, err, taskbridge.ErrTaskQuota, "ACCEPTED and RUNNING tasks count")
			status, code, _ := taskbridge.HTTPError(err)
			require.Equal(t, 429, status)
			require.Equal(t, taskbridge.CodeTooManyTasks, code)

			again, err := create(alice, "a1")
			require.NoError(t, err, "a repeated create is deduplicated, quota or not")
			require.True(t, again.Deduplicated)
			require.Equal(t, first.TaskID, again.TaskID)
			_, err = create(bob, "b1")
			require.NoError(t, err, "the quota is per owner")

			_, err = svc.Emitter(first.TaskID).Emit(ctx, taskbridge.CompletedPayload{})
			require.NoError(t, err)
			_, err = create(alice, "a3")
			require.NoError(t, err, "a task that ended frees its place")
			_, err = create(alice, "a4")
			require.ErrorIs(t, err, taskbridge.ErrTaskQuota)
		})
	}

	t.Run("concurrent", func(t *testing.T) {
		t.Parallel()
		e := setup(t, func(c *taskbridge.Config, _ *memstore.Config) { c.MaxLiveTasksPerOwner = 5 })
		const n = 40
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, errs[i] = e.svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: fmt.Sprint("c", i), TaskType: "demo"})
			})
		}
		wg.Wait()
		created := 0
		for _, err := range errs {
			if err == nil {
				created++
				continue
			}
			require.ErrorIs(t, err, taskbridge.ErrTaskQuota)
		}
		require.Equal(t, 5, created, "exactly the quota, however the creates interleave")
	})

	_, err := taskbridge.New(taskbridge.Config{Store: memstore.New(memstore.Config{}), Executor: &fakeExecutor{}, MaxLiveTasksPerOwner: -1})
	require.Error(t, err)
}
