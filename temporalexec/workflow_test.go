package temporalexec_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/temporalexec"
)

// greet emits steps progress events, stepDelayMs apart (a workflow timer),
// and completes with a greeting.
func greet(ctx workflow.Context, task *taskbridge.Task) (any, error) {
	var in struct {
		Name        string `json:"name"`
		Steps       int    `json:"steps"`
		StepDelayMs int    `json:"stepDelayMs"`
	}
	if err := json.Unmarshal(task.Input, &in); err != nil {
		return nil, temporalexec.NewFailure("BAD_INPUT", "input is not an object", false)
	}
	for i := 1; i <= in.Steps; i++ {
		if in.StepDelayMs > 0 {
			if err := workflow.Sleep(ctx, time.Duration(in.StepDelayMs)*time.Millisecond); err != nil {
				return nil, err
			}
		}
		if _, err := temporalexec.Emit(ctx, taskbridge.ProgressPayload{Progress: float64(100 * i / in.Steps)}); err != nil {
			return nil, err
		}
	}
	return map[string]string{"greeting": "Hello, " + in.Name + "!"}, nil
}

// approval waits for approve or reject, within ttl (1h by default).
func approval(ctx workflow.Context, task *taskbridge.Task) (any, error) {
	var in struct {
		TTLMs int `json:"ttlMs"`
	}
	_ = json.Unmarshal(task.Input, &in)
	ttl := time.Hour
	if in.TTLMs > 0 {
		ttl = time.Duration(in.TTLMs) * time.Millisecond
	}
	a, err := temporalexec.Suspend(ctx, taskbridge.SuspendOpts{
		ReasonCode: "APPROVAL_REQUIRED", AllowedActions: []string{"approve", "reject"}, TTL: ttl,
	})
	if err != nil {
		return nil, err
	}
	var note struct {
		Note string `json:"note"`
	}
	if err := a.Decode(&note); err != nil {
		return nil, err
	}
	if _, err := temporalexec.Emit(ctx, taskbridge.MessagePayload{Message: "decided: " + a.ActionType}); err != nil {
		return nil, err
	}
	return map[string]any{"approved": a.ActionType == "approve", "by": a.ActorID, "note": note.Note}, nil
}

var demoWorkflows = map[string]temporalexec.WorkflowFunc{"greet": greet, "approval": approval}

func TestGreetEmitsEveryStepOnce(t *testing.T) {
	t.Parallel()
	s := setup(t, demoWorkflows)
	task := s.create(t, "greet", map[string]any{"name": "Ada", "steps": 3, "stepDelayMs": 1000})
	s.execute(task)

	require.True(t, s.env.IsWorkflowCompleted())
	require.NoError(t, s.env.GetWorkflowError())
	var result map[string]string
	require.NoError(t, s.env.GetWorkflowResult(&result))
	require.Equal(t, map[string]string{"greeting": "Hello, Ada!"}, result)

	evs := s.events(t, task.ID)
	require.Equal(t, []taskbridge.EventType{
		taskbridge.EventTaskStarted, taskbridge.EventTaskProgress, taskbridge.EventTaskProgress,
		taskbridge.EventTaskProgress, taskbridge.EventTaskCompleted,
	}, types(evs))
	require.Equal(t, map[string]any{"message": temporalexec.DefaultStartedMessage}, payload(t, evs[0]))
	require.Equal(t, 33.0, payload(t, evs[1])["progress"])
	require.Equal(t, 100.0, payload(t, evs[3])["progress"])
	require.JSONEq(t, `{"result":{"greeting":"Hello, Ada!"}}`, string(evs[4].Payload))
	got, err := s.store.GetTask(context.Background(), task.ID)
	require.NoError(t, err)
	require.Equal(t, taskbridge.StatusCompleted, got.Status)
}

func TestRetriedActivitiesAppendOnce(t *testing.T) {
	t.Parallel()
	s := setup(t, demoWorkflows)
	// Every event is committed and then reported as failed once (twice
	// for the terminal event): each activity runs again.
	for _, typ := range []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskProgress, taskbridge.EventTaskCompleted} {
		s.store.lose[typ] = 2
	}
	task := s.create(t, "greet", map[string]any{"name": "Ada", "steps": 2, "stepDelayMs": 1000})
	s.execute(task)

	require.NoError(t, s.env.GetWorkflowError())
	require.Equal(t, 6, s.store.lost)
	require.Equal(t, []taskbridge.EventType{
		taskbridge.EventTaskStarted, taskbridge.EventTaskProgress, taskbridge.EventTaskProgress, taskbridge.EventTaskCompleted,
	}, types(s.events(t, task.ID)))
}

func TestApprovalThroughSignal(t *testing.T) {
	t.Parallel()
	s := setup(t, demoWorkflows)
	s.store.lose[taskbridge.EventTaskSuspended] = 1 // the suspension opens once anyway
	task := s.create(t, "approval", nil)
	s.env.RegisterDelayedCallback(func() {
		evs := s.events(t, task.ID)
		require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskSuspended}, types(evs))
		suspendID := payload(t, evs[1])["suspendId"].(string)
		for range 2 { // a repeated request is deduplicated and not signalled twice
			resp, err := s.svc.SubmitAction(context.Background(), alice, task.ID, taskbridge.ActionRequest{
				ClientActionID: "act-1", SuspendID: suspendID, ActionType: "approve",
				Payload: json.RawMessage(`{"note":"ok"}`),
			})
			require.NoError(t, err)
			require.Contains(t, []taskbridge.ActionStatus{taskbridge.ActionAccepted, taskbridge.ActionDeduplicated}, resp.Status)
		}
	}, time.Minute)
	s.execute(task)

	require.NoError(t, s.env.GetWorkflowError())
	evs := s.events(t, task.ID)
	require.Equal(t, []taskbridge.EventType{
		taskbridge.EventTaskStarted, taskbridge.EventTaskSuspended, taskbridge.EventTaskActionAccepted,
		taskbridge.EventTaskMessage, taskbridge.EventTaskCompleted,
	}, types(evs))
	sus := payload(t, evs[1])
	require.Equal(t, "APPROVAL_REQUIRED", sus["reasonCode"])
	require.Equal(t, []any{"approve", "reject"}, sus["allowedActions"])
	require.NotEmpty(t, sus["expiresAt"])
	require.JSONEq(t, `{"result":{"approved":true,"by":"alice","note":"ok"}}`, string(evs[4].Payload))
}

func TestSuspensionIDsDeriveFromTheWorkflowStep(t *testing.T) {
	t.Parallel()
	// The same task run twice (as after a reset) opens the same suspension.
	ids := make([]string, 2)
	for i := range ids {
		s := setup(t, demoWorkflows)
		task := s.createWithID(t, "00000000-0000-4000-8000-000000000001", "approval")
		s.env.RegisterDelayedCallback(func() {
			ids[i] = payload(t, s.events(t, task.ID)[1])["suspendId"].(string)
			s.env.CancelWorkflow()
		}, time.Minute)
		s.execute(task)
	}
	require.NotEmpty(t, ids[0])
	require.Equal(t, ids[0], ids[1])
}

func TestSuspensionExpires(t *testing.T) {
	t.Parallel()
	s := setup(t, demoWorkflows)
	task := s.create(t, "approval", map[string]any{"ttlMs": 60000})
	s.execute(task)

	err := s.env.GetWorkflowError()
	require.Error(t, err)
	evs := s.events(t, task.ID)
	require.Equal(t, []taskbridge.EventType{
		taskbridge.EventTaskStarted, taskbridge.EventTaskSuspended, taskbridge.EventTaskFailed,
	}, types(evs))
	require.Equal(t, map[string]any{
		"code": temporalexec.CodeSuspensionExpired, "message": "No action was taken before the suspension expired", "retryable": false,
	}, payload(t, evs[2]))
	sus, err := s.store.ListSuspensions(context.Background(), task.ID)
	require.NoError(t, err)
	require.Len(t, sus, 1)
	require.Equal(t, taskbridge.SuspensionExpired, sus[0].Status)

	// An action after the deadline is refused.
	resp, err := s.svc.SubmitAction(context.Background(), alice, task.ID, taskbridge.ActionRequest{
		ClientActionID: "late", SuspendID: sus[0].SuspendID, ActionType: "approve",
	})
	require.NoError(t, err)
	require.NotEqual(t, taskbridge.ActionAccepted, resp.Status)
}

func TestActionThatWinsTheDeadlineRaceIsTaken(t *testing.T) {
	t.Parallel()
	s := setup(t, demoWorkflows)
	task := s.create(t, "approval", map[string]any{"ttlMs": 60000})
	// Just before the deadline's activity closes the suspension, an action
	// is accepted; its hand-off (the signal) comes later.
	var accepted taskbridge.AcceptResult
	s.store.beforeClose = func(taskID, suspendID string) {
		now := time.Now().UTC().Truncate(time.Millisecond)
		raw, err := taskbridge.EncodePayload(taskbridge.ActionAcceptedPayload{
			SuspendID: suspendID, ClientActionID: "a", ActionType: "reject", AcceptedAt: now,
		})
		require.NoError(t, err)
		accepted, err = s.store.AcceptAction(context.Background(), taskbridge.ActionAttempt{
			Receipt: taskbridge.ActionReceipt{
				TaskID: taskID, SuspendID: suspendID, ClientActionID: "a", ActionType: "reject",
				ActorID: "bob", Fingerprint: "f", CreatedAt: now,
			},
			Event: taskbridge.TaskEvent{Type: taskbridge.EventTaskActionAccepted, TaskID: taskID, CreatedAt: now, Payload: raw},
			Now:   now,
		})
		require.NoError(t, err)
	}
	s.env.RegisterDelayedCallback(func() {
		require.Equal(t, taskbridge.ActionAccepted, accepted.Status)
		s.env.SignalWorkflow(temporalexec.SignalAction, temporalexec.Action{
			SuspendID: accepted.Suspension.SuspendID, ClientActionID: "a", ActionType: "reject", ActorID: "bob",
		})
	}, 2*time.Minute)
	s.execute(task)

	require.NoError(t, s.env.GetWorkflowError())
	evs := s.events(t, task.ID)
	require.Equal(t, taskbridge.EventTaskCompleted, evs[len(evs)-1].Type)
	require.JSONEq(t, `{"result":{"approved":false,"by":"bob","note":""}}`, string(evs[len(evs)-1].Payload))
}

func TestCancelWhileSuspended(t *testing.T) {
	t.Parallel()
	s := setup(t, demoWorkflows)
	task := s.create(t, "approval", nil)
	s.env.RegisterDelayedCallback(func() {
		resp, err := s.svc.CancelTask(context.Background(), alice, task.ID, taskbridge.CancelRequest{Reason: "changed my mind"})
		require.NoError(t, err)
		require.Equal(t, taskbridge.CancelRequested, resp.Status)
	}, time.Minute)
	s.execute(task)

	require.True(t, temporal.IsCanceledError(s.env.GetWorkflowError()))
	evs := s.events(t, task.ID)
	require.Equal(t, []taskbridge.EventType{
		taskbridge.EventTaskStarted, taskbridge.EventTaskSuspended, taskbridge.EventTaskCancelled,
	}, types(evs))
	require.Equal(t, map[string]any{"reason": "changed my mind", "message": "Task cancelled by the client"}, payload(t, evs[2]))
	sus, err := s.store.ListSuspensions(context.Background(), task.ID)
	require.NoError(t, err)
	require.Equal(t, taskbridge.SuspensionCancelled, sus[0].Status)
}

func TestCancelWinsOverALateResult(t *testing.T) {
	t.Parallel()
	s := setup(t, map[string]temporalexec.WorkflowFunc{
		"stubborn": func(ctx workflow.Context, _ *taskbridge.Task) (any, error) {
			_ = workflow.Sleep(ctx, time.Hour) // returns early when cancelled
			return "done anyway", nil
		},
	})
	task := s.create(t, "stubborn", nil)
	s.env.RegisterDelayedCallback(s.env.CancelWorkflow, time.Minute) // an operator's cancel
	s.execute(task)

	evs := s.events(t, task.ID)
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskCancelled}, types(evs))
	require.Equal(t, temporalexec.WorkflowCancelReason, payload(t, evs[1])["reason"])
}

func TestFailures(t *testing.T) {
	t.Parallel()
	var activityCalls atomic.Int32
	refuse := func(context.Context) error {
		activityCalls.Add(1)
		return temporalexec.NewFailure("QUOTA_EXCEEDED", "You are out of credits", true)
	}
	workflows := map[string]temporalexec.WorkflowFunc{
		"failure": func(ctx workflow.Context, _ *taskbridge.Task) (any, error) {
			return nil, errors.Join(errors.New("context"), temporalexec.NewFailure("BAD_INPUT", "name is required", false))
		},
		"activity-failure": func(ctx workflow.Context, _ *taskbridge.Task) (any, error) {
			ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
			return nil, workflow.ExecuteActivity(ctx, "refuse").Get(ctx, nil)
		},
		"plain-error": func(ctx workflow.Context, _ *taskbridge.Task) (any, error) {
			return nil, errors.New("db password is hunter2")
		},
		"bad-result": func(ctx workflow.Context, _ *taskbridge.Task) (any, error) {
			return math.Inf(1), nil
		},
		"wild-continue": func(ctx workflow.Context, task *taskbridge.Task) (any, error) {
			return nil, workflow.NewContinueAsNewError(ctx, "wild-continue", temporalexec.WorkflowInput{Task: *task})
		},
		"expired": func(ctx workflow.Context, _ *taskbridge.Task) (any, error) {
			return nil, temporalexec.ErrSuspensionExpired
		},
	}
	for name, want := range map[string]taskbridge.FailedPayload{
		"failure":          {Code: "BAD_INPUT", Message: "name is required", Retryable: false},
		"activity-failure": {Code: "QUOTA_EXCEEDED", Message: "You are out of credits", Retryable: true},
		"plain-error":      {Code: temporalexec.CodeTaskFailed, Message: "The task failed", Retryable: false},
		"bad-result":       {Code: temporalexec.CodeInternal, Message: "The task result could not be encoded", Retryable: false},
		"wild-continue":    {Code: temporalexec.CodeInternal, Message: "The task failed unexpectedly", Retryable: false},
		"expired":          {Code: temporalexec.CodeSuspensionExpired, Message: "No action was taken before the suspension expired", Retryable: false},
	} {
		t.Run(name, func(t *testing.T) {
			s := setup(t, workflows)
			s.env.RegisterActivityWithOptions(refuse, activity.RegisterOptions{Name: "refuse"})
			task := s.create(t, name, nil)
			s.execute(task)

			require.True(t, s.env.IsWorkflowCompleted())
			require.Error(t, s.env.GetWorkflowError())
			require.False(t, workflow.IsContinueAsNewError(s.env.GetWorkflowError()))
			evs := s.events(t, task.ID)
			require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskFailed}, types(evs))
			var got taskbridge.FailedPayload
			require.NoError(t, json.Unmarshal(evs[1].Payload, &got))
			require.Equal(t, want, got)
		})
	}
	require.EqualValues(t, 1, activityCalls.Load(), "a failure is not retried")
}

func TestEmitRefusesWhatTheAdapterOwns(t *testing.T) {
	t.Parallel()
	errs := map[string]error{}
	s := setup(t, map[string]temporalexec.WorkflowFunc{
		"misuse": func(ctx workflow.Context, _ *taskbridge.Task) (any, error) {
			for name, p := range map[string]taskbridge.Payload{
				"started":   taskbridge.StartedPayload{},
				"completed": taskbridge.CompletedPayload{},
				"failed":    taskbridge.FailedPayload{Code: "X"},
				"suspended": taskbridge.SuspendedPayload{},
				"progress":  taskbridge.ProgressPayload{Progress: 101},
				"nil":       nil,
			} {
				_, errs[name] = temporalexec.Emit(ctx, p)
			}
			_, errs["suspend"] = temporalexec.Suspend(ctx, taskbridge.SuspendOpts{}) // no reason code
			return nil, nil
		},
	})
	task := s.create(t, "misuse", nil)
	s.execute(task)
	require.NoError(t, s.env.GetWorkflowError())
	require.ErrorIs(t, errs["started"], taskbridge.ErrInvalidTransition)
	require.ErrorIs(t, errs["completed"], taskbridge.ErrInvalidTransition)
	require.ErrorIs(t, errs["failed"], taskbridge.ErrInvalidTransition)
	require.ErrorIs(t, errs["suspended"], taskbridge.ErrInvalidEvent)
	require.ErrorIs(t, errs["progress"], taskbridge.ErrInvalidEvent)
	require.ErrorIs(t, errs["nil"], taskbridge.ErrInvalidEvent)
	require.ErrorIs(t, errs["suspend"], taskbridge.ErrInvalidEvent, "the store's refusal comes back as its sentinel")
	// The refused suspension consumed no event; the task completed.
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskCompleted}, types(s.events(t, task.ID)))

	// A workflow not registered by Register has no step state.
	s2 := setup(t, demoWorkflows)
	s2.env.RegisterWorkflowWithOptions(func(ctx workflow.Context) error {
		_, errs["outside"] = temporalexec.Emit(ctx, taskbridge.MessagePayload{Message: "hi"})
		_, errs["outside-suspend"] = temporalexec.Suspend(ctx, taskbridge.SuspendOpts{})
		errs["outside-continue"] = temporalexec.ContinueAsNew(ctx, &taskbridge.Task{})
		return nil
	}, workflow.RegisterOptions{Name: "raw"})
	s2.env.ExecuteWorkflow("raw")
	require.NoError(t, s2.env.GetWorkflowError())
	for _, name := range []string{"outside", "outside-suspend", "outside-continue"} {
		require.ErrorIs(t, errs[name], temporalexec.ErrNotInWorkflow, name)
	}
}

func TestTaskEndedElsewhere(t *testing.T) {
	t.Parallel()
	s := setup(t, demoWorkflows)

	// Failed before the workflow started (say, by the service when the
	// start request timed out but reached Temporal): nothing is appended.
	task := s.create(t, "greet", map[string]any{"name": "Ada", "steps": 1})
	_, err := s.svc.Emitter(task.ID).Emit(context.Background(), taskbridge.FailedPayload{Code: "TASK_SUBMISSION_ERROR", Message: "x", Retryable: true})
	require.NoError(t, err)
	s.execute(task)
	require.NoError(t, s.env.GetWorkflowError())
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskFailed}, types(s.events(t, task.ID)))
}

func TestEmitAfterTheTaskEnded(t *testing.T) {
	t.Parallel()
	var emitErr error
	var s *suite
	s = setup(t, map[string]temporalexec.WorkflowFunc{
		"late": func(ctx workflow.Context, task *taskbridge.Task) (any, error) {
			if err := workflow.Sleep(ctx, time.Hour); err != nil {
				return nil, err
			}
			_, emitErr = temporalexec.Emit(ctx, taskbridge.MessagePayload{Message: "too late"})
			return nil, emitErr
		},
	})
	task := s.create(t, "late", nil)
	s.env.RegisterDelayedCallback(func() {
		_, err := s.svc.Emitter(task.ID).Emit(context.Background(), taskbridge.FailedPayload{Code: "ENDED_ELSEWHERE", Message: "x"})
		require.NoError(t, err)
	}, time.Minute)
	s.execute(task)

	require.ErrorIs(t, emitErr, taskbridge.ErrTaskTerminal)
	evs := s.events(t, task.ID)
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskFailed}, types(evs))
	require.Equal(t, "ENDED_ELSEWHERE", payload(t, evs[1])["code"])
}

func TestContinueAsNewKeepsSteps(t *testing.T) {
	t.Parallel()
	// counter counts to input.n, one progress event and one run per step.
	counter := func(ctx workflow.Context, task *taskbridge.Task) (any, error) {
		var in struct{ I, N int }
		if err := json.Unmarshal(task.Input, &in); err != nil {
			return nil, err
		}
		if in.I == in.N {
			return map[string]int{"count": in.I}, nil
		}
		in.I++
		if _, err := temporalexec.Emit(ctx, taskbridge.ProgressPayload{Progress: float64(100 * in.I / in.N)}); err != nil {
			return nil, err
		}
		next, _ := json.Marshal(in)
		task.Input = next
		return nil, temporalexec.ContinueAsNew(ctx, task)
	}
	s := setup(t, map[string]temporalexec.WorkflowFunc{"counter": counter})
	task := s.create(t, "counter", map[string]int{"I": 0, "N": 3})
	in := temporalexec.WorkflowInput{Task: task}
	for run := 0; ; run++ {
		require.Less(t, run, 5)
		next := s.newEnv(t, map[string]temporalexec.WorkflowFunc{"counter": counter})
		if run == 1 {
			// An action signalled to a run that does not take it is
			// carried over to the next run.
			next.RegisterDelayedCallback(func() {
				next.SignalWorkflow(temporalexec.SignalAction, temporalexec.Action{SuspendID: "s-later", ClientActionID: "c", ActionType: "ok"})
			}, 0)
		}
		next.SetStartWorkflowOptions(startOptions(task.ID))
		next.ExecuteWorkflow("counter", in)
		err := next.GetWorkflowError()
		if err == nil {
			break
		}
		var can *workflow.ContinueAsNewError
		require.ErrorAs(t, err, &can)
		require.Equal(t, "counter", can.WorkflowType.Name)
		in = temporalexec.WorkflowInput{}
		require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &in))
		require.Equal(t, task.ID, in.Task.ID)
		require.Equal(t, run+2, in.Step, "TASK_STARTED and one progress step per run")
		if run >= 1 {
			require.Len(t, in.Actions, 1)
			require.Equal(t, "s-later", in.Actions[0].SuspendID)
		}
	}
	evs := s.events(t, task.ID)
	require.Equal(t, []taskbridge.EventType{
		taskbridge.EventTaskStarted, taskbridge.EventTaskProgress, taskbridge.EventTaskProgress,
		taskbridge.EventTaskProgress, taskbridge.EventTaskCompleted,
	}, types(evs))
	require.JSONEq(t, `{"result":{"count":3}}`, string(evs[4].Payload))
}
