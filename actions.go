package taskbridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// SubmitAction answers a suspension of a task. The checks run in this order:
// the caller must see the task and the suspension must exist (else
// [ErrTaskNotFound]); the action type must be allowed (else
// [ErrInvalidRequest]); a repeated clientActionId with the same content is
// DEDUPLICATED and with different content fails with
// [ErrIdempotencyConflict]; an expired suspension gives REJECTED_EXPIRED; a
// suspension that is no longer OPEN, or a terminal task, gives
// REJECTED_ALREADY_RESOLVED; otherwise the action is ACCEPTED: the
// suspension is resolved, the receipt stored and TASK_ACTION_ACCEPTED
// appended in one atomic step, and then the executor's [Resumer] is called
// (with several processes, by the process running the task: see
// [LocalExecutor]). If that call fails the hand-off stays PENDING for
// [Service.Reconcile].
func (s *Service) SubmitAction(ctx context.Context, auth AuthContext, taskID string, req ActionRequest) (ActionResponse, error) {
	if s.hist == nil {
		return s.submitAction(ctx, auth, taskID, req)
	}
	start := time.Now()
	resp, err := s.submitAction(ctx, auth, taskID, req)
	status := string(resp.Status)
	if err != nil {
		status = "ERROR"
	}
	s.hist.Observe(MetricActionLatency, time.Since(start).Seconds(), Label{"status", status})
	return resp, err
}

func (s *Service) submitAction(ctx context.Context, auth AuthContext, taskID string, req ActionRequest) (ActionResponse, error) {
	if err := s.checkOpen(); err != nil {
		return ActionResponse{}, err
	}
	var verr ValidationError
	checkID(&verr, "clientActionId", req.ClientActionID)
	checkID(&verr, "suspendId", req.SuspendID)
	checkID(&verr, "actionType", req.ActionType)
	payload := checkObject(&verr, "payload", req.Payload)
	metadata := checkObject(&verr, "metadata", req.Metadata)
	if err := verr.Err(); err != nil {
		return ActionResponse{}, err
	}
	if _, err := s.ownedTask(ctx, auth, taskID); err != nil {
		return ActionResponse{}, err
	}
	sus, err := s.store.GetSuspension(ctx, taskID, req.SuspendID)
	if err != nil {
		if errors.Is(err, ErrSuspensionNotFound) {
			return ActionResponse{}, fmt.Errorf("%w: task %s has no suspension %s",
				ErrTaskNotFound, taskID, truncate(req.SuspendID, 64))
		}
		return ActionResponse{}, err
	}
	if !slices.Contains(sus.AllowedActions, req.ActionType) {
		return ActionResponse{}, fmt.Errorf("%w: actionType %q is not allowed; allowed: %s",
			ErrInvalidRequest, truncate(req.ActionType, 64), strings.Join(sus.AllowedActions, ", "))
	}

	now := s.clock()
	accepted, err := EncodePayload(ActionAcceptedPayload{
		SuspendID: req.SuspendID, ClientActionID: req.ClientActionID, ActionType: req.ActionType, AcceptedAt: now,
	})
	if err != nil {
		return ActionResponse{}, err
	}
	res, err := s.store.AcceptAction(ctx, ActionAttempt{
		Receipt: ActionReceipt{
			TaskID:         taskID,
			SuspendID:      req.SuspendID,
			ClientActionID: req.ClientActionID,
			ActionType:     req.ActionType,
			Payload:        payload,
			Metadata:       metadata,
			ActorID:        auth.Subject,
			Fingerprint:    actionFingerprint(req.SuspendID, req.ActionType, payload),
			CreatedAt:      now,
		},
		Event: TaskEvent{Type: EventTaskActionAccepted, TaskID: taskID, CreatedAt: now, Payload: accepted},
		Now:   now,
	})
	attrs := []slog.Attr{
		slog.String("taskId", taskID), slog.String("clientRequestId", req.ClientActionID),
		slog.String("userId", auth.Subject),
	}
	if err != nil {
		if errors.Is(err, ErrIdempotencyConflict) {
			s.log.LogAttrs(ctx, slog.LevelInfo, "taskbridge: action conflict", append(attrs, slog.String("outcome", "conflict"))...)
			return ActionResponse{}, fmt.Errorf("%w: clientActionId %q was used for a different action",
				ErrIdempotencyConflict, truncate(req.ClientActionID, 64))
		}
		if errors.Is(err, ErrSuspensionNotFound) {
			return ActionResponse{}, fmt.Errorf("%w: task %s has no suspension %s", ErrTaskNotFound, taskID, truncate(req.SuspendID, 64))
		}
		return ActionResponse{}, err
	}
	s.metrics.AddCounter(MetricActions, 1, Label{"status", string(res.Status)})
	if res.Status == ActionAccepted {
		s.metrics.AddCounter(MetricActionsAccepted, 1)
		attrs = append(attrs, slog.String("eventId", res.Event.EventID))
		if s.holdsElsewhere(taskID) {
			// The process running the task resumes it when its relay
			// hears of the action.
			s.log.LogAttrs(ctx, slog.LevelDebug, "taskbridge: resume left to the process running the task",
				append(attrs, slog.String("outcome", "relayed"))...)
		} else if err := s.resumeTask(context.WithoutCancel(ctx), taskID, res.Suspension, res.Receipt); err != nil {
			s.metrics.AddCounter(MetricActionsResumePending, 1)
			s.log.LogAttrs(ctx, slog.LevelWarn, "taskbridge: resume hand-off failed; left pending",
				append(attrs, slog.String("outcome", "resume_pending"), slog.Any("error", err))...)
		}
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "taskbridge: action submitted", append(attrs, slog.String("outcome", string(res.Status)))...)
	return ActionResponse{TaskID: taskID, SuspendID: req.SuspendID, ClientActionID: req.ClientActionID, Status: res.Status}, nil
}

// resumeTask loads the whole task (the executor may need its input) and
// resumes it.
func (s *Service) resumeTask(ctx context.Context, taskID string, sus Suspension, rec ActionReceipt) error {
	task, err := s.store.GetTask(ctx, taskID)
	if err != nil {
		return err
	}
	return s.resume(ctx, task, sus, rec)
}

// resume hands an accepted action to the executor's [Resumer] and records
// the hand-off as dispatched. On error the hand-off stays PENDING.
func (s *Service) resume(ctx context.Context, task Task, sus Suspension, rec ActionReceipt) error {
	if r, ok := s.exec.(Resumer); ok {
		if err := r.Resume(ctx, task, sus, rec); err != nil {
			return err
		}
	}
	if err := s.store.MarkResumeDispatched(ctx, task.ID, sus.SuspendID); err != nil {
		return fmt.Errorf("taskbridge: recording resume hand-off: %w", err)
	}
	return nil
}
