package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/storecheck"
)

// OpenSuspension implements [taskbridge.SuspensionStore]. The stored
// suspension starts OPEN with ResumeStatus NONE, whatever sp says; sp.TaskID
// may be empty (it is taken from ev).
func (s *Store) OpenSuspension(ctx context.Context, sp taskbridge.Suspension, ev taskbridge.TaskEvent) (taskbridge.Suspension, taskbridge.TaskEvent, error) {
	if sp.TaskID == "" {
		sp.TaskID = ev.TaskID
	}
	if err := storecheck.EventOf(ev, taskbridge.EventTaskSuspended, sp.TaskID); err != nil {
		return taskbridge.Suspension{}, taskbridge.TaskEvent{}, err
	}
	if sp.SuspendID == "" {
		return taskbridge.Suspension{}, taskbridge.TaskEvent{}, invalidRequest("suspendId is empty")
	}
	data, err := json.Marshal(suspensionData{Payload: sp.SuspendedPayload, CreatedAt: ev.CreatedAt})
	if err != nil {
		return taskbridge.Suspension{}, taskbridge.TaskEvent{}, invalidRequest("suspension %q: %v", sp.SuspendID, err)
	}
	expires := ""
	if sp.ExpiresAt != nil {
		expires = timeKey(*sp.ExpiresAt)
	}
	args := s.k.taskArgs(sp.TaskID, s.eventArgs(ev)...)
	args = append(args, sp.SuspendID, data, expires)
	r, err := s.run(ctx, "open suspension", openScript, s.k.taskKeys(sp.TaskID), args...)
	if err != nil {
		return taskbridge.Suspension{}, taskbridge.TaskEvent{}, err
	}
	switch r.str(0) {
	case "OK":
	case "DUPLICATE":
		return taskbridge.Suspension{}, taskbridge.TaskEvent{}, fmt.Errorf("%w: task %q already has suspension %q",
			taskbridge.ErrDuplicateSuspension, sp.TaskID, sp.SuspendID)
	default:
		return taskbridge.Suspension{}, taskbridge.TaskEvent{}, appendFailure("open suspension", sp.TaskID, ev.Type, r)
	}
	ev, err = withSeq(ev, r.str(1))
	if err != nil {
		return taskbridge.Suspension{}, taskbridge.TaskEvent{}, err
	}
	// The stored copy, decoded from what was stored, so that the caller's
	// maps are not shared.
	var stored suspensionData
	if err := json.Unmarshal(data, &stored); err != nil {
		return taskbridge.Suspension{}, taskbridge.TaskEvent{}, err
	}
	out := taskbridge.Suspension{
		TaskID:           sp.TaskID,
		SuspendedPayload: stored.Payload,
		Status:           taskbridge.SuspensionOpen,
		EventSeq:         ev.Seq,
		ResumeStatus:     taskbridge.ResumeNone,
		CreatedAt:        ev.CreatedAt.UTC(),
	}
	if out.ExpiresAt != nil {
		at := out.ExpiresAt.UTC()
		out.ExpiresAt = &at
	}
	return out, ev, nil
}

// suspensionFieldNames returns the hash fields decodeSuspension needs for
// suspendID.
func suspensionFieldNames(suspendID string) []string {
	out := make([]string, len(suspensionFields))
	for i, p := range suspensionFields {
		out[i] = p + suspendID
	}
	return out
}

// GetSuspension implements [taskbridge.SuspensionStore].
func (s *Store) GetSuspension(ctx context.Context, taskID, suspendID string) (taskbridge.Suspension, error) {
	f, err := s.fields(ctx, "get suspension", taskID, s.k.susp(taskID), suspensionFieldNames(suspendID)...)
	if err != nil {
		return taskbridge.Suspension{}, err
	}
	if len(f) == 0 || f[0] == nil {
		return taskbridge.Suspension{}, suspensionNotFound(taskID, suspendID)
	}
	return decodeSuspension(taskID, f)
}

// ListSuspensions implements [taskbridge.SuspensionStore].
func (s *Store) ListSuspensions(ctx context.Context, taskID string) ([]taskbridge.Suspension, error) {
	flat, err := s.fields(ctx, "list suspensions", taskID, s.k.susp(taskID))
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		m[flat.str(i)] = flat.str(i + 1)
	}
	out := []taskbridge.Suspension{}
	for name := range m {
		sid, ok := strings.CutPrefix(name, "d:")
		if !ok {
			continue
		}
		f := make(reply, len(suspensionFields))
		for i, p := range suspensionFields {
			if v, ok := m[p+sid]; ok {
				f[i] = v
			}
		}
		sp, err := decodeSuspension(taskID, f)
		if err != nil {
			return nil, err
		}
		out = append(out, sp)
	}
	sortSuspensions(out)
	return out, nil
}

// AcceptAction implements [taskbridge.SuspensionStore] in one script. The
// task and the suspension named by a.Receipt must exist before the
// decision table applies, and a.Event must be a TASK_ACTION_ACCEPTED event
// of that task (else [taskbridge.ErrInvalidEvent]). DEDUPLICATED returns
// the suspension the existing receipt answered. An accepted action
// notifies the [taskbridge.ControlFeed] watchers of every process.
func (s *Store) AcceptAction(ctx context.Context, a taskbridge.ActionAttempt) (taskbridge.AcceptResult, error) {
	taskID := a.Receipt.TaskID
	if err := storecheck.EventOf(a.Event, taskbridge.EventTaskActionAccepted, taskID); err != nil {
		return taskbridge.AcceptResult{}, err
	}
	if a.Receipt.ClientActionID == "" {
		return taskbridge.AcceptResult{}, invalidRequest("clientActionId is empty")
	}
	rc := a.Receipt
	data, err := json.Marshal(receiptData{
		TaskID: rc.TaskID, SuspendID: rc.SuspendID, ClientActionID: rc.ClientActionID, ActionType: rc.ActionType,
		Payload: rc.Payload, Metadata: rc.Metadata, ActorID: rc.ActorID, Fingerprint: rc.Fingerprint, CreatedAt: rc.CreatedAt,
	})
	if err != nil {
		return taskbridge.AcceptResult{}, invalidRequest("receipt %q: %v", rc.ClientActionID, err)
	}
	args := s.k.taskArgs(taskID, s.eventArgs(a.Event)...)
	args = append(args, rc.SuspendID, rc.ClientActionID, rc.Fingerprint, data, timeKey(a.Now), timeKey(rc.CreatedAt))
	r, err := s.run(ctx, "accept action", acceptScript, s.k.taskKeys(taskID), args...)
	if err != nil {
		return taskbridge.AcceptResult{}, err
	}
	var res taskbridge.AcceptResult
	switch code := r.str(0); code {
	case "ACCEPTED", "DEDUPLICATED", "REJECTED_EXPIRED", "REJECTED_ALREADY_RESOLVED":
		res.Status = taskbridge.ActionStatus(code)
	case "NOSUSP":
		return taskbridge.AcceptResult{}, suspensionNotFound(taskID, rc.SuspendID)
	case "CONFLICT":
		return taskbridge.AcceptResult{}, fmt.Errorf("%w: clientActionId %q of task %q was used for a different action",
			taskbridge.ErrIdempotencyConflict, rc.ClientActionID, taskID)
	default:
		return taskbridge.AcceptResult{}, appendFailure("accept action", taskID, a.Event.Type, r)
	}
	if res.Suspension, err = decodeSuspension(taskID, r.sub(2)); err != nil {
		return taskbridge.AcceptResult{}, err
	}
	if res.Status == taskbridge.ActionAccepted || res.Status == taskbridge.ActionDeduplicated {
		if res.Receipt, err = decodeReceipt(r.sub(3)); err != nil {
			return taskbridge.AcceptResult{}, err
		}
	}
	if res.Status == taskbridge.ActionAccepted {
		if res.Event, err = withSeq(a.Event, r.str(1)); err != nil {
			return taskbridge.AcceptResult{}, err
		}
	}
	return res, nil
}

// CloseSuspension implements [taskbridge.SuspensionStore]. A status other
// than EXPIRED or CANCELLED fails with [taskbridge.ErrInvalidTransition].
func (s *Store) CloseSuspension(ctx context.Context, taskID, suspendID string, status taskbridge.SuspensionStatus, now time.Time) (taskbridge.Suspension, bool, error) {
	if status != taskbridge.SuspensionExpired && status != taskbridge.SuspensionCancelled {
		return taskbridge.Suspension{}, false, fmt.Errorf("%w: a suspension is closed as EXPIRED or CANCELLED, not %q",
			taskbridge.ErrInvalidTransition, status)
	}
	r, err := s.run(ctx, "close suspension", closeScript, s.k.taskKeys(taskID),
		s.k.taskArgs(taskID, suspendID, string(status), timeKey(now))...)
	if err != nil {
		return taskbridge.Suspension{}, false, err
	}
	switch r.str(0) {
	case "CHANGED", "UNCHANGED":
		sp, err := decodeSuspension(taskID, r.sub(1))
		return sp, r.str(0) == "CHANGED", err
	case "NOTFOUND":
		return taskbridge.Suspension{}, false, taskNotFound(taskID)
	case "NOSUSP":
		return taskbridge.Suspension{}, false, suspensionNotFound(taskID, suspendID)
	}
	return taskbridge.Suspension{}, false, unexpected("close suspension", r)
}

// ExpireSuspensions implements [taskbridge.SuspensionStore] over an index
// of OPEN suspensions by deadline, earliest first; each gets ClosedAt =
// now. A limit below 1 fails with [taskbridge.ErrInvalidRequest].
func (s *Store) ExpireSuspensions(ctx context.Context, now time.Time, limit int) ([]taskbridge.Suspension, error) {
	if err := storecheck.Limit(limit); err != nil {
		return nil, err
	}
	r, err := s.run(ctx, "expire suspensions", expireScript, []string{s.k.expiry()},
		s.k.taskPrefix(), atOrBefore(now), limit, timeKey(now))
	if err != nil {
		return nil, err
	}
	return decodeSuspensionList(r)
}

// ListPendingResumes implements [taskbridge.SuspensionStore] over an index
// of PENDING resumes by ClosedAt, oldest first. A limit below 1 fails with
// [taskbridge.ErrInvalidRequest].
func (s *Store) ListPendingResumes(ctx context.Context, limit int) ([]taskbridge.Suspension, error) {
	if err := storecheck.Limit(limit); err != nil {
		return nil, err
	}
	r, err := s.run(ctx, "list pending resumes", pendingScript, []string{s.k.resumes()}, s.k.taskPrefix(), limit)
	if err != nil {
		return nil, err
	}
	return decodeSuspensionList(r)
}

// MarkResumeDispatched implements [taskbridge.SuspensionStore]. Only a
// PENDING hand-off changes; marking one that is already DISPATCHED, or a
// suspension that was never resolved, succeeds without a change.
func (s *Store) MarkResumeDispatched(ctx context.Context, taskID, suspendID string) error {
	r, err := s.run(ctx, "mark resume dispatched", dispatchedScript, s.k.taskKeys(taskID), s.k.taskArgs(taskID, suspendID)...)
	if err != nil {
		return err
	}
	switch r.str(0) {
	case "OK":
		return nil
	case "NOTFOUND":
		return taskNotFound(taskID)
	case "NOSUSP":
		return suspensionNotFound(taskID, suspendID)
	}
	return unexpected("mark resume dispatched", r)
}

// GetReceipt implements [taskbridge.SuspensionStore]. An unknown task fails
// with [taskbridge.ErrTaskNotFound].
func (s *Store) GetReceipt(ctx context.Context, taskID, clientActionID string) (taskbridge.ActionReceipt, error) {
	f, err := s.fields(ctx, "get receipt", taskID, s.k.rcpt(taskID), "j:"+clientActionID, "q:"+clientActionID)
	if err != nil {
		return taskbridge.ActionReceipt{}, err
	}
	if len(f) == 0 || f[0] == nil {
		return taskbridge.ActionReceipt{}, fmt.Errorf("%w: task %q, clientActionId %q", taskbridge.ErrReceiptNotFound, taskID, clientActionID)
	}
	return decodeReceipt(f)
}

// fields returns the given fields of the task's hash key (all of them, as
// a flat list, when none are given), failing with ErrTaskNotFound when the
// task does not exist.
func (s *Store) fields(ctx context.Context, op, taskID, key string, names ...string) (reply, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = n
	}
	v, err := fieldsScript.Run(ctx, s.rdb, []string{s.k.task(taskID), key}, args...).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, taskNotFound(taskID)
	}
	if err != nil {
		return nil, s.redisErr(op, err)
	}
	return v, nil
}

// DeleteReceipts implements [taskbridge.SuspensionStore] over an index of
// receipts by creation, oldest first; receipts whose resume is still
// PENDING are kept. A limit below 1 fails with
// [taskbridge.ErrInvalidRequest].
func (s *Store) DeleteReceipts(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	if err := storecheck.Limit(limit); err != nil {
		return 0, err
	}
	n, err := deleteReceiptsScript.Run(ctx, s.rdb, []string{s.k.receipts()}, s.k.taskPrefix(), strictlyBefore(before), limit).Int()
	if err != nil {
		return 0, s.redisErr("delete receipts", err)
	}
	return n, nil
}
