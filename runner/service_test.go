package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/runner"
)

var alice = taskbridge.AuthContext{Subject: "alice"}

// stack is a Service over a memstore with a Runner as its executor.
type stack struct {
	svc   *taskbridge.Service
	r     *runner.Runner
	store *memstore.Store
}

// newStack builds a stack; the runner, service and store are shut down in
// that order when the test ends.
func newStack(t *testing.T, store *memstore.Store, cfg runner.Config) *stack {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	r, err := runner.New(cfg)
	require.NoError(t, err)
	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: r, Logger: quietLogger()})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, r.Shutdown(ctx))
		require.NoError(t, svc.Shutdown(ctx))
	})
	return &stack{svc: svc, r: r, store: store}
}

func setupService(t *testing.T, cfg runner.Config) *stack {
	t.Helper()
	store := memstore.New(memstore.Config{})
	t.Cleanup(func() { _ = store.Close() })
	return newStack(t, store, cfg)
}

func (s *stack) create(t *testing.T, taskType string) string {
	t.Helper()
	resp, err := s.svc.CreateTask(context.Background(), alice, taskbridge.CreateTaskRequest{
		ClientRequestID: fmt.Sprintf("req-%d", taskSeq.Add(1)), TaskType: taskType,
	})
	require.NoError(t, err)
	return resp.TaskID
}

// pollUntil long-polls the task's events until cond holds (or the task is
// terminal), checking each event against the protocol schema.
func (s *stack) pollUntil(t *testing.T, taskID string, cond func([]taskbridge.TaskEvent) bool) []taskbridge.TaskEvent {
	t.Helper()
	var evs []taskbridge.TaskEvent
	after := ""
	deadline := time.Now().Add(10 * time.Second)
	for !cond(evs) && (len(evs) == 0 || !evs[len(evs)-1].Terminal()) {
		require.True(t, time.Now().Before(deadline), "timed out; events so far: %v", typesOf(evs))
		resp, err := s.svc.PollEvents(context.Background(), alice, taskID,
			taskbridge.PollRequest{AfterEventID: after, WaitTimeout: time.Second})
		require.NoError(t, err)
		for _, ev := range resp.Events {
			raw, err := json.Marshal(ev)
			require.NoError(t, err)
			protocoltest.ValidateEvent(t, raw)
		}
		evs = append(evs, resp.Events...)
		if resp.NextAfterEventID != nil {
			after = *resp.NextAfterEventID
		}
	}
	return evs
}

func (s *stack) pollTerminal(t *testing.T, taskID string) []taskbridge.TaskEvent {
	t.Helper()
	return s.pollUntil(t, taskID, func([]taskbridge.TaskEvent) bool { return false })
}

func hasType(et taskbridge.EventType) func([]taskbridge.TaskEvent) bool {
	return func(evs []taskbridge.TaskEvent) bool {
		for _, e := range evs {
			if e.Type == et {
				return true
			}
		}
		return false
	}
}

func greetHandler(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (any, error) {
	var in struct {
		Name  string `json:"name"`
		Steps int    `json:"steps"`
	}
	if err := json.Unmarshal(task.Input, &in); err != nil {
		return nil, &runner.Failure{Code: "BAD_INPUT", Message: "input is not valid"}
	}
	for i := 1; i <= in.Steps; i++ {
		if _, err := e.Emit(ctx, taskbridge.ProgressPayload{
			Progress: float64(100 * i / in.Steps), Stage: "greeting", Message: fmt.Sprintf("step %d", i),
		}); err != nil {
			return nil, err
		}
	}
	return map[string]string{"greeting": "Hello, " + in.Name + "!"}, nil
}

func TestServiceCompletes(t *testing.T) {
	t.Parallel()
	s := setupService(t, runner.Config{Handlers: map[string]runner.HandlerFunc{"greet": greetHandler}})
	resp, err := s.svc.CreateTask(context.Background(), alice, taskbridge.CreateTaskRequest{
		ClientRequestID: "c1", TaskType: "greet", Input: json.RawMessage(`{"name":"Ada","steps":2}`),
	})
	require.NoError(t, err)
	require.Equal(t, taskbridge.StatusAccepted, resp.Status)
	evs := s.pollTerminal(t, resp.TaskID)
	require.Equal(t, []taskbridge.EventType{
		taskbridge.EventTaskStarted, taskbridge.EventTaskProgress, taskbridge.EventTaskProgress, taskbridge.EventTaskCompleted,
	}, typesOf(evs))
	require.JSONEq(t, `{"result":{"greeting":"Hello, Ada!"}}`, string(evs[3].Payload))
}

func TestServiceRejectsUnknownTaskType(t *testing.T) {
	t.Parallel()
	s := setupService(t, runner.Config{Handlers: map[string]runner.HandlerFunc{"greet": greetHandler}})
	_, err := s.svc.CreateTask(context.Background(), alice, taskbridge.CreateTaskRequest{ClientRequestID: "c1", TaskType: "nope"})
	status, code, _ := taskbridge.HTTPError(err)
	require.Equal(t, 400, status)
	require.Equal(t, taskbridge.CodeInvalidRequest, code)
	list, err := s.svc.ListTasks(context.Background(), alice, taskbridge.ListTasksRequest{})
	require.NoError(t, err)
	require.Empty(t, list.Tasks, "the task was never created")
}

// A create the runner has no room for is refused before the task exists:
// 429 TOO_MANY_TASKS for an owner at its limit, 503 TASK_SUBMISSION_ERROR
// when the runner as a whole is full. No FAILED task is left behind, and
// the same request succeeds once there is room.
func TestServiceRefusesCreateWithoutRoom(t *testing.T) {
	t.Parallel()
	g := newGate(2)
	s := setupService(t, runner.Config{Concurrency: 2, QueueSize: -1, Handlers: map[string]runner.HandlerFunc{"gate": g.handler}})
	t.Cleanup(g.open)
	s.create(t, "gate")
	g.waitStarted(t)

	req := taskbridge.CreateTaskRequest{ClientRequestID: "busy", TaskType: "gate"}
	_, err := s.svc.CreateTask(context.Background(), alice, req)
	require.ErrorIs(t, err, taskbridge.ErrTooManyTasks, "alice may run one task of two slots")
	status, code, msg := taskbridge.HTTPError(err)
	require.Equal(t, 429, status)
	require.Equal(t, taskbridge.CodeTooManyTasks, code)
	require.Equal(t, "Too many tasks: 1 of your tasks are running or waiting to run (at most 1); retry once one has ended", msg)

	bob := taskbridge.AuthContext{Subject: "bob"}
	_, err = s.svc.CreateTask(context.Background(), bob, req)
	require.NoError(t, err, "bob's task takes the second slot")
	g.waitStarted(t)
	carol := taskbridge.AuthContext{Subject: "carol"}
	_, err = s.svc.CreateTask(context.Background(), carol, req)
	require.ErrorIs(t, err, runner.ErrQueueFull)
	status, code, _ = taskbridge.HTTPError(err)
	require.Equal(t, 503, status)
	require.Equal(t, taskbridge.CodeSubmission, code)

	for _, who := range []taskbridge.AuthContext{alice, carol} {
		list, err := s.svc.ListTasks(context.Background(), who, taskbridge.ListTasksRequest{})
		require.NoError(t, err)
		require.Len(t, list.Tasks, map[string]int{"alice": 1, "carol": 0}[who.Subject], "%s: no task for a refused create", who.Subject)
	}
	require.Equal(t, runner.Stats{Running: 2}, s.r.Stats())

	g.open()
	require.Eventually(t, func() bool { return s.r.Stats() == runner.Stats{} }, 5*time.Second, time.Millisecond)
	resp, err := s.svc.CreateTask(context.Background(), alice, req)
	require.NoError(t, err, "the refused request succeeds once there is room")
	require.False(t, resp.Deduplicated)
	evs := s.pollTerminal(t, resp.TaskID)
	require.Equal(t, taskbridge.EventTaskCompleted, evs[len(evs)-1].Type)
}

func TestServiceSuspendResume(t *testing.T) {
	t.Parallel()
	s := setupService(t, runner.Config{Handlers: map[string]runner.HandlerFunc{"approval": approvalHandler(approvalOpts)}})
	id := s.create(t, "approval")
	s.pollUntil(t, id, hasType(taskbridge.EventTaskSuspended))

	resp, err := s.svc.SubmitAction(context.Background(), alice, id, taskbridge.ActionRequest{
		ClientActionID: "act-1", SuspendID: "s1", ActionType: "approve", Payload: json.RawMessage(`{"note":"lgtm"}`),
	})
	require.NoError(t, err)
	require.Equal(t, taskbridge.ActionAccepted, resp.Status)
	evs := s.pollTerminal(t, id)
	require.Equal(t, []taskbridge.EventType{
		taskbridge.EventTaskStarted, taskbridge.EventTaskSuspended, taskbridge.EventTaskActionAccepted,
		taskbridge.EventTaskMessage, taskbridge.EventTaskCompleted,
	}, typesOf(evs), "the accepted action precedes the handler's next events")
	require.JSONEq(t, `{"result":{"action":"approve","by":"alice","id":"act-1","note":"lgtm"}}`, string(evs[4].Payload))

	sus, err := s.store.GetSuspension(context.Background(), id, "s1")
	require.NoError(t, err)
	require.Equal(t, taskbridge.SuspensionResolved, sus.Status)
	require.Equal(t, taskbridge.ResumeDispatched, sus.ResumeStatus, "the runner took the hand-off")
}

func TestServiceSuspensionExpires(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		opts := approvalOpts
		opts.TTL = time.Minute
		store := memstore.New(memstore.Config{})
		defer store.Close()
		r, err := runner.New(runner.Config{Logger: quietLogger(), Handlers: map[string]runner.HandlerFunc{"approval": approvalHandler(opts)}})
		require.NoError(t, err)
		svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: r, Logger: quietLogger()})
		require.NoError(t, err)
		s := &stack{svc: svc, r: r, store: store}

		id := s.create(t, "approval")
		synctest.Wait()
		sus, err := store.GetSuspension(context.Background(), id, "s1")
		require.NoError(t, err)
		require.Equal(t, taskbridge.SuspensionOpen, sus.Status)

		time.Sleep(time.Until(*sus.ExpiresAt)) // fake time
		synctest.Wait()
		evs := s.pollTerminal(t, id)
		require.Equal(t, []taskbridge.EventType{
			taskbridge.EventTaskStarted, taskbridge.EventTaskSuspended, taskbridge.EventTaskFailed,
		}, typesOf(evs))
		require.Equal(t, taskbridge.FailedPayload{Code: runner.CodeSuspensionExpired, Message: runner.ErrSuspensionExpired.Message},
			payloadOf(t, evs[2]))

		resp, err := svc.SubmitAction(context.Background(), alice, id, taskbridge.ActionRequest{
			ClientActionID: "late", SuspendID: "s1", ActionType: "approve",
		})
		require.NoError(t, err)
		require.Equal(t, taskbridge.ActionRejectedExpired, resp.Status)

		require.NoError(t, r.Shutdown(context.Background()))
		require.NoError(t, svc.Shutdown(context.Background()))
	})
}

func TestServiceCancel(t *testing.T) {
	t.Parallel()
	g := newGate(1)
	s := setupService(t, runner.Config{Concurrency: 1, Handlers: map[string]runner.HandlerFunc{
		"approval": approvalHandler(approvalOpts),
		"gate":     g.handler,
	}})
	t.Cleanup(g.open)

	// Cancel while suspended.
	id := s.create(t, "approval")
	s.pollUntil(t, id, hasType(taskbridge.EventTaskSuspended))
	queued := s.create(t, "gate") // takes the slot the suspended task gave up
	resp, err := s.svc.CancelTask(context.Background(), alice, id, taskbridge.CancelRequest{Reason: "no_longer_needed"})
	require.NoError(t, err)
	require.Equal(t, taskbridge.CancelRequested, resp.Status)
	evs := s.pollTerminal(t, id)
	require.Equal(t, []taskbridge.EventType{
		taskbridge.EventTaskStarted, taskbridge.EventTaskSuspended, taskbridge.EventTaskCancelled,
	}, typesOf(evs))
	require.Equal(t, "no_longer_needed", payloadOf(t, evs[2]).(taskbridge.CancelledPayload).Reason)
	act, err := s.svc.SubmitAction(context.Background(), alice, id, taskbridge.ActionRequest{
		ClientActionID: "late", SuspendID: "s1", ActionType: "approve",
	})
	require.NoError(t, err)
	require.Equal(t, taskbridge.ActionRejectedAlreadyResolved, act.Status)

	// Cancel while running, with the default reason.
	g.waitStarted(t)
	_, err = s.svc.CancelTask(context.Background(), alice, queued, taskbridge.CancelRequest{})
	require.NoError(t, err)
	evs = s.pollTerminal(t, queued)
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskCancelled}, typesOf(evs))
	require.Equal(t, runner.DefaultCancelReason, payloadOf(t, evs[1]).(taskbridge.CancelledPayload).Reason)
}

func TestServiceCancelQueued(t *testing.T) {
	t.Parallel()
	g := newGate(1)
	s := setupService(t, runner.Config{Concurrency: 1, Handlers: map[string]runner.HandlerFunc{"gate": g.handler}})
	t.Cleanup(g.open)
	first := s.create(t, "gate")
	g.waitStarted(t)
	queued := s.create(t, "gate")
	_, err := s.svc.CancelTask(context.Background(), alice, queued, taskbridge.CancelRequest{Reason: "queued_too_long"})
	require.NoError(t, err)
	evs := s.pollTerminal(t, queued)
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskCancelled}, typesOf(evs))
	g.open()
	evs = s.pollTerminal(t, first)
	require.Equal(t, taskbridge.EventTaskCompleted, evs[len(evs)-1].Type)
}

func TestServiceReadiness(t *testing.T) {
	t.Parallel()
	s := setupService(t, runner.Config{Handlers: map[string]runner.HandlerFunc{"greet": greetHandler}})
	require.True(t, s.svc.Readiness().Check(context.Background()).Ready())
	require.NoError(t, s.r.Shutdown(context.Background()))
	rep := s.svc.Readiness().Check(context.Background())
	require.False(t, rep.Ready())
	require.Equal(t, "not_ready", rep.Details["executor"].Status)
}

// A process dies with tasks queued, running and suspended; a new process
// recovers them over the same store: each ends exactly once, and the dead
// runner's late events are refused.
func TestRecover(t *testing.T) {
	t.Parallel()
	store := memstore.New(memstore.Config{})
	t.Cleanup(func() { _ = store.Close() })

	// The "dead" process: its handlers hang until we let them go.
	hang := make(chan struct{})
	hung := func(ctx context.Context, _ *taskbridge.Task, e taskbridge.Emitter) (any, error) {
		<-hang // ignores ctx: the process is gone, not cancelled
		return "late", nil
	}
	// Two slots: the suspended task waits without one.
	old := newStack(t, store, runner.Config{Concurrency: 2, MaxRunningPerOwner: -1, MaxQueuedPerOwner: -1, Handlers: map[string]runner.HandlerFunc{
		"hung":     hung,
		"approval": approvalHandler(approvalOpts),
		"greet":    greetHandler,
	}})
	t.Cleanup(func() {
		select {
		case <-hang:
		default:
			close(hang)
		}
	})
	running := old.create(t, "hung")
	suspended := old.create(t, "approval")
	cancelling := old.create(t, "hung")
	old.pollUntil(t, running, hasType(taskbridge.EventTaskStarted))
	old.pollUntil(t, suspended, hasType(taskbridge.EventTaskSuspended))
	old.pollUntil(t, cancelling, hasType(taskbridge.EventTaskStarted))
	_, _, err := store.RequestCancel(context.Background(), cancelling, "user_gave_up", time.Now())
	require.NoError(t, err) // recorded, but the process died before telling its runner
	var queued []string
	for range recoverManyTasks {
		queued = append(queued, old.create(t, "hung")) // ACCEPTED, never started
	}
	done := old.create(t, "greet") // queued too; must not be touched once terminal
	_, err = old.svc.CancelTask(context.Background(), alice, done, taskbridge.CancelRequest{Reason: "before_crash"})
	require.NoError(t, err)
	require.Equal(t, taskbridge.EventTaskCancelled, old.pollTerminal(t, done)[0].Type)

	// The new process, with a task of its own already running.
	g := newGate(1)
	fresh := newStack(t, store, runner.Config{Handlers: map[string]runner.HandlerFunc{"gate": g.handler}})
	t.Cleanup(g.open)
	mine := fresh.create(t, "gate")
	g.waitStarted(t)

	n, err := fresh.r.Recover(context.Background(), store, fresh.svc.Emitter)
	require.NoError(t, err)
	require.Equal(t, 3+recoverManyTasks, n)

	lost := taskbridge.FailedPayload{Code: runner.CodeExecutorLost,
		Message: "The task was interrupted by a server restart; retry it", Retryable: true}
	evs := fresh.pollTerminal(t, running)
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskFailed}, typesOf(evs))
	require.Equal(t, lost, payloadOf(t, evs[1]))
	evs = fresh.pollTerminal(t, suspended)
	require.Equal(t, taskbridge.EventTaskFailed, evs[len(evs)-1].Type)
	sus, err := store.GetSuspension(context.Background(), suspended, "s1")
	require.NoError(t, err)
	require.Equal(t, taskbridge.SuspensionCancelled, sus.Status)
	evs = fresh.pollTerminal(t, cancelling)
	require.Equal(t, taskbridge.CancelledPayload{Reason: "user_gave_up", Message: "Task cancelled by the client"},
		payloadOf(t, evs[len(evs)-1]))
	for _, id := range queued {
		evs = fresh.pollTerminal(t, id)
		require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskFailed}, typesOf(evs))
		require.Equal(t, lost, payloadOf(t, evs[0]))
	}
	task, err := store.GetTask(context.Background(), mine)
	require.NoError(t, err)
	require.Equal(t, taskbridge.StatusRunning, task.Status, "the new runner's own task is left alone")

	again, err := fresh.r.Recover(context.Background(), store, fresh.svc.Emitter)
	require.NoError(t, err)
	require.Zero(t, again)

	// The old handlers finally return (the suspended one when cancelled by
	// a forced shutdown): their results are refused.
	close(hang)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, old.r.Shutdown(ctx), context.Canceled)
	for _, id := range append([]string{running, suspended, cancelling, done}, queued...) {
		evs, err := store.Read(context.Background(), id, 0, 100)
		require.NoError(t, err)
		terminals := 0
		for _, ev := range evs {
			if ev.Terminal() {
				terminals++
			}
		}
		require.Equal(t, 1, terminals, "task %s: %v", id, typesOf(evs))
	}
}

// recoverManyTasks is more than one page of Recover's task listing.
const recoverManyTasks = 120

func TestRecoverStoreError(t *testing.T) {
	t.Parallel()
	store := memstore.New(memstore.Config{})
	s := newStack(t, store, runner.Config{Handlers: map[string]runner.HandlerFunc{"greet": greetHandler}})
	require.NoError(t, store.Close())
	_, err := s.r.Recover(context.Background(), store, s.svc.Emitter)
	require.True(t, errors.Is(err, taskbridge.ErrClosed), "got %v", err)
}
