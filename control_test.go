package taskbridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
)

// localExecutor is a fakeExecutor that holds the tasks submitted to it, as
// an in-process executor does, and reports Cancel and Resume calls on
// channels.
type localExecutor struct {
	fakeExecutor
	held      sync.Map // task id → struct{}
	cancelled chan taskbridge.Task
	resumed   chan taskbridge.ActionReceipt
	// cancelHook, when set, runs at the start of every Cancel.
	cancelHook func()
}

var _ taskbridge.LocalExecutor = (*localExecutor)(nil)

func newLocalExecutor() *localExecutor {
	l := &localExecutor{
		cancelled: make(chan taskbridge.Task, 100),
		resumed:   make(chan taskbridge.ActionReceipt, 100),
	}
	l.submitHook = func(task taskbridge.Task, _ taskbridge.Emitter) { l.held.Store(task.ID, struct{}{}) }
	return l
}

func (l *localExecutor) Cancel(ctx context.Context, task taskbridge.Task) error {
	if l.cancelHook != nil {
		l.cancelHook()
	}
	if l.Holds(task.ID) {
		l.cancelled <- task
	}
	return l.fakeExecutor.Cancel(ctx, task)
}

func (l *localExecutor) Resume(ctx context.Context, task taskbridge.Task, s taskbridge.Suspension, r taskbridge.ActionReceipt) error {
	if err := l.fakeExecutor.Resume(ctx, task, s, r); err != nil {
		return err
	}
	l.resumed <- r
	return nil
}

func (l *localExecutor) Holds(taskID string) bool {
	_, ok := l.held.Load(taskID)
	return ok
}

func (l *localExecutor) HeldTasks() []string {
	var ids []string
	l.held.Range(func(k, _ any) bool {
		ids = append(ids, k.(string))
		return true
	})
	return ids
}

// manualFeed is a memstore whose control feed is fired by the test only:
// the store's own notifications never reach the watcher, as if they were
// lost.
type manualFeed struct {
	*memstore.Store
	mu     sync.Mutex
	notify func(taskID string)
}

func (m *manualFeed) WatchControl(notify func(taskID string)) func() {
	m.mu.Lock()
	m.notify = notify
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		m.notify = nil
		m.mu.Unlock()
	}
}

func (m *manualFeed) fire(taskID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.notify != nil {
		m.notify(taskID)
	}
}

// newReplica returns a Service over store with exec, shut down when the
// test ends.
func newReplica(t *testing.T, store taskbridge.Store, exec taskbridge.TaskExecutor) *taskbridge.Service {
	t.Helper()
	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: exec, Logger: discardLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Shutdown(context.Background())) })
	return svc
}

func newMemstore(t *testing.T) *memstore.Store {
	t.Helper()
	s := memstore.New(memstore.Config{})
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

func createDemo(t *testing.T, svc *taskbridge.Service, crid string) string {
	t.Helper()
	resp, err := svc.CreateTask(context.Background(), alice, taskbridge.CreateTaskRequest{
		ClientRequestID: crid, TaskType: "demo", Input: json.RawMessage(`{}`),
	})
	require.NoError(t, err)
	return resp.TaskID
}

// suspendedDemo creates a task, starts it and opens suspension "s1" that
// allows action "ok".
func suspendedDemo(t *testing.T, svc *taskbridge.Service, crid string) string {
	t.Helper()
	id := createDemo(t, svc, crid)
	e := svc.Emitter(id)
	_, err := e.Emit(context.Background(), taskbridge.StartedPayload{})
	require.NoError(t, err)
	_, err = e.Suspend(context.Background(), taskbridge.SuspendOpts{SuspendID: "s1", ReasonCode: "R", AllowedActions: []string{"ok"}})
	require.NoError(t, err)
	return id
}

func TestControlRelayCancel(t *testing.T) {
	t.Parallel()
	store := newMemstore(t)
	execA, execB := newLocalExecutor(), newLocalExecutor()
	a, b := newReplica(t, store, execA), newReplica(t, store, execB)
	id := createDemo(t, a, "c1")

	resp, err := b.CancelTask(context.Background(), alice, id, taskbridge.CancelRequest{Reason: "stop"})
	require.NoError(t, err)
	require.Equal(t, taskbridge.CancelRequested, resp.Status)
	got := receive(t, execA.cancelled, "the cancel to reach the process holding the task")
	require.Equal(t, id, got.ID)
	require.True(t, got.CancelRequested)
	require.Equal(t, "stop", got.CancelReason)
	require.Equal(t, 1, execB.cancels(), "the receiving service still tells its own executor, which ignores it")
	require.Empty(t, execB.cancelled)
}

func TestControlRelayResume(t *testing.T) {
	t.Parallel()
	store := newMemstore(t)
	execA, execB := newLocalExecutor(), newLocalExecutor()
	a, b := newReplica(t, store, execA), newReplica(t, store, execB)
	id := suspendedDemo(t, a, "c1")
	resp, err := b.SubmitAction(context.Background(), alice, id, taskbridge.ActionRequest{
		ClientActionID: "act-1", SuspendID: "s1", ActionType: "ok",
	})
	require.NoError(t, err)
	require.Equal(t, taskbridge.ActionAccepted, resp.Status)
	rec := receive(t, execA.resumed, "the action to reach the process holding the task")
	require.Equal(t, "act-1", rec.ClientActionID)
	require.Empty(t, execB.resumes(), "the service that accepted the action leaves the resume to the holder")

	// Shutdown waits for the relay, which records the hand-off after
	// Resume returned.
	require.NoError(t, a.Shutdown(context.Background()))
	sus, err := store.GetSuspension(context.Background(), id, "s1")
	require.NoError(t, err)
	require.Equal(t, taskbridge.ResumeDispatched, sus.ResumeStatus)
}

func TestControlRelayLookAtEverythingAfterGap(t *testing.T) {
	t.Parallel()
	store := &manualFeed{Store: newMemstore(t)}
	exec := newLocalExecutor()
	svc := newReplica(t, store, exec)
	cancelled := createDemo(t, svc, "c1")
	running := createDemo(t, svc, "c2")
	_, _, err := store.RequestCancel(context.Background(), cancelled, "lost", time.Now())
	require.NoError(t, err)
	require.Empty(t, exec.cancelled, "the feed lost the notification")

	store.fire("") // the feed reconnected: anything may have changed
	got := receive(t, exec.cancelled, "the cancel after a gap in the feed")
	require.Equal(t, cancelled, got.ID)
	require.NoError(t, svc.Shutdown(context.Background()))
	require.Empty(t, exec.cancelled, "%s has no cancel request", running)
}

// A cancel recorded by another process between the task's creation and its
// submission reaches the executor although no notification found it.
func TestControlRelayChecksNewTask(t *testing.T) {
	t.Parallel()
	store := &manualFeed{Store: newMemstore(t)}
	exec := newLocalExecutor()
	exec.submitHook = func(task taskbridge.Task, _ taskbridge.Emitter) {
		_, _, err := store.RequestCancel(context.Background(), task.ID, "early", time.Now())
		if err != nil {
			panic(err)
		}
		exec.held.Store(task.ID, struct{}{})
	}
	svc := newReplica(t, store, exec)
	id := createDemo(t, svc, "c1")
	got := receive(t, exec.cancelled, "the cancel recorded during submission")
	require.Equal(t, id, got.ID)
	require.Equal(t, "early", got.CancelReason)
}

func TestControlRelayCoalesces(t *testing.T) {
	t.Parallel()
	store := &manualFeed{Store: newMemstore(t)}
	exec := newLocalExecutor()
	block := make(chan struct{})
	var once sync.Once
	entered := make(chan struct{})
	exec.cancelHook = func() {
		once.Do(func() { close(entered) })
		<-block
	}
	svc := newReplica(t, store, exec)
	id := createDemo(t, svc, "c1")
	_, _, err := store.RequestCancel(context.Background(), id, "", time.Now())
	require.NoError(t, err)
	store.fire(id)
	receive(t, entered, "the relay to call Cancel")
	for range 1000 {
		store.fire(id) // must not block while the relay is busy
	}
	close(block)
	receive(t, exec.cancelled, "the first cancel")
	require.NoError(t, svc.Shutdown(context.Background()))
	require.LessOrEqual(t, exec.cancels(), 3, "a burst of notifications is coalesced")
}

func TestReconcileSkipsTasksHeldElsewhere(t *testing.T) {
	t.Parallel()
	store := newMemstore(t)
	exec := newLocalExecutor()
	exec.resumeErr = func(string) error { return fmt.Errorf("not now") }
	svc := newReplica(t, store, exec)
	id := suspendedDemo(t, svc, "c1")
	_, err := svc.SubmitAction(context.Background(), alice, id, taskbridge.ActionRequest{ClientActionID: "a1", SuspendID: "s1", ActionType: "ok"})
	require.NoError(t, err)

	rep, err := svc.Reconcile(context.Background())
	require.NoError(t, err)
	require.Equal(t, taskbridge.ReconcileReport{Failed: 1}, rep, "a held task is retried")

	exec.held.Delete(id) // now another process runs it
	rep, err = svc.Reconcile(context.Background())
	require.NoError(t, err)
	require.Equal(t, taskbridge.ReconcileReport{Skipped: 1}, rep)

	_, err = svc.Emitter(id).Emit(context.Background(), taskbridge.FailedPayload{Code: "X", Message: "x"})
	require.NoError(t, err)
	rep, err = svc.Reconcile(context.Background())
	require.NoError(t, err)
	require.Equal(t, taskbridge.ReconcileReport{Dispatched: 1}, rep, "a terminal task's hand-off is closed wherever it ran")
}

func TestNoControlRelayWithoutLocalExecutor(t *testing.T) {
	t.Parallel()
	store := newMemstore(t)
	exec := &fakeExecutor{}
	svc := newReplica(t, store, exec)
	id := createDemo(t, svc, "c1")
	_, err := svc.CancelTask(context.Background(), alice, id, taskbridge.CancelRequest{})
	require.NoError(t, err)
	require.NoError(t, svc.Shutdown(context.Background()))
	require.Equal(t, 1, exec.cancels(), "only the direct call: no relay")
}
