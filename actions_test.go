package taskbridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
)

// suspended creates a running task with an open suspension allowing
// approve/reject that expires in ttl (0 = never).
func (e *env) suspended(t *testing.T, crid string, ttl time.Duration) (taskID, suspendID string) {
	t.Helper()
	id := e.started(t, alice, crid)
	sus, err := e.svc.Emitter(id).Suspend(context.Background(), taskbridge.SuspendOpts{
		ReasonCode: "approval_required", AllowedActions: []string{"approve", "reject"}, TTL: ttl,
	})
	require.NoError(t, err)
	return id, sus.SuspendID
}

func action(id, suspendID, actionType string) taskbridge.ActionRequest {
	return taskbridge.ActionRequest{ClientActionID: id, SuspendID: suspendID, ActionType: actionType,
		Payload: json.RawMessage(`{"note":"ok"}`)}
}

func TestSubmitAction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("accepted, then deduplicated, then conflict", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		id, sid := e.suspended(t, "c", 0)
		resp, err := e.svc.SubmitAction(ctx, alice, id, action("a1", sid, "approve"))
		require.NoError(t, err)
		require.Equal(t, taskbridge.ActionResponse{TaskID: id, SuspendID: sid, ClientActionID: "a1", Status: taskbridge.ActionAccepted}, resp)

		resumes := e.exec.resumes()
		require.Len(t, resumes, 1)
		require.Equal(t, "approve", resumes[0].ActionType)
		require.JSONEq(t, `{"note":"ok"}`, string(resumes[0].Payload))
		require.Equal(t, "alice", resumes[0].ActorID)
		sus, err := e.store.GetSuspension(ctx, id, sid)
		require.NoError(t, err)
		require.Equal(t, taskbridge.SuspensionResolved, sus.Status)
		require.Equal(t, taskbridge.ResumeDispatched, sus.ResumeStatus)

		// The accept is in the log, exactly once.
		poll, err := e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{AfterEventID: "2"})
		require.NoError(t, err)
		require.Len(t, poll.Events, 1)
		require.Equal(t, taskbridge.EventTaskActionAccepted, poll.Events[0].Type)
		validateEvents(t, poll.Events...)
		p, err := taskbridge.DecodePayload(poll.Events[0])
		require.NoError(t, err)
		acc := p.(taskbridge.ActionAcceptedPayload)
		require.Equal(t, "a1", acc.ClientActionID)
		require.Equal(t, e.clock.Now(), acc.AcceptedAt)

		// Identical retry (payload key order is irrelevant).
		retry := action("a1", sid, "approve")
		retry.Payload = json.RawMessage(` {"note": "ok"} `)
		resp, err = e.svc.SubmitAction(ctx, alice, id, retry)
		require.NoError(t, err)
		require.Equal(t, taskbridge.ActionDeduplicated, resp.Status)

		// Same clientActionId, different content.
		_, err = e.svc.SubmitAction(ctx, alice, id, action("a1", sid, "reject"))
		require.ErrorIs(t, err, taskbridge.ErrIdempotencyConflict)
		status, _, _ := taskbridge.HTTPError(err)
		require.Equal(t, 409, status)

		// A different action on the resolved suspension.
		resp, err = e.svc.SubmitAction(ctx, alice, id, action("a2", sid, "reject"))
		require.NoError(t, err)
		require.Equal(t, taskbridge.ActionRejectedAlreadyResolved, resp.Status)

		require.Len(t, e.exec.resumes(), 1)
		require.EqualValues(t, 1, e.metrics.Value(taskbridge.MetricActions, taskbridge.Label{Name: "status", Value: "ACCEPTED"}))
		require.EqualValues(t, 1, e.metrics.Value(taskbridge.MetricActions, taskbridge.Label{Name: "status", Value: "DEDUPLICATED"}))
		require.EqualValues(t, 1, e.metrics.Value(taskbridge.MetricActions, taskbridge.Label{Name: "status", Value: "REJECTED_ALREADY_RESOLVED"}))
		require.EqualValues(t, 1, e.metrics.Value(taskbridge.MetricActionsAccepted))
	})

	t.Run("check order", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		id, sid := e.suspended(t, "c", 0)
		// Ownership before anything else.
		_, err := e.svc.SubmitAction(ctx, bob, id, action("a1", "nope", "bogus"))
		require.ErrorIs(t, err, taskbridge.ErrTaskNotFound)
		// Unknown suspension before the action type.
		_, err = e.svc.SubmitAction(ctx, alice, id, action("a1", "nope", "bogus"))
		require.ErrorIs(t, err, taskbridge.ErrTaskNotFound)
		// Action type before the receipt.
		_, err = e.svc.SubmitAction(ctx, alice, id, action("a1", sid, "bogus"))
		require.ErrorIs(t, err, taskbridge.ErrInvalidRequest)
		status, code, _ := taskbridge.HTTPError(err)
		require.Equal(t, 400, status)
		require.Equal(t, taskbridge.CodeInvalidRequest, code)
		// Field validation.
		var verr *taskbridge.ValidationError
		_, err = e.svc.SubmitAction(ctx, alice, id, taskbridge.ActionRequest{Payload: json.RawMessage(`[]`)})
		require.ErrorAs(t, err, &verr)
		require.Len(t, verr.Fields, 4)
		require.Empty(t, e.exec.resumes())
	})

	t.Run("expired at submit time", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		id, sid := e.suspended(t, "c", time.Minute)
		e.clock.Advance(time.Minute) // no sweep has run
		resp, err := e.svc.SubmitAction(ctx, alice, id, action("a1", sid, "approve"))
		require.NoError(t, err)
		require.Equal(t, taskbridge.ActionRejectedExpired, resp.Status)
		sus, err := e.store.GetSuspension(ctx, id, sid)
		require.NoError(t, err)
		require.Equal(t, taskbridge.SuspensionExpired, sus.Status)
		resp, err = e.svc.SubmitAction(ctx, alice, id, action("a2", sid, "approve"))
		require.NoError(t, err)
		require.Equal(t, taskbridge.ActionRejectedExpired, resp.Status)
		require.Empty(t, e.exec.resumes())
	})

	t.Run("terminal task", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		id, sid := e.suspended(t, "c", 0)
		e.emit(t, id, taskbridge.CancelledPayload{Reason: "stop"})
		resp, err := e.svc.SubmitAction(ctx, alice, id, action("a1", sid, "approve"))
		require.NoError(t, err)
		require.Equal(t, taskbridge.ActionRejectedAlreadyResolved, resp.Status)
	})

	t.Run("concurrent accepts have one winner", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		id, sid := e.suspended(t, "c", 0)
		const n = 50
		statuses := make([]taskbridge.ActionStatus, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := e.svc.SubmitAction(ctx, alice, id, action(fmt.Sprintf("a%d", i), sid, "approve"))
				if err != nil {
					t.Error(err)
					return
				}
				statuses[i] = resp.Status
			}()
		}
		wg.Wait()
		counts := map[taskbridge.ActionStatus]int{}
		for _, s := range statuses {
			counts[s]++
		}
		require.Equal(t, map[taskbridge.ActionStatus]int{taskbridge.ActionAccepted: 1, taskbridge.ActionRejectedAlreadyResolved: n - 1}, counts)
		require.Len(t, e.exec.resumes(), 1)
		poll, err := e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{})
		require.NoError(t, err)
		accepted := 0
		for _, ev := range poll.Events {
			if ev.Type == taskbridge.EventTaskActionAccepted {
				accepted++
			}
		}
		require.Equal(t, 1, accepted)
	})

	t.Run("failed resume is reconciled", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		id1, sid1 := e.suspended(t, "c1", 0)
		id2, sid2 := e.suspended(t, "c2", 0)
		broken := map[string]bool{id1: true, id2: true}
		var mu sync.Mutex
		e.exec.resumeErr = func(taskID string) error {
			mu.Lock()
			defer mu.Unlock()
			if broken[taskID] {
				return errors.New("executor unreachable")
			}
			return nil
		}
		for _, c := range []struct{ id, sid string }{{id1, sid1}, {id2, sid2}} {
			resp, err := e.svc.SubmitAction(ctx, alice, c.id, action("a", c.sid, "approve"))
			require.NoError(t, err)
			require.Equal(t, taskbridge.ActionAccepted, resp.Status, "the accept stands even if the hand-off fails")
			sus, err := e.store.GetSuspension(ctx, c.id, c.sid)
			require.NoError(t, err)
			require.Equal(t, taskbridge.ResumePending, sus.ResumeStatus)
		}
		require.EqualValues(t, 2, e.metrics.Value(taskbridge.MetricActionsResumePending))

		// One of them recovers: the other's failure does not stop the pass.
		mu.Lock()
		broken[id2] = false
		mu.Unlock()
		rep, err := e.svc.Reconcile(ctx)
		require.NoError(t, err)
		require.Equal(t, taskbridge.ReconcileReport{Dispatched: 1, Failed: 1}, rep)
		sus, err := e.store.GetSuspension(ctx, id2, sid2)
		require.NoError(t, err)
		require.Equal(t, taskbridge.ResumeDispatched, sus.ResumeStatus)

		mu.Lock()
		broken[id1] = false
		mu.Unlock()
		rep, err = e.svc.Reconcile(ctx)
		require.NoError(t, err)
		require.Equal(t, taskbridge.ReconcileReport{Dispatched: 1}, rep)
		rep, err = e.svc.Reconcile(ctx)
		require.NoError(t, err)
		require.Zero(t, rep)
		require.Len(t, e.exec.resumes(), 2)
		require.EqualValues(t, 2, e.metrics.Value(taskbridge.MetricActionsResumePending), "counted once per failed accept, not per retry")
	})
}

func TestPrune(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t, func(c *taskbridge.Config, _ *memstore.Config) {
		c.ReceiptRetention = time.Hour
		c.TaskRetention = 2 * time.Hour
	})
	idExp, sidExp := e.suspended(t, "exp", time.Minute)
	idAcc, sidAcc := e.suspended(t, "acc", 0)
	_, err := e.svc.SubmitAction(ctx, alice, idAcc, action("a", sidAcc, "approve"))
	require.NoError(t, err)
	e.emit(t, idAcc, taskbridge.CompletedPayload{Result: true})

	e.clock.Advance(time.Minute)
	rep, err := e.svc.Prune(ctx)
	require.NoError(t, err)
	require.Equal(t, taskbridge.PruneReport{SuspensionsExpired: 1}, rep)
	sus, err := e.store.GetSuspension(ctx, idExp, sidExp)
	require.NoError(t, err)
	require.Equal(t, taskbridge.SuspensionExpired, sus.Status)

	e.clock.Advance(time.Hour)
	rep, err = e.svc.Prune(ctx)
	require.NoError(t, err)
	require.Equal(t, taskbridge.PruneReport{ReceiptsDeleted: 1}, rep)
	_, err = e.store.GetReceipt(ctx, idAcc, "a")
	require.ErrorIs(t, err, taskbridge.ErrReceiptNotFound)

	e.clock.Advance(time.Hour)
	rep, err = e.svc.Prune(ctx)
	require.NoError(t, err)
	require.Equal(t, taskbridge.PruneReport{TasksDeleted: 1}, rep)
	_, err = e.svc.GetTask(ctx, alice, idAcc)
	require.ErrorIs(t, err, taskbridge.ErrTaskNotFound)
	_, err = e.svc.GetTask(ctx, alice, idExp)
	require.NoError(t, err, "running tasks are kept")
}

// TestPruneDefaultRetention: terminal tasks are deleted after
// DefaultTaskRetention unless the host asks to keep them forever.
func TestPruneDefaultRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, tc := range map[string]struct {
		retention time.Duration
		deleted   int
	}{
		"default": {0, 1},
		"forever": {-1, 0},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, func(c *taskbridge.Config, _ *memstore.Config) { c.TaskRetention = tc.retention })
			done := e.started(t, alice, "done")
			e.emit(t, done, taskbridge.CompletedPayload{Result: true})
			running := e.started(t, alice, "running")

			e.clock.Advance(taskbridge.DefaultTaskRetention - time.Second)
			rep, err := e.svc.Prune(ctx)
			require.NoError(t, err)
			require.Zero(t, rep.TasksDeleted, "kept until the retention has passed")

			e.clock.Advance(2 * time.Second)
			rep, err = e.svc.Prune(ctx)
			require.NoError(t, err)
			require.Equal(t, tc.deleted, rep.TasksDeleted)
			_, err = e.svc.GetTask(ctx, alice, done)
			if tc.deleted == 1 {
				require.ErrorIs(t, err, taskbridge.ErrTaskNotFound)
			} else {
				require.NoError(t, err)
			}
			_, err = e.svc.GetTask(ctx, alice, running)
			require.NoError(t, err, "running tasks are kept")
		})
	}
}

func TestRunMaintenance(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id, sid := e.suspended(t, "c", 0)
	var mu sync.Mutex
	fail := true
	e.exec.resumeErr = func(string) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return errors.New("down")
		}
		return nil
	}
	_, err := e.svc.SubmitAction(context.Background(), alice, id, action("a", sid, "approve"))
	require.NoError(t, err)
	mu.Lock()
	fail = false
	mu.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.svc.RunMaintenance(ctx, 5*time.Millisecond) }()
	require.Eventually(t, func() bool {
		sus, err := e.store.GetSuspension(context.Background(), id, sid)
		return err == nil && sus.ResumeStatus == taskbridge.ResumeDispatched
	}, 5*time.Second, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	require.Error(t, e.svc.RunMaintenance(context.Background(), 0))
}
