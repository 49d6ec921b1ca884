package taskbridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
)

// fakeExecutor records what the service asks of it.
type fakeExecutor struct {
	mu         sync.Mutex
	submitted  []taskbridge.Task
	emitters   map[string]taskbridge.Emitter
	cancelled  []taskbridge.Task
	resumed    []taskbridge.ActionReceipt
	submitErr  error
	resumeErr  func(taskID string) error
	validate   func(req taskbridge.CreateTaskRequest) error
	submitHook func(task taskbridge.Task, e taskbridge.Emitter)
}

var (
	_ taskbridge.TaskExecutor  = (*fakeExecutor)(nil)
	_ taskbridge.Resumer       = (*fakeExecutor)(nil)
	_ taskbridge.TaskValidator = (*fakeExecutor)(nil)
)

func (f *fakeExecutor) Submit(_ context.Context, task taskbridge.Task, e taskbridge.Emitter) error {
	f.mu.Lock()
	if f.submitErr != nil {
		f.mu.Unlock()
		return f.submitErr
	}
	f.submitted = append(f.submitted, task)
	if f.emitters == nil {
		f.emitters = map[string]taskbridge.Emitter{}
	}
	f.emitters[task.ID] = e
	hook := f.submitHook
	f.mu.Unlock()
	if hook != nil {
		hook(task, e)
	}
	return nil
}

func (f *fakeExecutor) Cancel(_ context.Context, task taskbridge.Task) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancelled = append(f.cancelled, task)
	return nil
}

func (f *fakeExecutor) Resume(_ context.Context, task taskbridge.Task, _ taskbridge.Suspension, r taskbridge.ActionReceipt) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.resumeErr != nil {
		if err := f.resumeErr(task.ID); err != nil {
			return err
		}
	}
	f.resumed = append(f.resumed, r)
	return nil
}

func (f *fakeExecutor) ValidateTask(_ context.Context, req taskbridge.CreateTaskRequest) error {
	if f.validate != nil {
		return f.validate(req)
	}
	return nil
}

func (f *fakeExecutor) submits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.submitted)
}

func (f *fakeExecutor) cancels() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.cancelled)
}

func (f *fakeExecutor) resumes() []taskbridge.ActionReceipt {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]taskbridge.ActionReceipt(nil), f.resumed...)
}

// testClock is a settable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type env struct {
	svc     *taskbridge.Service
	store   *memstore.Store
	exec    *fakeExecutor
	metrics *taskbridge.MemoryMetrics
	clock   *testClock
}

var (
	alice = taskbridge.AuthContext{Subject: "alice"}
	bob   = taskbridge.AuthContext{Subject: "bob"}
)

type envOpt func(*taskbridge.Config, *memstore.Config)

func setup(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	e := &env{
		exec:    &fakeExecutor{},
		metrics: &taskbridge.MemoryMetrics{},
		clock:   &testClock{now: time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)},
	}
	cfg := taskbridge.Config{
		Executor: e.exec,
		Metrics:  e.metrics,
		Logger:   slog.New(slog.DiscardHandler),
		Now:      e.clock.Now,
	}
	var mcfg memstore.Config
	for _, o := range opts {
		o(&cfg, &mcfg)
	}
	e.store = memstore.New(mcfg)
	cfg.Store = e.store
	svc, err := taskbridge.New(cfg)
	require.NoError(t, err)
	e.svc = svc
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, svc.Shutdown(ctx))
		require.NoError(t, e.store.Close())
	})
	return e
}

func (e *env) create(t *testing.T, who taskbridge.AuthContext, crid string) string {
	t.Helper()
	resp, err := e.svc.CreateTask(context.Background(), who, taskbridge.CreateTaskRequest{
		ClientRequestID: crid, TaskType: "demo", Input: json.RawMessage(`{"n":1}`),
	})
	require.NoError(t, err)
	return resp.TaskID
}

func (e *env) emit(t *testing.T, taskID string, p taskbridge.Payload) taskbridge.TaskEvent {
	t.Helper()
	ev, err := e.svc.Emitter(taskID).Emit(context.Background(), p)
	require.NoError(t, err)
	return ev
}

// started creates a task and emits TASK_STARTED.
func (e *env) started(t *testing.T, who taskbridge.AuthContext, crid string) string {
	t.Helper()
	id := e.create(t, who, crid)
	e.emit(t, id, taskbridge.StartedPayload{Message: "go"})
	return id
}

func TestCreateTask(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("created then deduplicated", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		req := taskbridge.CreateTaskRequest{ClientRequestID: "c1", TaskType: "demo",
			Input: json.RawMessage(`{"a":1,"b":[1,2]}`), Metadata: json.RawMessage(`{"trace":"x"}`)}
		first, err := e.svc.CreateTask(ctx, alice, req)
		require.NoError(t, err)
		require.False(t, first.Deduplicated)
		require.Equal(t, taskbridge.StatusAccepted, first.Status)
		require.True(t, taskbridge.ValidTaskID(first.TaskID))

		// Same logical request: key order, spacing and metadata do not matter.
		req.Input = json.RawMessage(` { "b" : [1, 2], "a" : 1 } `)
		req.Metadata = json.RawMessage(`{"trace":"y"}`)
		again, err := e.svc.CreateTask(ctx, alice, req)
		require.NoError(t, err)
		require.True(t, again.Deduplicated)
		require.Equal(t, first.TaskID, again.TaskID)

		require.Equal(t, 1, e.exec.submits())
		require.EqualValues(t, 1, e.metrics.Value(taskbridge.MetricTaskStarts))
		require.EqualValues(t, 1, e.metrics.Value(taskbridge.MetricDuplicates))

		// Another owner with the same clientRequestId gets its own task.
		other, err := e.svc.CreateTask(ctx, bob, req)
		require.NoError(t, err)
		require.False(t, other.Deduplicated)
		require.NotEqual(t, first.TaskID, other.TaskID)
	})

	t.Run("conflict", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		_, err := e.svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: "c1", TaskType: "demo", Input: json.RawMessage(`{"a":1}`)})
		require.NoError(t, err)
		_, err = e.svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: "c1", TaskType: "demo", Input: json.RawMessage(`{"a":2}`)})
		require.ErrorIs(t, err, taskbridge.ErrIdempotencyConflict)
		_, err = e.svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: "c1", TaskType: "other", Input: json.RawMessage(`{"a":1}`)})
		require.ErrorIs(t, err, taskbridge.ErrIdempotencyConflict)
		_, err = e.svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: "c1", TaskType: "demo", Input: json.RawMessage(`{"a":1}`),
			Attachments: []taskbridge.Attachment{{Field: "attachments", Filename: "a.txt", Size: 1, SHA256: "00"}}})
		require.ErrorIs(t, err, taskbridge.ErrIdempotencyConflict)
		require.Equal(t, 1, e.exec.submits())
	})

	t.Run("concurrent identical creates yield one task", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		const n = 100
		ids := make([]string, n)
		var created atomic.Int32
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := e.svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: "same", TaskType: "demo"})
				if err != nil {
					t.Error(err)
					return
				}
				if !resp.Deduplicated {
					created.Add(1)
				}
				ids[i] = resp.TaskID
			}()
		}
		wg.Wait()
		require.EqualValues(t, 1, created.Load())
		for _, id := range ids {
			require.Equal(t, ids[0], id)
		}
		require.Equal(t, 1, e.exec.submits())
	})

	t.Run("validation", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		_, err := e.svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{Input: json.RawMessage(`[1]`), Metadata: json.RawMessage(`"x"`)})
		var verr *taskbridge.ValidationError
		require.ErrorAs(t, err, &verr)
		var fields []string
		for _, f := range verr.Fields {
			fields = append(fields, f.Field)
		}
		require.ElementsMatch(t, []string{"clientRequestId", "taskType", "input", "metadata"}, fields)
		_, err = e.svc.CreateTask(ctx, taskbridge.AuthContext{}, taskbridge.CreateTaskRequest{ClientRequestID: "c", TaskType: "t"})
		require.ErrorIs(t, err, taskbridge.ErrUnauthenticated)
		require.Zero(t, e.exec.submits())
	})

	t.Run("denied by policy", func(t *testing.T) {
		t.Parallel()
		e := setup(t, func(c *taskbridge.Config, _ *memstore.Config) { c.Ownership = denyCreate{} })
		_, err := e.svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: "c", TaskType: "t"})
		require.ErrorIs(t, err, taskbridge.ErrTaskOwnership)
		status, code, _ := taskbridge.HTTPError(err)
		require.Equal(t, 403, status)
		require.Equal(t, taskbridge.CodeTaskOwnership, code)
	})

	t.Run("rejected by executor validation", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.exec.validate = func(req taskbridge.CreateTaskRequest) error {
			return fmt.Errorf("unknown task type %q", req.TaskType)
		}
		_, err := e.svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: "c", TaskType: "nope"})
		require.ErrorIs(t, err, taskbridge.ErrInvalidRequest)
		list, err := e.svc.ListTasks(ctx, alice, taskbridge.ListTasksRequest{})
		require.NoError(t, err)
		require.Empty(t, list.Tasks)
	})

	t.Run("submission failure fails the task with an event", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.exec.submitErr = errors.New("queue full")
		_, err := e.svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: "c", TaskType: "t"})
		require.ErrorIs(t, err, taskbridge.ErrSubmission)
		status, code, msg := taskbridge.HTTPError(err)
		require.Equal(t, 503, status)
		require.Equal(t, taskbridge.CodeSubmission, code)
		require.NotContains(t, msg, "queue full")

		list, err := e.svc.ListTasks(ctx, alice, taskbridge.ListTasksRequest{})
		require.NoError(t, err)
		require.Len(t, list.Tasks, 1)
		require.Equal(t, taskbridge.StatusFailed, list.Tasks[0].Status)
		poll, err := e.svc.PollEvents(ctx, alice, list.Tasks[0].TaskID, taskbridge.PollRequest{})
		require.NoError(t, err)
		require.Len(t, poll.Events, 1)
		require.Equal(t, taskbridge.EventTaskFailed, poll.Events[0].Type)
		validateEvents(t, poll.Events...)
		require.EqualValues(t, 1, e.metrics.Value(taskbridge.MetricTaskFailures))
		require.Zero(t, e.metrics.Value(taskbridge.MetricTaskStarts))

		// A stream of the task terminates.
		sub, err := e.svc.Subscribe(ctx, alice, list.Tasks[0].TaskID, "")
		require.NoError(t, err)
		defer sub.Close()
		events := collect(t, sub)
		require.Len(t, events, 1)
		require.True(t, events[0].Terminal())
	})
}

type denyCreate struct{ taskbridge.OwnerOnly }

func (denyCreate) CanCreate(context.Context, taskbridge.AuthContext, taskbridge.CreateTaskRequest) error {
	return taskbridge.ErrAccessDenied
}

func TestPollEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("paging", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		id := e.started(t, alice, "c")
		for i := range 11 {
			e.emit(t, id, taskbridge.ProgressPayload{Progress: float64(i * 10)})
		}
		// 12 events: ids 1..12.
		var seen []string
		cursor := ""
		for {
			resp, err := e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{AfterEventID: cursor, MaxEvents: 5})
			require.NoError(t, err)
			validateEvents(t, resp.Events...)
			for _, ev := range resp.Events {
				seen = append(seen, ev.EventID)
			}
			require.NotNil(t, resp.NextAfterEventID)
			cursor = *resp.NextAfterEventID
			if !resp.HasMore {
				break
			}
		}
		require.Equal(t, []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"}, seen)

		// Strictly after "9" (which sorts after "10" as a string).
		resp, err := e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{AfterEventID: "9"})
		require.NoError(t, err)
		require.Len(t, resp.Events, 3)
		require.Equal(t, "10", resp.Events[0].EventID)
		require.False(t, resp.HasMore)

		// Caught up: the cursor is echoed.
		resp, err = e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{AfterEventID: "12"})
		require.NoError(t, err)
		require.Empty(t, resp.Events)
		require.NotNil(t, resp.Events, "events must encode as [] not null")
		require.Equal(t, "12", *resp.NextAfterEventID)
		require.EqualValues(t, 4, e.metrics.Value(taskbridge.MetricReplays), "polls with a cursor count as replays")
	})

	t.Run("empty task from start", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		id := e.create(t, alice, "c")
		resp, err := e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{})
		require.NoError(t, err)
		require.Empty(t, resp.Events)
		require.Nil(t, resp.NextAfterEventID)
		require.False(t, resp.HasMore)
	})

	t.Run("cursor errors", func(t *testing.T) {
		t.Parallel()
		e := setup(t, func(_ *taskbridge.Config, m *memstore.Config) { m.MaxEventsPerTask = 3 })
		id := e.started(t, alice, "c")
		for range 5 {
			e.emit(t, id, taskbridge.MessagePayload{Message: "m"})
		}
		for _, bad := range []string{"abc", "-1", "01", "1-0", "99"} {
			_, err := e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{AfterEventID: bad})
			require.ErrorIs(t, err, taskbridge.ErrInvalidCursor, bad)
			status, code, _ := taskbridge.HTTPError(err)
			require.Equal(t, 400, status)
			require.Equal(t, taskbridge.CodeInvalidRequest, code)
		}
		// Events 1..3 were trimmed (6 appended, 3 kept): cursor 1 lost 2 and 3.
		_, err := e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{AfterEventID: "1"})
		require.ErrorIs(t, err, taskbridge.ErrEventsExpired)
		status, code, _ := taskbridge.HTTPError(err)
		require.Equal(t, 410, status)
		require.Equal(t, taskbridge.CodeEventsExpired, code)
		// Cursor 3 is the boundary: 4..6 are all retained.
		resp, err := e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{AfterEventID: "3"})
		require.NoError(t, err)
		require.Len(t, resp.Events, 3)
		// From the start means from the oldest retained event.
		resp, err = e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{})
		require.NoError(t, err)
		require.Equal(t, "4", resp.Events[0].EventID)
	})

	t.Run("parameter validation", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		id := e.create(t, alice, "c")
		_, err := e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{MaxEvents: 501, WaitTimeout: 61 * time.Second})
		var verr *taskbridge.ValidationError
		require.ErrorAs(t, err, &verr)
		require.Len(t, verr.Fields, 2)
		_, err = e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{MaxEvents: -1})
		require.ErrorAs(t, err, &verr)
	})

	t.Run("long poll is woken by an append", func(t *testing.T) {
		t.Parallel()
		watched := make(chan struct{}, 1)
		e := setup(t)
		id := e.started(t, alice, "c")
		e.svc = mustService(t, e, func(c *taskbridge.Config) {
			c.Store = watchSignal{Store: e.store, watched: watched}
		})
		type result struct {
			resp taskbridge.PollResponse
			err  error
		}
		done := make(chan result, 1)
		go func() {
			resp, err := e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{AfterEventID: "1", WaitTimeout: time.Minute})
			done <- result{resp, err}
		}()
		<-watched // the poll found nothing and is waiting
		e.emit(t, id, taskbridge.MessagePayload{Message: "hello"})
		r := <-done
		require.NoError(t, r.err)
		require.Len(t, r.resp.Events, 1)
		require.Equal(t, "2", r.resp.Events[0].EventID)
	})

	t.Run("long poll times out empty", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		id := e.started(t, alice, "c")
		resp, err := e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{AfterEventID: "1", WaitTimeout: 20 * time.Millisecond})
		require.NoError(t, err)
		require.Empty(t, resp.Events)
		require.Equal(t, "1", *resp.NextAfterEventID)
	})

	t.Run("long poll at the end of a finished task waits its timeout", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		id := e.started(t, alice, "c")
		e.emit(t, id, taskbridge.CompletedPayload{Result: nil})
		// Before the terminal event: answered at once.
		resp, err := e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{AfterEventID: "1", WaitTimeout: time.Minute})
		require.NoError(t, err)
		require.Equal(t, []string{"2"}, []string{resp.Events[0].EventID})
		// At it: the poll waits like any other, then answers an empty page.
		start := time.Now()
		resp, err = e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{AfterEventID: "2", MaxEvents: 100, WaitTimeout: 300 * time.Millisecond})
		require.NoError(t, err)
		require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "a client resuming at the end must not spin")
		require.Empty(t, resp.Events)
		require.False(t, resp.HasMore)
		require.Equal(t, "2", *resp.NextAfterEventID)
		// Without a wait it answers at once.
		resp, err = e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{AfterEventID: "2"})
		require.NoError(t, err)
		require.Empty(t, resp.Events)
	})

	t.Run("shutdown ends a long poll at the end of a finished task", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		id := e.started(t, alice, "c")
		e.emit(t, id, taskbridge.CompletedPayload{Result: nil})
		read := make(chan struct{}, 1)
		e.svc = mustService(t, e, func(c *taskbridge.Config) {
			c.Store = readSignal{Store: e.store, read: read}
		})
		done := make(chan error, 1)
		go func() {
			_, err := e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{AfterEventID: "2", WaitTimeout: taskbridge.MaxWaitTimeout})
			done <- err
		}()
		select {
		case <-read: // the poll found nothing after its cursor
		case err := <-done:
			t.Fatalf("the poll returned before shutdown: %v", err)
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		require.NoError(t, e.svc.Shutdown(sctx))
		select {
		case err := <-done:
			require.ErrorIs(t, err, taskbridge.ErrClosed)
		case <-sctx.Done():
			t.Fatal("the poll outlived shutdown")
		}
	})

	t.Run("long poll ends with the caller", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		id := e.started(t, alice, "c")
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{AfterEventID: "1", WaitTimeout: time.Minute})
		require.ErrorIs(t, err, context.Canceled)
	})
}

// readSignal reports each read of an event log.
type readSignal struct {
	taskbridge.Store
	read chan struct{}
}

func (r readSignal) Read(ctx context.Context, taskID string, after int64, limit int) ([]taskbridge.TaskEvent, error) {
	evs, err := r.Store.Read(ctx, taskID, after, limit)
	select {
	case r.read <- struct{}{}:
	default:
	}
	return evs, err
}

// watchSignal reports when the service starts watching a task.
type watchSignal struct {
	taskbridge.Store
	watched chan struct{}
}

func (w watchSignal) Watch(taskID string, notify func()) func() {
	stop := w.Store.Watch(taskID, notify)
	select {
	case w.watched <- struct{}{}:
	default:
	}
	return stop
}

// mustService builds a second service over e's store and executor.
func mustService(t *testing.T, e *env, mod func(*taskbridge.Config)) *taskbridge.Service {
	t.Helper()
	cfg := taskbridge.Config{Store: e.store, Executor: e.exec, Metrics: e.metrics,
		Logger: slog.New(slog.DiscardHandler), Now: e.clock.Now}
	mod(&cfg)
	svc, err := taskbridge.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Shutdown(context.Background())) })
	return svc
}

func TestCancelTask(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	id := e.started(t, alice, "c")

	resp, err := e.svc.CancelTask(ctx, alice, id, taskbridge.CancelRequest{Reason: "user_closed_app"})
	require.NoError(t, err)
	require.Equal(t, taskbridge.CancelRequested, resp.Status)
	resp, err = e.svc.CancelTask(ctx, alice, id, taskbridge.CancelRequest{Reason: "second"})
	require.NoError(t, err)
	require.Equal(t, taskbridge.CancelRequested, resp.Status)
	require.Equal(t, 1, e.exec.cancels(), "the executor is told once")
	require.Equal(t, "user_closed_app", e.exec.cancelled[0].CancelReason)
	require.True(t, e.exec.cancelled[0].CancelRequested)
	require.EqualValues(t, 1, e.metrics.Value(taskbridge.MetricCancels))

	e.emit(t, id, taskbridge.CancelledPayload{Reason: "user_closed_app"})
	resp, err = e.svc.CancelTask(ctx, alice, id, taskbridge.CancelRequest{})
	require.NoError(t, err)
	require.Equal(t, taskbridge.CancelAlreadyTerminal, resp.Status)
	require.Equal(t, 1, e.exec.cancels(), "terminal tasks never reach the executor")

	done := e.started(t, alice, "d")
	e.emit(t, done, taskbridge.CompletedPayload{Result: map[string]int{"n": 1}})
	resp, err = e.svc.CancelTask(ctx, alice, done, taskbridge.CancelRequest{})
	require.NoError(t, err)
	require.Equal(t, taskbridge.CancelAlreadyTerminal, resp.Status)
	require.Equal(t, 1, e.exec.cancels())
}

func TestNonOwnersGetNotFound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	id := e.started(t, alice, "c")
	sus, err := e.svc.Emitter(id).Suspend(ctx, taskbridge.SuspendOpts{ReasonCode: "r", AllowedActions: []string{"ok"}})
	require.NoError(t, err)

	checks := map[string]error{}
	_, checks["poll"] = e.svc.PollEvents(ctx, bob, id, taskbridge.PollRequest{})
	_, checks["cancel"] = e.svc.CancelTask(ctx, bob, id, taskbridge.CancelRequest{})
	_, checks["get"] = e.svc.GetTask(ctx, bob, id)
	_, checks["subscribe"] = e.svc.Subscribe(ctx, bob, id, "")
	_, checks["action"] = e.svc.SubmitAction(ctx, bob, id, taskbridge.ActionRequest{ClientActionID: "a", SuspendID: sus.SuspendID, ActionType: "ok"})
	_, checks["unknown"] = e.svc.GetTask(ctx, alice, "00000000-0000-0000-0000-000000000000")
	_, checks["malformed"] = e.svc.GetTask(ctx, alice, "../etc/passwd")
	for name, err := range checks {
		require.ErrorIs(t, err, taskbridge.ErrTaskNotFound, name)
		status, code, _ := taskbridge.HTTPError(err)
		require.Equal(t, 404, status, name)
		require.Equal(t, taskbridge.CodeTaskNotFound, code, name)
	}
	require.Zero(t, e.exec.cancels())

	list, err := e.svc.ListTasks(ctx, bob, taskbridge.ListTasksRequest{})
	require.NoError(t, err)
	require.Empty(t, list.Tasks)
}

func TestEmitterEnforcesProtocol(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	id := e.create(t, alice, "c")
	em := e.svc.Emitter(id)
	require.Equal(t, id, em.TaskID())

	_, err := em.Emit(ctx, taskbridge.ProgressPayload{Progress: 5})
	require.ErrorIs(t, err, taskbridge.ErrInvalidTransition, "progress before started")
	_, err = em.Suspend(ctx, taskbridge.SuspendOpts{ReasonCode: "r", AllowedActions: []string{"a"}})
	require.ErrorIs(t, err, taskbridge.ErrInvalidTransition, "suspend before started")

	e.emit(t, id, taskbridge.StartedPayload{})
	_, err = em.Emit(ctx, taskbridge.StartedPayload{})
	require.ErrorIs(t, err, taskbridge.ErrInvalidTransition, "started twice")
	_, err = em.Emit(ctx, taskbridge.ProgressPayload{Progress: 101})
	require.ErrorIs(t, err, taskbridge.ErrInvalidEvent)
	_, err = em.Emit(ctx, taskbridge.MessagePayload{Message: "m", Level: "loud"})
	require.ErrorIs(t, err, taskbridge.ErrInvalidEvent)
	_, err = em.Emit(ctx, taskbridge.SuspendedPayload{})
	require.ErrorIs(t, err, taskbridge.ErrInvalidEvent, "suspensions go through Suspend")
	_, err = em.Emit(ctx, taskbridge.ActionAcceptedPayload{})
	require.ErrorIs(t, err, taskbridge.ErrInvalidEvent)
	_, err = em.Emit(ctx, taskbridge.CancelledPayload{})
	require.ErrorIs(t, err, taskbridge.ErrInvalidEvent, "reason is required")
	_, err = em.Emit(ctx, nil)
	require.ErrorIs(t, err, taskbridge.ErrInvalidEvent)

	sus, err := em.Suspend(ctx, taskbridge.SuspendOpts{SuspendID: "s1", ReasonCode: "r", AllowedActions: []string{"a"},
		TTL: time.Minute, Interaction: map[string]any{"question": "ok?"}})
	require.NoError(t, err)
	require.Equal(t, taskbridge.SuspensionOpen, sus.Status)
	require.Equal(t, taskbridge.KindUserActionRequired, sus.Kind)
	require.Equal(t, 1, sus.SchemaVersion)
	require.Equal(t, e.clock.Now().Add(time.Minute), *sus.ExpiresAt)
	_, err = em.Suspend(ctx, taskbridge.SuspendOpts{SuspendID: "s1", ReasonCode: "r", AllowedActions: []string{"a"}})
	require.ErrorIs(t, err, taskbridge.ErrDuplicateSuspension)
	_, _, err = em.CloseSuspension(ctx, "s1", taskbridge.SuspensionResolved)
	require.ErrorIs(t, err, taskbridge.ErrInvalidTransition)

	e.emit(t, id, taskbridge.MessagePayload{Message: "working", Level: taskbridge.LevelInfo})
	e.emit(t, id, taskbridge.FailedPayload{Code: "BOOM", Message: "it broke"})
	_, err = em.Emit(ctx, taskbridge.CompletedPayload{})
	require.ErrorIs(t, err, taskbridge.ErrTaskTerminal, "one terminal event only")
	_, err = em.Emit(ctx, taskbridge.MessagePayload{Message: "late"})
	require.ErrorIs(t, err, taskbridge.ErrTaskTerminal)
	require.EqualValues(t, 1, e.metrics.Value(taskbridge.MetricTaskFailures))

	// The terminal event cancelled the open suspension.
	got, err := e.store.GetSuspension(ctx, id, "s1")
	require.NoError(t, err)
	require.Equal(t, taskbridge.SuspensionCancelled, got.Status)

	resp, err := e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{})
	require.NoError(t, err)
	var types []taskbridge.EventType
	for _, ev := range resp.Events {
		types = append(types, ev.Type)
	}
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskSuspended,
		taskbridge.EventTaskMessage, taskbridge.EventTaskFailed}, types)
	validateEvents(t, resp.Events...)
}

func TestGetAndListTasks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	var ids []string
	for i := range 5 {
		ids = append(ids, e.create(t, alice, fmt.Sprintf("c%d", i)))
		e.clock.Advance(time.Second)
	}
	e.create(t, bob, "bobs")
	e.emit(t, ids[1], taskbridge.StartedPayload{})
	e.emit(t, ids[1], taskbridge.CompletedPayload{Result: 1})
	e.emit(t, ids[2], taskbridge.StartedPayload{})
	sus, err := e.svc.Emitter(ids[2]).Suspend(ctx, taskbridge.SuspendOpts{ReasonCode: "approval_required", AllowedActions: []string{"approve"}})
	require.NoError(t, err)

	snap, err := e.svc.GetTask(ctx, alice, ids[2])
	require.NoError(t, err)
	require.Equal(t, taskbridge.StatusRunning, snap.Status)
	require.Equal(t, "demo", snap.TaskType)
	require.Equal(t, "c2", snap.ClientRequestID)
	require.Equal(t, "2", *snap.LastEventID)
	require.NotNil(t, snap.Suspension)
	require.Equal(t, sus.SuspendID, snap.Suspension.SuspendID)

	snap, err = e.svc.GetTask(ctx, alice, ids[0])
	require.NoError(t, err)
	require.Nil(t, snap.LastEventID)
	require.Nil(t, snap.Suspension)

	// Newest first, two per page.
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 5)
		list, err := e.svc.ListTasks(ctx, alice, taskbridge.ListTasksRequest{Limit: 2, Cursor: cursor})
		require.NoError(t, err)
		for _, s := range list.Tasks {
			got = append(got, s.TaskID)
		}
		if list.NextCursor == nil {
			break
		}
		cursor = *list.NextCursor
	}
	require.Equal(t, []string{ids[4], ids[3], ids[2], ids[1], ids[0]}, got)

	list, err := e.svc.ListTasks(ctx, alice, taskbridge.ListTasksRequest{Statuses: []taskbridge.TaskStatus{taskbridge.StatusCompleted, taskbridge.StatusRunning}})
	require.NoError(t, err)
	require.Len(t, list.Tasks, 2)
	require.Equal(t, ids[2], list.Tasks[0].TaskID)
	require.Equal(t, ids[1], list.Tasks[1].TaskID)

	_, err = e.svc.ListTasks(ctx, alice, taskbridge.ListTasksRequest{Cursor: "not-a-cursor"})
	require.ErrorIs(t, err, taskbridge.ErrInvalidRequest)
	var verr *taskbridge.ValidationError
	_, err = e.svc.ListTasks(ctx, alice, taskbridge.ListTasksRequest{Limit: 101, Statuses: []taskbridge.TaskStatus{"DONE"}})
	require.ErrorAs(t, err, &verr)
	require.Len(t, verr.Fields, 2)
}

func TestShutdownRejectsCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	id := e.create(t, alice, "c")
	require.NoError(t, e.svc.Shutdown(ctx))
	require.NoError(t, e.svc.Shutdown(ctx), "twice is fine")
	_, err := e.svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: "x", TaskType: "t"})
	require.ErrorIs(t, err, taskbridge.ErrClosed)
	_, err = e.svc.Subscribe(ctx, alice, id, "")
	require.ErrorIs(t, err, taskbridge.ErrClosed)
	require.Error(t, e.svc.Readiness().CheckReady(ctx))
}

func TestSuspendRefusesIDsClientsCannotSend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	id := e.started(t, alice, "c")
	for _, opts := range []taskbridge.SuspendOpts{
		{SuspendID: "s\x00", AllowedActions: []string{"approve"}},
		{SuspendID: "s\u0085", AllowedActions: []string{"approve"}},
		{SuspendID: "s\xff", AllowedActions: []string{"approve"}},
		{SuspendID: strings.Repeat("s", 256), AllowedActions: []string{"approve"}},
		{SuspendID: "s1", AllowedActions: []string{"approve", "re\nject"}},
	} {
		opts.ReasonCode = "NEEDS_APPROVAL"
		_, err := e.svc.Emitter(id).Suspend(ctx, opts)
		require.ErrorIs(t, err, taskbridge.ErrInvalidEvent, "%q %q", opts.SuspendID, opts.AllowedActions)
	}
	sus, err := e.store.ListSuspensions(ctx, id)
	require.NoError(t, err)
	require.Empty(t, sus, "nothing was opened")
	_, err = e.svc.Emitter(id).Suspend(ctx, taskbridge.SuspendOpts{SuspendID: "s1", ReasonCode: "NEEDS_APPROVAL", AllowedActions: []string{"approve"}})
	require.NoError(t, err)
}
