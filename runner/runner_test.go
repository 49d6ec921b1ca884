package runner_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/runner"
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// gate is a handler that reports each start and then waits until released
// or cancelled; it returns its task id as result.
type gate struct {
	started chan string
	release chan struct{}
	once    sync.Once
	ctxErrs chan error
}

func newGate(n int) *gate {
	return &gate{started: make(chan string, n), release: make(chan struct{}), ctxErrs: make(chan error, n)}
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

func (g *gate) handler(ctx context.Context, task *taskbridge.Task, _ taskbridge.Emitter) (any, error) {
	g.started <- task.ID
	select {
	case <-g.release:
		return map[string]string{"id": task.ID}, nil
	case <-ctx.Done():
		g.ctxErrs <- ctx.Err()
		return nil, ctx.Err()
	}
}

func (g *gate) waitStarted(t *testing.T) string {
	t.Helper()
	select {
	case id := <-g.started:
		return id
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for a handler to start")
		return ""
	}
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	ok := func(context.Context, *taskbridge.Task, taskbridge.Emitter) (any, error) { return nil, nil }
	for name, cfg := range map[string]runner.Config{
		"no handlers":          {},
		"nil handler":          {Handlers: map[string]runner.HandlerFunc{"x": nil}},
		"empty type":           {Handlers: map[string]runner.HandlerFunc{"": ok}},
		"negative concurrency": {Handlers: map[string]runner.HandlerFunc{"x": ok}, Concurrency: -1},
		"negative timeout":     {Handlers: map[string]runner.HandlerFunc{"x": ok}, EmitTimeout: -time.Second},
	} {
		_, err := runner.New(cfg)
		require.Error(t, err, name)
	}
}

func TestValidateTask(t *testing.T) {
	t.Parallel()
	r := setup(t, runner.Config{Handlers: map[string]runner.HandlerFunc{
		"known": func(context.Context, *taskbridge.Task, taskbridge.Emitter) (any, error) { return nil, nil },
	}})
	require.NoError(t, r.ValidateTask(context.Background(), taskbridge.CreateTaskRequest{TaskType: "known"}))
	err := r.ValidateTask(context.Background(), taskbridge.CreateTaskRequest{TaskType: "nope"})
	require.ErrorIs(t, err, taskbridge.ErrInvalidRequest)
	status, code, msg := taskbridge.HTTPError(err)
	require.Equal(t, 400, status)
	require.Equal(t, taskbridge.CodeInvalidRequest, code)
	require.Contains(t, msg, `"nope"`)
}

func TestCompletesWithResult(t *testing.T) {
	t.Parallel()
	r := setup(t, runner.Config{Logger: quietLogger(), Handlers: map[string]runner.HandlerFunc{
		"work": func(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (any, error) {
			var in struct{ N int }
			if err := json.Unmarshal(task.Input, &in); err != nil {
				return nil, err
			}
			if _, err := e.Emit(ctx, taskbridge.ProgressPayload{Progress: 50, Stage: "half"}); err != nil {
				return nil, err
			}
			if _, err := e.Emit(ctx, taskbridge.MessagePayload{Message: "hi", Level: taskbridge.LevelInfo}); err != nil {
				return nil, err
			}
			return map[string]any{"double": in.N * 2}, nil
		},
	}})
	task, f := newTask("work")
	task.Input = json.RawMessage(`{"N":21}`)
	require.NoError(t, r.Submit(context.Background(), task, f))
	evs := f.waitTerminal(t)
	require.Equal(t, []taskbridge.EventType{
		taskbridge.EventTaskStarted, taskbridge.EventTaskProgress, taskbridge.EventTaskMessage, taskbridge.EventTaskCompleted,
	}, typesOf(evs))
	require.Equal(t, taskbridge.StartedPayload{Message: runner.DefaultStartedMessage}, payloadOf(t, evs[0]))
	require.JSONEq(t, `{"result":{"double":42}}`, string(evs[3].Payload))
}

func TestStartedMessageAndNilResult(t *testing.T) {
	t.Parallel()
	r := setup(t, runner.Config{StartedMessage: "Go!", Handlers: map[string]runner.HandlerFunc{
		"nil": func(context.Context, *taskbridge.Task, taskbridge.Emitter) (any, error) { return nil, nil },
	}})
	_, f := submit(t, r, "nil")
	evs := f.waitTerminal(t)
	require.Equal(t, taskbridge.StartedPayload{Message: "Go!"}, payloadOf(t, evs[0]))
	require.JSONEq(t, `{"result":null}`, string(evs[1].Payload))
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		result any
		err    error
		want   taskbridge.FailedPayload
	}{
		{
			name: "typed failure",
			err:  &runner.Failure{Code: "QUOTA", Message: "Quota exceeded", Retryable: true},
			want: taskbridge.FailedPayload{Code: "QUOTA", Message: "Quota exceeded", Retryable: true},
		},
		{
			name: "wrapped failure with cause",
			err: fmt.Errorf("step 2: %w", &runner.Failure{
				Code: "BAD_INPUT", Message: "Unreadable file", Err: errors.New("secret path /x"),
			}),
			want: taskbridge.FailedPayload{Code: "BAD_INPUT", Message: "Unreadable file"},
		},
		{
			name: "failure without code",
			err:  &runner.Failure{Message: "Nope"},
			want: taskbridge.FailedPayload{Code: runner.CodeTaskFailed, Message: "Nope"},
		},
		{
			name: "plain error hides its text",
			err:  errors.New("dial tcp 10.0.0.1:5432: secret"),
			want: taskbridge.FailedPayload{Code: runner.CodeTaskFailed, Message: "The task failed"},
		},
		{
			name: "expired suspension",
			err:  fmt.Errorf("%w: suspension s1", runner.ErrSuspensionExpired),
			want: taskbridge.FailedPayload{Code: runner.CodeSuspensionExpired, Message: runner.ErrSuspensionExpired.Message},
		},
		{
			name:   "unencodable result",
			result: make(chan int),
			want:   taskbridge.FailedPayload{Code: runner.CodeInternal, Message: "The task result could not be encoded"},
		},
	}
	handlers := map[string]runner.HandlerFunc{}
	for _, c := range cases {
		handlers[c.name] = func(context.Context, *taskbridge.Task, taskbridge.Emitter) (any, error) {
			return c.result, c.err
		}
	}
	r := setup(t, runner.Config{Handlers: handlers, Logger: quietLogger()})
	for _, c := range cases {
		_, f := submit(t, r, c.name)
		evs := f.waitTerminal(t)
		require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskFailed}, typesOf(evs), c.name)
		require.Equal(t, c.want, payloadOf(t, evs[1]), c.name)
	}
}

func TestFailureError(t *testing.T) {
	t.Parallel()
	cause := errors.New("boom")
	f := &runner.Failure{Code: "C", Message: "m", Err: cause}
	require.Equal(t, "C: m: boom", f.Error())
	require.ErrorIs(t, f, cause)
	require.Equal(t, runner.CodeTaskFailed, (&runner.Failure{}).Error())
}

func TestPanicFailsTaskAndWorkerSurvives(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), nil))
	r := setup(t, runner.Config{Concurrency: 1, Logger: logger, Handlers: map[string]runner.HandlerFunc{
		"panic": func(context.Context, *taskbridge.Task, taskbridge.Emitter) (any, error) {
			panic("secret-panic-value")
		},
		"ok": func(context.Context, *taskbridge.Task, taskbridge.Emitter) (any, error) { return "fine", nil },
	}})
	_, pf := submit(t, r, "panic")
	_, of := submit(t, r, "ok") // queued behind the panicking task for the single slot
	evs := pf.waitTerminal(t)
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskFailed}, typesOf(evs))
	fp := payloadOf(t, evs[1]).(taskbridge.FailedPayload)
	require.Equal(t, runner.CodeInternal, fp.Code)
	require.False(t, fp.Retryable)
	require.NotContains(t, fp.Message, "secret-panic-value")

	evs = of.waitTerminal(t)
	require.JSONEq(t, `{"result":"fine"}`, string(evs[1].Payload))
	logMu.Lock()
	require.Contains(t, logs.String(), "secret-panic-value", "the panic value is logged")
	logMu.Unlock()
}

type writerFunc func(p []byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

func TestHandlerCannotEmitStartedOrTerminal(t *testing.T) {
	t.Parallel()
	r := setup(t, runner.Config{Handlers: map[string]runner.HandlerFunc{
		"sneaky": func(ctx context.Context, _ *taskbridge.Task, e taskbridge.Emitter) (any, error) {
			for _, p := range []taskbridge.Payload{
				taskbridge.StartedPayload{},
				taskbridge.CompletedPayload{Result: 1},
				taskbridge.FailedPayload{Code: "X"},
				taskbridge.CancelledPayload{Reason: "x"},
			} {
				if _, err := e.Emit(ctx, p); !errors.Is(err, taskbridge.ErrInvalidTransition) {
					return nil, fmt.Errorf("emit %s: got %v", p.EventType(), err)
				}
				if _, err := e.EmitOnce(ctx, "k", p); !errors.Is(err, taskbridge.ErrInvalidTransition) {
					return nil, fmt.Errorf("emit once %s: got %v", p.EventType(), err)
				}
			}
			return "ok", nil
		},
	}})
	_, f := submit(t, r, "sneaky")
	evs := f.waitTerminal(t)
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskCompleted}, typesOf(evs))
}

func TestConcurrencyBound(t *testing.T) {
	t.Parallel()
	const tasks = 6
	var running, maxRunning atomic.Int64
	entered := make(chan struct{}, tasks)
	release := make(chan struct{}, tasks)
	r := setup(t, runner.Config{Concurrency: 2, QueueSize: tasks, MaxRunningPerOwner: -1, MaxQueuedPerOwner: -1, Handlers: map[string]runner.HandlerFunc{
		"slow": func(ctx context.Context, _ *taskbridge.Task, _ taskbridge.Emitter) (any, error) {
			n := running.Add(1)
			for {
				m := maxRunning.Load()
				if n <= m || maxRunning.CompareAndSwap(m, n) {
					break
				}
			}
			entered <- struct{}{}
			defer running.Add(-1)
			select {
			case <-release:
				return nil, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
	}})
	var fs []*fakeEmitter
	for range tasks {
		_, f := submit(t, r, "slow")
		fs = append(fs, f)
	}
	for range 2 {
		<-entered
	}
	require.Equal(t, runner.Stats{Running: 2, Queued: tasks - 2}, r.Stats())
	// Let the tasks through one at a time; each release admits one more.
	for i := range tasks {
		release <- struct{}{}
		if i+2 < tasks {
			<-entered
		}
	}
	for _, f := range fs {
		evs := f.waitTerminal(t)
		require.Equal(t, taskbridge.EventTaskCompleted, evs[len(evs)-1].Type)
	}
	require.EqualValues(t, 2, maxRunning.Load())
	require.Eventually(t, func() bool { return r.Stats() == runner.Stats{} }, 5*time.Second, time.Millisecond)
}

func TestQueueFull(t *testing.T) {
	t.Parallel()
	g := newGate(3)
	r := setup(t, runner.Config{Concurrency: 1, QueueSize: 1, MaxQueuedPerOwner: -1,
		Handlers: map[string]runner.HandlerFunc{"gate": g.handler}})
	t.Cleanup(g.open)
	_, a := submit(t, r, "gate")
	g.waitStarted(t)
	_, b := submit(t, r, "gate")
	task, c := newTask("gate")
	task.OwnerID = "bob"
	err := r.Submit(context.Background(), task, c)
	require.ErrorIs(t, err, runner.ErrQueueFull)
	require.Equal(t, runner.Stats{Running: 1, Queued: 1}, r.Stats())

	g.open()
	for _, f := range []*fakeEmitter{a, b} {
		evs := f.waitTerminal(t)
		require.Equal(t, taskbridge.EventTaskCompleted, evs[len(evs)-1].Type)
	}
	require.Empty(t, c.types(t), "a refused task gets no events from the runner")
}

func TestNoQueueFullStaysReady(t *testing.T) {
	t.Parallel()
	g := newGate(1)
	r := setup(t, runner.Config{Concurrency: 1, QueueSize: -1, Handlers: map[string]runner.HandlerFunc{"gate": g.handler}})
	t.Cleanup(g.open)
	submit(t, r, "gate")
	g.waitStarted(t)
	task, f := newTask("gate")
	task.OwnerID = "bob"
	require.ErrorIs(t, r.Submit(context.Background(), task, f), runner.ErrQueueFull)
	require.NoError(t, r.CheckReady(context.Background()), "a full runner stays ready")
}

func TestSubmitErrors(t *testing.T) {
	t.Parallel()
	g := newGate(1)
	r, err := runner.New(runner.Config{Handlers: map[string]runner.HandlerFunc{"gate": g.handler}})
	require.NoError(t, err)

	task, f := newTask("unknown")
	require.ErrorIs(t, r.Submit(context.Background(), task, f), runner.ErrUnknownTaskType)
	task, _ = newTask("gate")
	require.Error(t, r.Submit(context.Background(), task, nil))

	task, f = submit(t, r, "gate")
	require.Error(t, r.Submit(context.Background(), task, f), "a task id is submitted once")
	g.waitStarted(t)
	g.open()
	f.waitTerminal(t)

	require.NoError(t, r.Shutdown(context.Background()))
	task, f = newTask("gate")
	require.ErrorIs(t, r.Submit(context.Background(), task, f), taskbridge.ErrClosed)
	require.Empty(t, f.types(t))
}

func TestCancelRunning(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ reason, want string }{
		{"user_abort", "user_abort"},
		{"", runner.DefaultCancelReason},
	} {
		g := newGate(1)
		r := setup(t, runner.Config{Handlers: map[string]runner.HandlerFunc{"gate": g.handler}})
		task, f := submit(t, r, "gate")
		g.waitStarted(t)
		task.CancelRequested, task.CancelReason = true, c.reason
		require.NoError(t, r.Cancel(context.Background(), task))
		require.ErrorIs(t, <-g.ctxErrs, context.Canceled, "the handler observes ctx.Done")
		evs := f.waitTerminal(t)
		require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskCancelled}, typesOf(evs))
		require.Equal(t, taskbridge.CancelledPayload{Reason: c.want, Message: "Task cancelled by the client"}, payloadOf(t, evs[1]))
		// A repeated cancel changes nothing.
		require.NoError(t, r.Cancel(context.Background(), task))
		require.Eventually(t, func() bool { return r.Stats() == runner.Stats{} }, 5*time.Second, time.Millisecond)
		require.Len(t, f.types(t), 2)
	}
}

func TestCancelQueued(t *testing.T) {
	t.Parallel()
	g := newGate(2)
	var ranQueued atomic.Bool
	r := setup(t, runner.Config{Concurrency: 1, Handlers: map[string]runner.HandlerFunc{
		"gate": g.handler,
		"never": func(context.Context, *taskbridge.Task, taskbridge.Emitter) (any, error) {
			ranQueued.Store(true)
			return nil, nil
		},
	}})
	_, a := submit(t, r, "gate")
	g.waitStarted(t)
	b, bf := submit(t, r, "never")
	require.Equal(t, runner.Stats{Running: 1, Queued: 1}, r.Stats())

	b.CancelRequested, b.CancelReason = true, "changed_my_mind"
	require.NoError(t, r.Cancel(context.Background(), b))
	evs := bf.waitTerminal(t)
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskCancelled}, typesOf(evs), "a queued task is cancelled without starting")
	require.Equal(t, "changed_my_mind", payloadOf(t, evs[0]).(taskbridge.CancelledPayload).Reason)
	require.Equal(t, runner.Stats{Running: 1, Queued: 0}, r.Stats(), "the queue slot is free again")

	g.open()
	a.waitTerminal(t)
	require.NoError(t, r.Shutdown(context.Background()))
	require.False(t, ranQueued.Load())
	require.Len(t, bf.types(t), 1)
}

func TestSubmitCancelRequestedTask(t *testing.T) {
	t.Parallel()
	var ran atomic.Bool
	r := setup(t, runner.Config{Handlers: map[string]runner.HandlerFunc{
		"x": func(context.Context, *taskbridge.Task, taskbridge.Emitter) (any, error) {
			ran.Store(true)
			return nil, nil
		},
	}})
	task, f := newTask("x")
	task.CancelRequested, task.CancelReason = true, "early"
	require.NoError(t, r.Submit(context.Background(), task, f))
	evs := f.waitTerminal(t)
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskCancelled}, typesOf(evs))
	require.Equal(t, "early", payloadOf(t, evs[0]).(taskbridge.CancelledPayload).Reason)
	require.NoError(t, r.Shutdown(context.Background()))
	require.False(t, ran.Load())
}

func TestCancellationWinsOverLateResult(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	proceed := make(chan struct{})
	r := setup(t, runner.Config{Handlers: map[string]runner.HandlerFunc{
		"stubborn": func(ctx context.Context, _ *taskbridge.Task, _ taskbridge.Emitter) (any, error) {
			close(started)
			<-proceed // ignores ctx on purpose
			return "done anyway", nil
		},
	}})
	task, f := submit(t, r, "stubborn")
	<-started
	task.CancelRequested = true
	require.NoError(t, r.Cancel(context.Background(), task))
	close(proceed)
	evs := f.waitTerminal(t)
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskCancelled}, typesOf(evs))
}

func TestCancelAfterCompletionIsNoop(t *testing.T) {
	t.Parallel()
	r := setup(t, runner.Config{Handlers: map[string]runner.HandlerFunc{
		"quick": func(context.Context, *taskbridge.Task, taskbridge.Emitter) (any, error) { return 1, nil },
	}})
	task, f := submit(t, r, "quick")
	f.waitTerminal(t)
	require.NoError(t, r.Shutdown(context.Background())) // the job is gone
	task.CancelRequested = true
	require.NoError(t, r.Cancel(context.Background(), task))
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskCompleted}, f.types(t))

	require.NoError(t, r.Cancel(context.Background(), taskbridge.Task{ID: "never-seen"}))
}

func TestStartFailure(t *testing.T) {
	t.Parallel()
	var ran atomic.Int32
	r := setup(t, runner.Config{Logger: quietLogger(), Handlers: map[string]runner.HandlerFunc{
		"x": func(context.Context, *taskbridge.Task, taskbridge.Emitter) (any, error) { ran.Add(1); return nil, nil },
	}})
	failStart := func(err error) func(*fakeEmitter) {
		return func(f *fakeEmitter) {
			f.emitErr = func(p taskbridge.Payload) error {
				if p.EventType() == taskbridge.EventTaskStarted {
					return err
				}
				return nil
			}
		}
	}

	// A store error: the task fails, retryable.
	_, f := submit(t, r, "x", failStart(errors.New("store unavailable")))
	evs := f.waitTerminal(t)
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskFailed}, typesOf(evs))
	fp := payloadOf(t, evs[0]).(taskbridge.FailedPayload)
	require.Equal(t, runner.CodeInternal, fp.Code)
	require.True(t, fp.Retryable)

	// Already terminal (ended elsewhere): nothing runs, nothing is emitted.
	_, f = submit(t, r, "x", failStart(taskbridge.ErrTaskTerminal))
	require.NoError(t, r.Shutdown(context.Background()))
	require.Empty(t, f.types(t))
	require.Zero(t, ran.Load())
}

func TestTerminalEmittedElsewhereIsBenign(t *testing.T) {
	t.Parallel()
	g := newGate(1)
	r := setup(t, runner.Config{Logger: quietLogger(), Handlers: map[string]runner.HandlerFunc{"gate": g.handler}})
	_, f := submit(t, r, "gate")
	g.waitStarted(t)
	// Someone else (a recovering process, the service) ends the task.
	_, err := f.Emit(context.Background(), taskbridge.FailedPayload{Code: "OTHER", Message: "x"})
	require.NoError(t, err)
	g.open()
	require.NoError(t, r.Shutdown(context.Background()))
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskFailed}, f.types(t))
}

func TestShutdownWaitsForSubmittedTasks(t *testing.T) {
	t.Parallel()
	g := newGate(2)
	r, err := runner.New(runner.Config{Concurrency: 1, Handlers: map[string]runner.HandlerFunc{"gate": g.handler}})
	require.NoError(t, err)
	_, a := submit(t, r, "gate")
	g.waitStarted(t)
	_, b := submit(t, r, "gate") // queued

	done := make(chan error, 1)
	go func() { done <- r.Shutdown(context.Background()) }()
	require.Eventually(t, func() bool { return r.CheckReady(context.Background()) != nil }, 5*time.Second, time.Millisecond)
	task, c := newTask("gate")
	require.ErrorIs(t, r.Submit(context.Background(), task, c), taskbridge.ErrClosed)
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v while a handler was running", err)
	default:
	}

	g.open()
	require.NoError(t, <-done)
	for _, f := range []*fakeEmitter{a, b} {
		require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskCompleted}, f.types(t),
			"queued tasks still run during a graceful shutdown")
	}
	require.NoError(t, r.Shutdown(context.Background()), "a second Shutdown is fine")
}

func TestShutdownDeadlineCancels(t *testing.T) {
	t.Parallel()
	g := newGate(2)
	completing := make(chan struct{})
	r, err := runner.New(runner.Config{Concurrency: 2, MaxRunningPerOwner: -1, Logger: quietLogger(), Handlers: map[string]runner.HandlerFunc{
		"gate": g.handler,
		// finishes its work even though it was cancelled
		"finisher": func(ctx context.Context, _ *taskbridge.Task, _ taskbridge.Emitter) (any, error) {
			close(completing)
			<-ctx.Done()
			return "finished", nil
		},
	}})
	require.NoError(t, err)
	_, a := submit(t, r, "gate")
	_, fin := submit(t, r, "finisher")
	_, queued := submit(t, r, "gate")
	g.waitStarted(t)
	<-completing

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = r.Shutdown(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, <-g.ctxErrs, context.Canceled)

	want := taskbridge.FailedPayload{Code: runner.CodeExecutorShutdown,
		Message: "The server shut down before the task finished; retry it", Retryable: true}
	evs := a.events(t)
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskFailed}, typesOf(evs))
	require.Equal(t, want, payloadOf(t, evs[1]))
	evs = queued.events(t)
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskFailed}, typesOf(evs), "a queued task is not started")
	require.Equal(t, want, payloadOf(t, evs[0]))
	evs = fin.events(t)
	require.Equal(t, taskbridge.EventTaskCompleted, evs[len(evs)-1].Type, "a result returned after shutdown still counts")

	require.NoError(t, r.Shutdown(context.Background()))
}

func TestShutdownIdleAndReadiness(t *testing.T) {
	t.Parallel()
	r, err := runner.New(runner.Config{Handlers: map[string]runner.HandlerFunc{
		"x": func(context.Context, *taskbridge.Task, taskbridge.Emitter) (any, error) { return nil, nil },
	}})
	require.NoError(t, err)
	require.NoError(t, r.CheckReady(context.Background()))
	require.NoError(t, r.Shutdown(context.Background()))
	require.ErrorIs(t, r.CheckReady(context.Background()), taskbridge.ErrClosed)
	require.NoError(t, r.Shutdown(context.Background()))
}

func TestGoexitInHandler(t *testing.T) {
	t.Parallel()
	r := setup(t, runner.Config{Concurrency: 1, Logger: quietLogger(), Handlers: map[string]runner.HandlerFunc{
		"goexit": func(context.Context, *taskbridge.Task, taskbridge.Emitter) (any, error) {
			runtime.Goexit() // what t.FailNow does
			return nil, nil
		},
		"ok": func(context.Context, *taskbridge.Task, taskbridge.Emitter) (any, error) { return "fine", nil },
	}})
	_, gf := submit(t, r, "goexit")
	_, of := submit(t, r, "ok")
	evs := gf.waitTerminal(t)
	require.Equal(t, runner.CodeInternal, payloadOf(t, evs[len(evs)-1]).(taskbridge.FailedPayload).Code)
	evs = of.waitTerminal(t)
	require.Equal(t, taskbridge.EventTaskCompleted, evs[len(evs)-1].Type, "the queue goes on")
	require.NoError(t, r.Shutdown(context.Background()))
}
