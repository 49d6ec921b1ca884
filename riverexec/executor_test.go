package riverexec_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/riverexec"
	"github.com/taskbridge-go/taskbridge/runner"
)

func greet(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (any, error) {
	for _, p := range []float64{50, 100} {
		if _, err := e.Emit(ctx, taskbridge.ProgressPayload{Progress: p}); err != nil {
			return nil, err
		}
	}
	return map[string]string{"greeting": "hello"}, nil
}

// approval emits a message, waits for a decision and reports it.
func approval(ttl time.Duration) riverexec.HandlerFunc {
	return func(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (any, error) {
		if _, err := e.Emit(ctx, taskbridge.MessagePayload{Message: "waiting for a decision"}); err != nil {
			return nil, err
		}
		a, err := riverexec.Suspend(ctx, e, taskbridge.SuspendOpts{ReasonCode: "APPROVAL", AllowedActions: []string{"approve", "reject"}, TTL: ttl})
		if err != nil {
			return nil, err
		}
		if _, err := e.Emit(ctx, taskbridge.MessagePayload{Message: "decided: " + a.ActionType}); err != nil {
			return nil, err
		}
		return map[string]bool{"approved": a.ActionType == "approve"}, nil
	}
}

func blocking(started chan<- string) riverexec.HandlerFunc {
	return func(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (any, error) {
		started <- task.ID
		<-ctx.Done()
		return nil, ctx.Err()
	}
}

func TestCompletes(t *testing.T) {
	d := newDB(t)
	n := d.newNode(t, riverexec.Config{Handlers: map[string]riverexec.HandlerFunc{"greet": greet}})
	id := n.create(t, "greet", "r1")
	evs := n.waitTerminal(t, id)
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskProgress,
		taskbridge.EventTaskProgress, taskbridge.EventTaskCompleted}, types(evs))
	require.Equal(t, taskbridge.CompletedPayload{Result: map[string]any{"greeting": "hello"}}, payload(t, evs[3]))
}

func TestFailures(t *testing.T) {
	d := newDB(t)
	n := d.newNode(t, riverexec.Config{Handlers: map[string]riverexec.HandlerFunc{
		"failure": func(context.Context, *taskbridge.Task, taskbridge.Emitter) (any, error) {
			return nil, &runner.Failure{Code: "NO_PAPER", Message: "Out of paper", Retryable: true}
		},
		"error": func(context.Context, *taskbridge.Task, taskbridge.Emitter) (any, error) {
			return nil, errors.New("secret internals")
		},
		"panic": func(context.Context, *taskbridge.Task, taskbridge.Emitter) (any, error) { panic("boom") },
		"terminal": func(ctx context.Context, _ *taskbridge.Task, e taskbridge.Emitter) (any, error) {
			_, err := e.Emit(ctx, taskbridge.CompletedPayload{Result: 1})
			return nil, &runner.Failure{Code: "REFUSED", Message: err.Error()}
		},
	}})
	for typ, want := range map[string]taskbridge.FailedPayload{
		"failure": {Code: "NO_PAPER", Message: "Out of paper", Retryable: true},
		"error":   {Code: runner.CodeTaskFailed, Message: "The task failed"},
		"panic":   {Code: runner.CodeInternal, Message: "The task handler failed unexpectedly"},
	} {
		evs := n.waitTerminal(t, n.create(t, typ, typ))
		require.Len(t, evs, 2, typ)
		require.Equal(t, want, payload(t, evs[1]), typ)
	}
	evs := n.waitTerminal(t, n.create(t, "terminal", "terminal"))
	require.Equal(t, "REFUSED", payload(t, evs[1]).(taskbridge.FailedPayload).Code, "a handler cannot emit a terminal event")
}

func TestValidateTask(t *testing.T) {
	d := newDB(t)
	n := d.newNode(t, riverexec.Config{Handlers: map[string]riverexec.HandlerFunc{"greet": greet}, Workers: -1})
	_, err := n.svc.CreateTask(t.Context(), alice, taskbridge.CreateTaskRequest{ClientRequestID: "r", TaskType: "nope"})
	require.ErrorIs(t, err, taskbridge.ErrInvalidRequest)
}

// failingInsert makes every River insert fail.
type failingInsert struct {
	river.MiddlewareDefaults
}

func (*failingInsert) InsertMany(context.Context, []*rivertype.JobInsertParams, func(context.Context) ([]*rivertype.JobInsertResult, error)) ([]*rivertype.JobInsertResult, error) {
	return nil, errors.New("queue refused")
}

// TestTaskAndJobAreAtomic: when the job cannot be inserted, the task is not
// created either.
func TestTaskAndJobAreAtomic(t *testing.T) {
	d := newDB(t)
	n := d.newNode(t, riverexec.Config{Handlers: map[string]riverexec.HandlerFunc{"greet": greet},
		River: river.Config{Middleware: []rivertype.Middleware{&failingInsert{}}}})
	_, err := n.svc.CreateTask(t.Context(), alice, taskbridge.CreateTaskRequest{ClientRequestID: "r1", TaskType: "greet"})
	require.ErrorContains(t, err, "queue refused")
	tasks, err := n.store.ListTasks(t.Context(), taskbridge.TaskQuery{Limit: 10})
	require.NoError(t, err)
	require.Empty(t, tasks, "no task without its job")
}

// TestSuspendDoesNotHoldAWorker runs two approval tasks with one worker:
// both reach their suspension, so the first does not hold the worker while
// it waits; then both are answered and complete, each event once.
func TestSuspendDoesNotHoldAWorker(t *testing.T) {
	d := newDB(t)
	n := d.newNode(t, riverexec.Config{Handlers: map[string]riverexec.HandlerFunc{"approval": approval(0)}, Workers: 1})
	ids := []string{n.create(t, "approval", "r1"), n.create(t, "approval", "r2")}
	var suspendIDs []string
	for _, id := range ids {
		evs := n.waitType(t, id, taskbridge.EventTaskSuspended)
		suspendIDs = append(suspendIDs, payload(t, evs[len(evs)-1]).(taskbridge.SuspendedPayload).SuspendID)
	}
	// With one worker, the second task could only get there because the
	// first one's job ended when it suspended.

	for i, id := range ids {
		action := []string{"approve", "reject"}[i]
		resp, err := n.svc.SubmitAction(t.Context(), alice, id, taskbridge.ActionRequest{
			ClientActionID: "a-" + id, SuspendID: suspendIDs[i], ActionType: action})
		require.NoError(t, err)
		require.Equal(t, taskbridge.ActionAccepted, resp.Status)
		evs := n.waitTerminal(t, id)
		require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskMessage,
			taskbridge.EventTaskSuspended, taskbridge.EventTaskActionAccepted, taskbridge.EventTaskMessage,
			taskbridge.EventTaskCompleted}, types(evs), "the resumed run appends nothing twice")
		require.Equal(t, taskbridge.CompletedPayload{Result: map[string]any{"approved": action == "approve"}}, payload(t, evs[5]))
	}
	pending, err := n.store.ListPendingResumes(t.Context(), 10)
	require.NoError(t, err)
	require.Empty(t, pending, "every resume was handed off")
}

func TestSuspensionExpires(t *testing.T) {
	d := newDB(t)
	n := d.newNode(t, riverexec.Config{Handlers: map[string]riverexec.HandlerFunc{"approval": approval(time.Second)}})
	id := n.create(t, "approval", "r1")
	evs := n.waitTerminal(t, id)
	require.Equal(t, runner.CodeSuspensionExpired, payload(t, evs[len(evs)-1]).(taskbridge.FailedPayload).Code)
	sus, err := n.store.ListSuspensions(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, taskbridge.SuspensionExpired, sus[0].Status)
}

func TestCancelRunning(t *testing.T) {
	d := newDB(t)
	started := make(chan string, 1)
	n := d.newNode(t, riverexec.Config{Handlers: map[string]riverexec.HandlerFunc{"block": blocking(started)}})
	id := n.create(t, "block", "r1")
	require.Equal(t, id, <-started)
	resp, err := n.svc.CancelTask(t.Context(), alice, id, taskbridge.CancelRequest{Reason: "changed my mind"})
	require.NoError(t, err)
	require.Equal(t, taskbridge.CancelRequested, resp.Status)
	evs := n.waitTerminal(t, id)
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskCancelled}, types(evs))
	require.Equal(t, "changed my mind", payload(t, evs[1]).(taskbridge.CancelledPayload).Reason)
}

func TestCancelWhileWaiting(t *testing.T) {
	d := newDB(t)
	n := d.newNode(t, riverexec.Config{Handlers: map[string]riverexec.HandlerFunc{"approval": approval(time.Hour)}})
	id := n.create(t, "approval", "r1")
	n.waitType(t, id, taskbridge.EventTaskSuspended)
	_, err := n.svc.CancelTask(t.Context(), alice, id, taskbridge.CancelRequest{})
	require.NoError(t, err)
	evs := n.waitTerminal(t, id)
	require.Equal(t, taskbridge.EventTaskCancelled, evs[len(evs)-1].Type)
	require.Equal(t, runner.DefaultCancelReason, payload(t, evs[len(evs)-1]).(taskbridge.CancelledPayload).Reason)
	require.Empty(t, n.jobs(t, rivertype.JobStateScheduled), "the deadline job was cancelled")
}

// TestCancelRacingPark cancels a task while its handler runs and lets the
// handler park its job afterwards anyway (as when River's cancellation
// reaches the worker late): the worker must end the task itself, and the
// deadline job its park scheduled must not linger.
func TestCancelRacingPark(t *testing.T) {
	d := newDB(t)
	started, gate := make(chan string, 1), make(chan struct{})
	n := d.newNode(t, riverexec.Config{Handlers: map[string]riverexec.HandlerFunc{
		"late": func(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (any, error) {
			started <- task.ID
			<-gate
			// The cancellation has not reached this handler yet.
			_, err := riverexec.Suspend(context.WithoutCancel(ctx), e, taskbridge.SuspendOpts{
				ReasonCode: "APPROVAL", AllowedActions: []string{"approve"}, TTL: time.Hour})
			return nil, err
		},
	}})
	id := n.create(t, "late", "r1")
	require.Equal(t, id, <-started)
	_, err := n.svc.CancelTask(t.Context(), alice, id, taskbridge.CancelRequest{Reason: "too late"})
	require.NoError(t, err)
	close(gate)
	evs := n.waitTerminal(t, id)
	require.Equal(t, taskbridge.EventTaskCancelled, evs[len(evs)-1].Type)
	require.Equal(t, "too late", payload(t, evs[len(evs)-1]).(taskbridge.CancelledPayload).Reason)
	// The worker cancels the deadline job right after the terminal event.
	require.Eventually(t, func() bool { return len(n.jobs(t, rivertype.JobStateScheduled)) == 0 },
		10*time.Second, 20*time.Millisecond, "the deadline job was cancelled")
}

// TestCancelQueued cancels a task whose job no worker has taken.
func TestCancelQueued(t *testing.T) {
	d := newDB(t)
	n := d.newNode(t, riverexec.Config{Handlers: map[string]riverexec.HandlerFunc{"greet": greet}, Workers: -1})
	id := n.create(t, "greet", "r1")
	_, err := n.svc.CancelTask(t.Context(), alice, id, taskbridge.CancelRequest{Reason: "r"})
	require.NoError(t, err)
	evs := n.waitTerminal(t, id)
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskCancelled}, types(evs))
	require.Len(t, n.jobs(t, rivertype.JobStateCancelled), 1)
}

// TestWorkerLost stops the process running a task in the middle; River
// runs the job again in another process, which completes the task without
// repeating its events.
func TestWorkerLost(t *testing.T) {
	d := newDB(t)
	var runs atomic.Int32
	started := make(chan struct{}, 2)
	handler := func(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (any, error) {
		if _, err := e.Emit(ctx, taskbridge.ProgressPayload{Progress: 10, Stage: "first step"}); err != nil {
			return nil, err
		}
		if runs.Add(1) == 1 {
			started <- struct{}{}
			<-ctx.Done() // the first run never finishes
			return nil, ctx.Err()
		}
		return "done", nil
	}
	a := d.newNode(t, riverexec.Config{Handlers: map[string]riverexec.HandlerFunc{"work": handler}})
	id := a.create(t, "work", "r1")
	<-started
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // stop at once: the running job is interrupted
	require.Error(t, a.exec.Stop(ctx))

	b := d.newNode(t, riverexec.Config{Handlers: map[string]riverexec.HandlerFunc{"work": handler}})
	evs := b.waitTerminal(t, id)
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskProgress,
		taskbridge.EventTaskCompleted}, types(evs))
	require.Equal(t, int32(2), runs.Load())
}

// TestCrashedWorkerAttemptsExhausted: a worker died while running the
// task's job (its row stays running). River's rescuer makes the job
// retryable; with MaxAttempts 1 the next attempt ends the task with
// EXECUTOR_LOST instead of running the handler a second time.
func TestCrashedWorkerAttemptsExhausted(t *testing.T) {
	d := newDB(t)
	var runs atomic.Int32
	cfg := riverexec.Config{MaxAttempts: 1, Handlers: map[string]riverexec.HandlerFunc{
		"work": func(context.Context, *taskbridge.Task, taskbridge.Emitter) (any, error) {
			runs.Add(1)
			return "done", nil
		},
	}}
	server := d.newNode(t, riverexec.Config{Handlers: cfg.Handlers, Workers: -1})
	id := server.create(t, "work", "r1")
	// The dead worker: it took the job two hours ago and never finished.
	tag, err := d.Pool.Exec(t.Context(), "UPDATE "+pgx.Identifier{d.Schema, "river_job"}.Sanitize()+
		` SET state = 'running', attempt = 1, attempted_at = now() - interval '2 hours', attempted_by = ARRAY['dead-worker']
		WHERE kind = $1`, riverexec.JobKind)
	require.NoError(t, err)
	require.Equal(t, int64(1), tag.RowsAffected())

	cfg.River.RescueStuckJobsAfter = time.Hour
	worker := d.newNode(t, cfg)
	evs := worker.waitTerminal(t, id)
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskFailed}, types(evs))
	p := payload(t, evs[0]).(taskbridge.FailedPayload)
	require.Equal(t, runner.CodeExecutorLost, p.Code)
	require.True(t, p.Retryable)
	require.Zero(t, runs.Load(), "the handler is not run past MaxAttempts")
}

// TestCrashedWorkerRetried: the same crash with attempts left runs the
// handler again.
func TestCrashedWorkerRetried(t *testing.T) {
	d := newDB(t)
	handlers := map[string]riverexec.HandlerFunc{"greet": greet}
	server := d.newNode(t, riverexec.Config{Handlers: handlers, Workers: -1})
	id := server.create(t, "greet", "r1")
	_, err := d.Pool.Exec(t.Context(), "UPDATE "+pgx.Identifier{d.Schema, "river_job"}.Sanitize()+
		` SET state = 'running', attempt = 1, attempted_at = now() - interval '2 hours', attempted_by = ARRAY['dead-worker']
		WHERE kind = $1`, riverexec.JobKind)
	require.NoError(t, err)
	worker := d.newNode(t, riverexec.Config{Handlers: handlers, River: river.Config{RescueStuckJobsAfter: time.Hour}})
	evs := worker.waitTerminal(t, id)
	require.Equal(t, taskbridge.EventTaskCompleted, evs[len(evs)-1].Type)
}
