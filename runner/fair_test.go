package runner_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/runner"
)

// latch is a handler that reports each start and waits until its own task
// is released (or cancelled, or the test ends).
type latch struct {
	started chan string
	all     chan struct{} // closed when the test ends
	mu      sync.Mutex
	release map[string]chan struct{}
}

func newLatch() *latch {
	return &latch{started: make(chan string, 1024), all: make(chan struct{}), release: map[string]chan struct{}{}}
}

// setupLatch returns a runner (see setup) with a latch as handler "latch";
// the latch's tasks are released when the test ends, before the runner is
// shut down.
func setupLatch(t *testing.T, cfg runner.Config) (*runner.Runner, *latch) {
	t.Helper()
	l := newLatch()
	handlers := map[string]runner.HandlerFunc{"latch": l.handler}
	for name, h := range cfg.Handlers {
		handlers[name] = h
	}
	cfg.Handlers = handlers
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	r := setup(t, cfg)
	t.Cleanup(func() { close(l.all) })
	return r, l
}

func (l *latch) ch(id string) chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.release[id]
	if c == nil {
		c = make(chan struct{})
		l.release[id] = c
	}
	return c
}

func (l *latch) open(id string) { close(l.ch(id)) }

func (l *latch) handler(ctx context.Context, task *taskbridge.Task, _ taskbridge.Emitter) (any, error) {
	l.started <- task.ID
	select {
	case <-l.ch(task.ID):
		return nil, nil
	case <-l.all:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// next returns the id of the next task to start.
func (l *latch) next(t *testing.T) string {
	t.Helper()
	select {
	case id := <-l.started:
		return id
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for a task to start")
		return ""
	}
}

// waitStarted waits until task id starts; other tasks may start first.
func (l *latch) waitStarted(t *testing.T, id string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case got := <-l.started:
			if got == id {
				return
			}
		case <-timeout:
			t.Fatalf("task %s did not start", id)
		}
	}
}

// submitAs submits a task of taskType owned by owner.
func submitAs(t *testing.T, r *runner.Runner, owner, taskType string) (taskbridge.Task, *fakeEmitter, error) {
	t.Helper()
	task, f := newTask(taskType)
	task.OwnerID = owner
	return task, f, r.Submit(context.Background(), task, f)
}

// One owner fills its limits with tasks that never end; another owner's
// task still starts at once, and the first owner's further tasks are
// refused with TOO_MANY_TASKS while the runner has room.
func TestOwnerAtItsLimitsDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	r, l := setupLatch(t, runner.Config{})
	var alices []string
	for {
		task, _, err := submitAs(t, r, "alice", "latch")
		if err != nil {
			require.ErrorIs(t, err, taskbridge.ErrTooManyTasks)
			_, code, msg := taskbridge.HTTPError(err)
			require.Equal(t, taskbridge.CodeTooManyTasks, code)
			require.Equal(t, "Too many tasks: 80 of your tasks are running or waiting to run (at most 80); retry once one has ended", msg)
			break
		}
		alices = append(alices, task.ID)
		require.Less(t, len(alices), 200, "alice is never refused")
	}
	want := runner.DefaultConcurrency/4 + runner.DefaultQueueSize/16
	require.Len(t, alices, want)
	for range runner.DefaultConcurrency / 4 {
		l.next(t)
	}
	require.Eventually(t, func() bool {
		return r.OwnerStats("alice") == runner.Stats{Running: 16, Queued: 64}
	}, 5*time.Second, time.Millisecond)

	bob, _, err := submitAs(t, r, "bob", "latch")
	require.NoError(t, err)
	require.Equal(t, bob.ID, l.next(t), "bob's task starts at once")
	require.Equal(t, runner.Stats{Running: 17, Queued: 64}, r.Stats())
	require.Equal(t, runner.Stats{Running: 1}, r.OwnerStats("bob"))
	require.Equal(t, runner.Stats{}, r.OwnerStats("carol"))

	// One of alice's tasks ends: her next queued one takes its place,
	// and she may submit one more.
	l.open(alices[0])
	require.Equal(t, alices[16], l.next(t))
	_, _, err = submitAs(t, r, "alice", "latch")
	require.NoError(t, err)
	_, _, err = submitAs(t, r, "alice", "latch")
	require.ErrorIs(t, err, taskbridge.ErrTooManyTasks)
}

// Tasks waiting for a slot are served round-robin by owner, not in the
// order they were submitted: an owner whose task just ended goes after the
// owners that were waiting.
func TestRoundRobinByOwner(t *testing.T) {
	t.Parallel()
	r, l := setupLatch(t, runner.Config{Concurrency: 1, MaxRunningPerOwner: -1})
	var order []string
	name := map[string]string{}
	for _, who := range []string{"a1", "a2", "a3", "a4", "b1", "c1"} {
		task, _, err := submitAs(t, r, who[:1], "latch")
		require.NoError(t, err)
		name[task.ID] = who
	}
	for range 6 {
		id := l.next(t)
		order = append(order, name[id])
		l.open(id)
	}
	require.Equal(t, []string{"a1", "b1", "c1", "a2", "a3", "a4"}, order)
}

// The scenario of the issue: one user's 64 approval tasks, waiting for an
// answer for days, no longer hold the runner's 64 slots.
func TestSuspendedTasksHoldNoSlot(t *testing.T) {
	t.Parallel()
	r, l := setupLatch(t, runner.Config{Handlers: map[string]runner.HandlerFunc{"approval": approvalHandler(approvalOpts)}})
	var approvals []*fakeEmitter
	for range runner.DefaultConcurrency {
		_, f, err := submitAs(t, r, "alice", "approval")
		require.NoError(t, err)
		approvals = append(approvals, f)
	}
	for _, f := range approvals {
		f.waitType(t, taskbridge.EventTaskSuspended)
	}
	require.Eventually(t, func() bool {
		return r.Stats() == runner.Stats{Suspended: runner.DefaultConcurrency}
	}, 5*time.Second, time.Millisecond)
	require.Equal(t, runner.Stats{Suspended: runner.DefaultConcurrency}, r.OwnerStats("alice"))

	bob, _, err := submitAs(t, r, "bob", "latch")
	require.NoError(t, err)
	l.waitStarted(t, bob.ID)

	// An answer still reaches a suspended task.
	task, s, rec := approvals[0].accept(t, "s1", "approve", "act-1")
	require.NoError(t, r.Resume(context.Background(), task, s, rec))
	evs := approvals[0].waitTerminal(t)
	require.Equal(t, taskbridge.EventTaskCompleted, evs[len(evs)-1].Type)
	l.open(bob.ID)
	for _, f := range approvals[1:] {
		require.NoError(t, r.Cancel(context.Background(), taskbridge.Task{ID: f.taskID, CancelRequested: true}))
	}
}

// suspendedBehindBusy returns a runner with a single slot, alice's approval
// task waiting in Suspend without it and bob's latch task holding it.
func suspendedBehindBusy(t *testing.T) (r *runner.Runner, l *latch, approval taskbridge.Task, af *fakeEmitter, bob taskbridge.Task) {
	t.Helper()
	r, l = setupLatch(t, runner.Config{Concurrency: 1, Handlers: map[string]runner.HandlerFunc{"approval": approvalHandler(approvalOpts)}})
	approval, af, err := submitAs(t, r, "alice", "approval")
	require.NoError(t, err)
	af.waitType(t, taskbridge.EventTaskSuspended)
	bob, _, err = submitAs(t, r, "bob", "latch")
	require.NoError(t, err)
	l.waitStarted(t, bob.ID)
	return r, l, approval, af, bob
}

// A handler back from Suspend waits for a slot: the concurrency limit
// bounds handlers at work, not handlers waiting for an action.
func TestResumedHandlerWaitsForSlot(t *testing.T) {
	t.Parallel()
	r, l, _, approval, bob := suspendedBehindBusy(t)
	task, s, rec := approval.accept(t, "s1", "approve", "act-1")
	require.NoError(t, r.Resume(context.Background(), task, s, rec))
	require.Eventually(t, func() bool {
		return r.Stats() == runner.Stats{Running: 1, Queued: 1}
	}, 5*time.Second, time.Millisecond, "the resumed handler waits for bob's slot")
	require.Equal(t, []taskbridge.EventType{
		taskbridge.EventTaskStarted, taskbridge.EventTaskSuspended, taskbridge.EventTaskActionAccepted,
	}, approval.types(t), "and does nothing meanwhile")

	l.open(bob.ID)
	evs := approval.waitTerminal(t)
	require.Equal(t, []taskbridge.EventType{
		taskbridge.EventTaskStarted, taskbridge.EventTaskSuspended, taskbridge.EventTaskActionAccepted,
		taskbridge.EventTaskMessage, taskbridge.EventTaskCompleted,
	}, typesOf(evs))
}

// A cancelled task waiting in Suspend ends at once, even when every slot
// is busy: it does not wait for one.
func TestCancelSuspendedWhileSlotsBusy(t *testing.T) {
	t.Parallel()
	r, l, task, approval, bob := suspendedBehindBusy(t)
	task.CancelRequested, task.CancelReason = true, "no_longer_needed"
	require.NoError(t, r.Cancel(context.Background(), task))
	evs := approval.waitTerminal(t)
	require.Equal(t, taskbridge.EventTaskCancelled, evs[len(evs)-1].Type)
	require.Eventually(t, func() bool { return r.Stats() == runner.Stats{Running: 1} }, 5*time.Second, time.Millisecond)
	l.open(bob.ID)
}

// Past MaxSuspended (or an owner's MaxSuspendedPerOwner) a handler waits
// in Suspend holding its slot, and an owner with that many suspended
// handlers may not create more tasks.
func TestSuspendedLimits(t *testing.T) {
	t.Parallel()
	r := setup(t, runner.Config{Concurrency: 4, MaxSuspended: 1, Logger: quietLogger(), Handlers: map[string]runner.HandlerFunc{
		"approval": approvalHandler(approvalOpts),
	}})
	_, a, err := submitAs(t, r, "alice", "approval")
	require.NoError(t, err)
	a.waitType(t, taskbridge.EventTaskSuspended)
	require.Eventually(t, func() bool { return r.Stats() == runner.Stats{Suspended: 1} }, 5*time.Second, time.Millisecond)

	_, b, err := submitAs(t, r, "bob", "approval")
	require.NoError(t, err)
	b.waitType(t, taskbridge.EventTaskSuspended)
	require.Equal(t, runner.Stats{Running: 1, Suspended: 1}, r.Stats(), "bob's handler keeps its slot")

	_, _, err = submitAs(t, r, "alice", "approval")
	require.ErrorIs(t, err, taskbridge.ErrTooManyTasks)
	_, _, msg := taskbridge.HTTPError(err)
	require.Equal(t, "Too many tasks: 1 of your tasks are waiting for an action (at most 1); retry once one has ended", msg)
	_, err = r.AdmitTask(context.Background(), taskbridge.AuthContext{Subject: "alice"}, taskbridge.CreateTaskRequest{})
	require.ErrorIs(t, err, taskbridge.ErrTooManyTasks)

	for _, f := range []*fakeEmitter{a, b} {
		task, s, rec := f.accept(t, "s1", "approve", "act-1")
		require.NoError(t, r.Resume(context.Background(), task, s, rec))
		evs := f.waitTerminal(t)
		require.Equal(t, taskbridge.EventTaskCompleted, evs[len(evs)-1].Type)
	}
	require.Eventually(t, func() bool { return r.Stats() == runner.Stats{} }, 5*time.Second, time.Millisecond)
}

// AdmitTask keeps room for a create in flight: concurrent creates cannot
// overshoot an owner's limit, the create's Submit takes the room, and a
// release after that changes nothing.
func TestAdmitTaskKeepsRoom(t *testing.T) {
	t.Parallel()
	r, l := setupLatch(t, runner.Config{Concurrency: 2, QueueSize: -1})
	ctx := context.Background()
	alice := taskbridge.AuthContext{Subject: "alice"}
	c1 := taskbridge.CreateTaskRequest{ClientRequestID: "c1", TaskType: "latch"}
	release, err := r.AdmitTask(ctx, alice, c1)
	require.NoError(t, err)
	_, err = r.AdmitTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: "c2"})
	require.ErrorIs(t, err, taskbridge.ErrTooManyTasks, "the room is kept")
	release()
	release() // twice is fine
	release, err = r.AdmitTask(ctx, alice, c1)
	require.NoError(t, err, "and given back")

	// Another task of alice's does not take c1's room.
	other, f := newTask("latch")
	other.ClientRequestID = "c2"
	require.ErrorIs(t, r.Submit(ctx, other, f), taskbridge.ErrTooManyTasks)
	task, f := newTask("latch")
	task.ClientRequestID = "c1"
	require.NoError(t, r.Submit(ctx, task, f), "c1's Submit takes its room")
	release()
	l.waitStarted(t, task.ID)
	require.Equal(t, runner.Stats{Running: 1}, r.OwnerStats("alice"))
	_, err = r.AdmitTask(ctx, alice, c1)
	require.ErrorIs(t, err, taskbridge.ErrTooManyTasks)

	// The runner's total counts kept room too.
	release, err = r.AdmitTask(ctx, taskbridge.AuthContext{Subject: "bob"}, c1)
	require.NoError(t, err)
	_, err = r.AdmitTask(ctx, taskbridge.AuthContext{Subject: "carol"}, c1)
	require.ErrorIs(t, err, taskbridge.ErrSubmission)
	require.ErrorIs(t, err, runner.ErrQueueFull)
	release()
	l.open(task.ID)

	require.NoError(t, r.Shutdown(ctx))
	_, err = r.AdmitTask(ctx, alice, c1)
	require.ErrorIs(t, err, taskbridge.ErrClosed)
}

// Many concurrent creates of one owner through the service: exactly as
// many as its limit allow are created, the others are refused with
// TOO_MANY_TASKS, and no refused create leaves a task behind.
func TestConcurrentCreatesKeepToTheLimit(t *testing.T) {
	t.Parallel()
	l := newLatch()
	s := setupService(t, runner.Config{Concurrency: 8, QueueSize: 8, MaxRunningPerOwner: 2, MaxQueuedPerOwner: 3,
		Handlers: map[string]runner.HandlerFunc{"latch": l.handler}})
	const creates = 40
	errs := make(chan error, creates)
	var wg sync.WaitGroup
	for i := range creates {
		wg.Go(func() {
			_, err := s.svc.CreateTask(context.Background(), alice, taskbridge.CreateTaskRequest{
				ClientRequestID: fmt.Sprint("burst-", i), TaskType: "latch",
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	created := 0
	for err := range errs {
		if err == nil {
			created++
			continue
		}
		require.ErrorIs(t, err, taskbridge.ErrTooManyTasks)
	}
	require.Equal(t, 5, created)
	list, err := s.svc.ListTasks(context.Background(), alice, taskbridge.ListTasksRequest{})
	require.NoError(t, err)
	require.Len(t, list.Tasks, 5)
	for _, task := range list.Tasks {
		require.NotEqual(t, taskbridge.StatusFailed, task.Status)
		l.open(task.TaskID)
	}
}

func TestNotReadyWhenFull(t *testing.T) {
	t.Parallel()
	r, l := setupLatch(t, runner.Config{Concurrency: 1, QueueSize: -1, NotReadyWhenFull: true})
	require.NoError(t, r.CheckReady(context.Background()))
	task, _, err := submitAs(t, r, "alice", "latch")
	require.NoError(t, err)
	require.Error(t, r.CheckReady(context.Background()), "full")
	l.open(task.ID)
	require.Eventually(t, func() bool { return r.CheckReady(context.Background()) == nil }, 5*time.Second, time.Millisecond)
}

func TestOwnerLimitDefaults(t *testing.T) {
	t.Parallel()
	// A single slot and no queue: one task per owner.
	r, l := setupLatch(t, runner.Config{Concurrency: 1, QueueSize: -1})
	task, _, err := submitAs(t, r, "alice", "latch")
	require.NoError(t, err)
	_, _, err = submitAs(t, r, "alice", "latch")
	require.ErrorIs(t, err, taskbridge.ErrTooManyTasks)
	l.open(task.ID)

	// No per-owner limits: one owner may fill the runner.
	r, l = setupLatch(t, runner.Config{Concurrency: 2, QueueSize: 2, MaxRunningPerOwner: -1, MaxQueuedPerOwner: -1})
	var ids []string
	for range 4 {
		task, _, err := submitAs(t, r, "alice", "latch")
		require.NoError(t, err)
		ids = append(ids, task.ID)
	}
	_, _, err = submitAs(t, r, "alice", "latch")
	require.ErrorIs(t, err, taskbridge.ErrTooManyTasks, "the owner's limit is the runner's")
	for _, id := range ids {
		l.open(id)
	}
}
