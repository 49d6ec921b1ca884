package runner_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/runner"
)

var approvalOpts = taskbridge.SuspendOpts{
	SuspendID:      "s1",
	ReasonCode:     "approval_required",
	AllowedActions: []string{"approve", "reject"},
}

// approvalHandler suspends with opts, then reports the action with a
// message and returns its type; a Suspend error is returned as it is.
func approvalHandler(opts taskbridge.SuspendOpts) runner.HandlerFunc {
	return func(ctx context.Context, _ *taskbridge.Task, e taskbridge.Emitter) (any, error) {
		a, err := runner.Suspend(ctx, e, opts)
		if err != nil {
			return nil, err
		}
		var p struct{ Note string }
		if err := a.Decode(&p); err != nil {
			return nil, err
		}
		if _, err := e.Emit(ctx, taskbridge.MessagePayload{Message: "got " + a.ActionType}); err != nil {
			return nil, err
		}
		return map[string]string{"action": a.ActionType, "by": a.ActorID, "id": a.ClientActionID, "note": p.Note}, nil
	}
}

func TestSuspendResume(t *testing.T) {
	t.Parallel()
	r := setup(t, runner.Config{Handlers: map[string]runner.HandlerFunc{"approval": approvalHandler(approvalOpts)}})
	_, f := submit(t, r, "approval")
	ev := f.waitType(t, taskbridge.EventTaskSuspended)
	sp := payloadOf(t, ev).(taskbridge.SuspendedPayload)
	require.Equal(t, "s1", sp.SuspendID)
	require.Equal(t, []string{"approve", "reject"}, sp.AllowedActions)

	task, s, rec := f.accept(t, "s1", "approve", "act-1")
	require.NoError(t, r.Resume(context.Background(), task, s, rec))
	evs := f.waitTerminal(t)
	require.Equal(t, []taskbridge.EventType{
		taskbridge.EventTaskStarted, taskbridge.EventTaskSuspended, taskbridge.EventTaskActionAccepted,
		taskbridge.EventTaskMessage, taskbridge.EventTaskCompleted,
	}, typesOf(evs))
	require.JSONEq(t, `{"result":{"action":"approve","by":"alice","id":"act-1","note":"ok"}}`, string(evs[4].Payload))
}

func TestSuspendGeneratesID(t *testing.T) {
	t.Parallel()
	opts := approvalOpts
	opts.SuspendID = ""
	r := setup(t, runner.Config{Handlers: map[string]runner.HandlerFunc{"approval": approvalHandler(opts)}})
	_, f := submit(t, r, "approval")
	sp := payloadOf(t, f.waitType(t, taskbridge.EventTaskSuspended)).(taskbridge.SuspendedPayload)
	require.NotEmpty(t, sp.SuspendID)
	task, s, rec := f.accept(t, sp.SuspendID, "reject", "act-1")
	require.NoError(t, r.Resume(context.Background(), task, s, rec))
	evs := f.waitTerminal(t)
	require.Equal(t, taskbridge.EventTaskCompleted, evs[len(evs)-1].Type)
}

// An action accepted right after the TASK_SUSPENDED append, before Suspend
// even starts waiting, still reaches the handler.
func TestResumeBeforeSuspendReturns(t *testing.T) {
	t.Parallel()
	r := setup(t, runner.Config{Handlers: map[string]runner.HandlerFunc{"approval": approvalHandler(approvalOpts)}})
	resumeErr := make(chan error, 1)
	var f *fakeEmitter
	_, f = submit(t, r, "approval", func(fe *fakeEmitter) {
		fe.onSuspend = func(taskbridge.Suspension) {
			task, s, rec := fe.accept(t, "s1", "approve", "act-1")
			resumeErr <- r.Resume(context.Background(), task, s, rec)
		}
	})
	evs := f.waitTerminal(t)
	require.NoError(t, <-resumeErr)
	require.Equal(t, taskbridge.EventTaskCompleted, evs[len(evs)-1].Type)
	require.JSONEq(t, `{"result":{"action":"approve","by":"alice","id":"act-1","note":"ok"}}`, string(evs[len(evs)-1].Payload))
}

func TestResumeErrorsAndDuplicates(t *testing.T) {
	t.Parallel()
	holdAfter := make(chan struct{})
	r := setup(t, runner.Config{Handlers: map[string]runner.HandlerFunc{
		"approval": func(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (any, error) {
			a, err := runner.Suspend(ctx, e, approvalOpts)
			if err != nil {
				return nil, err
			}
			<-holdAfter // keep running after taking the action
			return a.ActionType, nil
		},
	}})
	t.Cleanup(func() { close(holdAfter) })
	_, f := submit(t, r, "approval")
	f.waitType(t, taskbridge.EventTaskSuspended)
	task, s, rec := f.accept(t, "s1", "approve", "act-1")

	// Not waiting on that suspension, or on that task at all.
	other := s
	other.SuspendID = "s2"
	require.ErrorIs(t, r.Resume(context.Background(), task, other, rec), runner.ErrNotWaiting)
	unknown := task
	unknown.ID = "not-here"
	require.ErrorIs(t, r.Resume(context.Background(), unknown, s, rec), runner.ErrNotWaiting)
	// A terminal task: nobody can take the action; the hand-off is done.
	ended := unknown
	ended.Status = taskbridge.StatusCompleted
	require.NoError(t, r.Resume(context.Background(), ended, s, rec))

	require.NoError(t, r.Resume(context.Background(), task, s, rec))
	f.waitType(t, taskbridge.EventTaskActionAccepted)
	// At-least-once hand-off: the same action again is fine, even after the
	// handler took it; a different one is not.
	require.NoError(t, r.Resume(context.Background(), task, s, rec))
	rec2 := rec
	rec2.ClientActionID = "act-2"
	require.Error(t, r.Resume(context.Background(), task, s, rec2))
}

func TestSuspendOutsideHandler(t *testing.T) {
	t.Parallel()
	_, err := runner.Suspend(context.Background(), newFakeEmitter("t"), approvalOpts)
	require.ErrorIs(t, err, runner.ErrNotInHandler)
}

func TestSuspendErrors(t *testing.T) {
	t.Parallel()
	errs := make(chan error, 3)
	r := setup(t, runner.Config{Logger: quietLogger(), Handlers: map[string]runner.HandlerFunc{
		"bad": func(ctx context.Context, _ *taskbridge.Task, e taskbridge.Emitter) (any, error) {
			_, err := runner.Suspend(ctx, e, taskbridge.SuspendOpts{SuspendID: "x"}) // no reason, no actions
			errs <- err
			_, err = runner.Suspend(ctx, newFakeEmitter("someone-else"), approvalOpts)
			errs <- err
			// The failed open left no waiter behind: the id can be used.
			opts := approvalOpts
			opts.SuspendID = "x"
			opts.ExpiresAt = new(time.Now().Add(-time.Second)) // already past
			_, err = runner.Suspend(ctx, e, opts)
			errs <- err
			return nil, err
		},
	}})
	_, f := submit(t, r, "bad")
	require.ErrorIs(t, <-errs, taskbridge.ErrInvalidEvent)
	require.Error(t, <-errs)
	require.ErrorIs(t, <-errs, runner.ErrSuspensionExpired)
	evs := f.waitTerminal(t)
	require.Equal(t, taskbridge.FailedPayload{Code: runner.CodeSuspensionExpired, Message: runner.ErrSuspensionExpired.Message},
		payloadOf(t, evs[len(evs)-1]))
}

func TestSuspendExpires(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		opts := approvalOpts
		opts.TTL = time.Minute
		r, err := runner.New(runner.Config{Logger: quietLogger(), Handlers: map[string]runner.HandlerFunc{
			"approval": approvalHandler(opts),
		}})
		require.NoError(t, err)
		start := time.Now()
		_, f := submit(t, r, "approval")

		synctest.Wait()
		require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskSuspended}, f.types(t))
		time.Sleep(opts.TTL - time.Millisecond) // fake time: just before the deadline
		synctest.Wait()
		require.Len(t, f.types(t), 2, "nothing happens before the deadline")

		time.Sleep(time.Millisecond)
		synctest.Wait()
		require.Equal(t, opts.TTL, time.Since(start))
		evs := f.events(t)
		require.Equal(t, []taskbridge.EventType{
			taskbridge.EventTaskStarted, taskbridge.EventTaskSuspended, taskbridge.EventTaskFailed,
		}, typesOf(evs))
		require.Equal(t, runner.CodeSuspensionExpired, payloadOf(t, evs[2]).(taskbridge.FailedPayload).Code)
		f.mu.Lock()
		require.Equal(t, taskbridge.SuspensionExpired, f.suspensions["s1"].Status, "the runner expired the suspension")
		f.mu.Unlock()
		require.NoError(t, r.Shutdown(context.Background()))
	})
}

// When the deadline timer fires just after an action was accepted, the
// action wins: the expiry finds the suspension RESOLVED and Suspend waits
// for the Resume on its way.
func TestSuspendExpiryLosesToAcceptedAction(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		opts := approvalOpts
		opts.TTL = time.Minute
		r, err := runner.New(runner.Config{Handlers: map[string]runner.HandlerFunc{"approval": approvalHandler(opts)}})
		require.NoError(t, err)
		closing := make(chan struct{})
		type accepted struct {
			task taskbridge.Task
			s    taskbridge.Suspension
			rec  taskbridge.ActionReceipt
		}
		acc := make(chan accepted, 1)
		var f *fakeEmitter
		_, f = submit(t, r, "approval", func(fe *fakeEmitter) {
			fe.onClose = func(string) {
				task, s, rec := fe.accept(t, "s1", "approve", "act-1")
				acc <- accepted{task, s, rec}
				close(closing)
			}
		})
		<-closing // fake time ran to the deadline
		synctest.Wait()
		require.Equal(t, []taskbridge.EventType{
			taskbridge.EventTaskStarted, taskbridge.EventTaskSuspended, taskbridge.EventTaskActionAccepted,
		}, f.types(t), "the handler still waits for the accepted action")
		a := <-acc
		require.NoError(t, r.Resume(context.Background(), a.task, a.s, a.rec))
		synctest.Wait()
		evs := f.events(t)
		require.Equal(t, taskbridge.EventTaskCompleted, evs[len(evs)-1].Type)
		require.NoError(t, r.Shutdown(context.Background()))
	})
}

func TestCancelDuringSuspend(t *testing.T) {
	t.Parallel()
	suspendErr := make(chan error, 1)
	r := setup(t, runner.Config{Handlers: map[string]runner.HandlerFunc{
		"approval": func(ctx context.Context, _ *taskbridge.Task, e taskbridge.Emitter) (any, error) {
			_, err := runner.Suspend(ctx, e, approvalOpts)
			suspendErr <- err
			return nil, err
		},
	}})
	task, f := submit(t, r, "approval")
	f.waitType(t, taskbridge.EventTaskSuspended)
	task.CancelRequested, task.CancelReason = true, "too_slow"
	require.NoError(t, r.Cancel(context.Background(), task))
	require.ErrorIs(t, <-suspendErr, context.Canceled)
	evs := f.waitTerminal(t)
	require.Equal(t, []taskbridge.EventType{
		taskbridge.EventTaskStarted, taskbridge.EventTaskSuspended, taskbridge.EventTaskCancelled,
	}, typesOf(evs))
	require.Equal(t, "too_slow", payloadOf(t, evs[2]).(taskbridge.CancelledPayload).Reason)
	f.mu.Lock()
	require.Equal(t, taskbridge.SuspensionCancelled, f.suspensions["s1"].Status)
	f.mu.Unlock()
	// A late hand-off (say a Reconcile with a stale task snapshot) finds
	// nobody waiting.
	running := taskbridge.Task{ID: task.ID, Status: taskbridge.StatusRunning}
	s := taskbridge.Suspension{TaskID: task.ID, SuspendedPayload: taskbridge.SuspendedPayload{SuspendID: "s1"}}
	rec := taskbridge.ActionReceipt{TaskID: task.ID, SuspendID: "s1", ClientActionID: "late", ActionType: "approve"}
	require.ErrorIs(t, r.Resume(context.Background(), running, s, rec), runner.ErrNotWaiting)
}
