package memstore

import (
	"context"
	"fmt"
	"time"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/storecheck"
)

func suspensionNotFound(taskID, suspendID string) error {
	return fmt.Errorf("%w: task %q has no suspension %q", taskbridge.ErrSuspensionNotFound, taskID, suspendID)
}

// suspension returns the task's suspension suspendID. ts.mu must be held.
func (ts *taskState) suspension(suspendID string) (*taskbridge.Suspension, error) {
	i, ok := ts.suspIdx[suspendID]
	if !ok {
		return nil, suspensionNotFound(ts.task.ID, suspendID)
	}
	return ts.susps[i], nil
}

// unexpire takes sp, which has just left OPEN, out of the suspensions waiting
// for their deadline. The task's lock is held.
func (s *Store) unexpire(sp *taskbridge.Suspension) {
	if sp.ExpiresAt != nil {
		s.dropDue(&s.expiring, sp.TaskID, sp.SuspendID)
	}
}

// OpenSuspension implements [taskbridge.SuspensionStore]. The stored
// suspension starts OPEN with ResumeStatus NONE, whatever s says; s.TaskID
// may be empty (it is taken from ev). ev must be a TASK_SUSPENDED event of
// the same task, else the call fails with [taskbridge.ErrInvalidEvent].
func (s *Store) OpenSuspension(_ context.Context, sp taskbridge.Suspension, ev taskbridge.TaskEvent) (taskbridge.Suspension, taskbridge.TaskEvent, error) {
	if sp.TaskID == "" {
		sp.TaskID = ev.TaskID
	}
	if err := storecheck.EventOf(ev, taskbridge.EventTaskSuspended, sp.TaskID); err != nil {
		return taskbridge.Suspension{}, taskbridge.TaskEvent{}, err
	}
	var err error
	if ev.Payload, err = storecheck.Payload(ev.Payload); err != nil {
		return taskbridge.Suspension{}, taskbridge.TaskEvent{}, err
	}
	if sp.SuspendID == "" {
		return taskbridge.Suspension{}, taskbridge.TaskEvent{}, invalidRequest("suspendId is empty")
	}
	rec := cloneSuspension(sp)
	rec.Status = taskbridge.SuspensionOpen
	rec.ResumeStatus = taskbridge.ResumeNone
	rec.ResolvedActionID = ""
	rec.CreatedAt = ev.CreatedAt
	rec.ClosedAt = time.Time{}
	stored := ev

	var out taskbridge.Suspension
	err = s.update(sp.TaskID, func(ts *taskState) error {
		if _, dup := ts.suspIdx[sp.SuspendID]; dup {
			return fmt.Errorf("%w: task %q already has suspension %q", taskbridge.ErrDuplicateSuspension, sp.TaskID, sp.SuspendID)
		}
		var err error
		if stored, err = s.appendLocked(ts, stored); err != nil {
			return err
		}
		rec.EventSeq = stored.Seq
		if rec.ExpiresAt != nil {
			s.pushDue(&s.expiring, dueItem{at: *rec.ExpiresAt, taskID: rec.TaskID, seq: rec.EventSeq, key: rec.SuspendID, ts: ts})
		}
		if ts.suspIdx == nil {
			ts.suspIdx = make(map[string]int)
		}
		ts.suspIdx[rec.SuspendID] = len(ts.susps)
		ts.susps = append(ts.susps, &rec)
		out = cloneSuspension(rec)
		return nil
	})
	if err != nil {
		return taskbridge.Suspension{}, taskbridge.TaskEvent{}, err
	}
	s.notify(sp.TaskID)
	ev.Seq, ev.EventID = stored.Seq, stored.EventID
	return out, ev, nil
}

// GetSuspension implements [taskbridge.SuspensionStore].
func (s *Store) GetSuspension(_ context.Context, taskID, suspendID string) (taskbridge.Suspension, error) {
	var out taskbridge.Suspension
	err := s.view(taskID, func(ts *taskState) error {
		sp, err := ts.suspension(suspendID)
		if err != nil {
			return err
		}
		out = cloneSuspension(*sp)
		return nil
	})
	return out, err
}

// ListSuspensions implements [taskbridge.SuspensionStore].
func (s *Store) ListSuspensions(_ context.Context, taskID string) ([]taskbridge.Suspension, error) {
	var out []taskbridge.Suspension
	err := s.view(taskID, func(ts *taskState) error {
		out = make([]taskbridge.Suspension, len(ts.susps))
		for i, sp := range ts.susps {
			out[i] = cloneSuspension(*sp)
		}
		return nil
	})
	return out, err
}

// AcceptAction implements [taskbridge.SuspensionStore]. The task and the
// suspension named by a.Receipt must exist before the decision table
// applies, and a.Event must be a TASK_ACTION_ACCEPTED event of that task
// (else [taskbridge.ErrInvalidEvent]). DEDUPLICATED returns the suspension
// the existing receipt answered. An ACCEPTED action calls the task's
// watchers and then the control watchers (see [Store.WatchControl]).
func (s *Store) AcceptAction(_ context.Context, a taskbridge.ActionAttempt) (taskbridge.AcceptResult, error) {
	taskID := a.Receipt.TaskID
	if err := storecheck.EventOf(a.Event, taskbridge.EventTaskActionAccepted, taskID); err != nil {
		return taskbridge.AcceptResult{}, err
	}
	var err error
	if a.Event.Payload, err = storecheck.Payload(a.Event.Payload); err != nil {
		return taskbridge.AcceptResult{}, err
	}
	if a.Receipt.ClientActionID == "" {
		return taskbridge.AcceptResult{}, invalidRequest("clientActionId is empty")
	}
	rec := cloneReceipt(a.Receipt)
	stored := a.Event

	var res taskbridge.AcceptResult
	err = s.update(taskID, func(ts *taskState) error {
		sp, err := ts.suspension(rec.SuspendID)
		if err != nil {
			return err
		}
		if old, ok := ts.receipts[rec.ClientActionID]; ok {
			if old.Fingerprint != rec.Fingerprint {
				return fmt.Errorf("%w: clientActionId %q of task %q was used for a different action",
					taskbridge.ErrIdempotencyConflict, rec.ClientActionID, taskID)
			}
			if answered, err := ts.suspension(old.SuspendID); err == nil {
				sp = answered
			}
			res = taskbridge.AcceptResult{Status: taskbridge.ActionDeduplicated, Suspension: cloneSuspension(*sp), Receipt: cloneReceipt(*old)}
			return nil
		}
		if sp.Status == taskbridge.SuspensionOpen && sp.ExpiredAt(a.Now) {
			sp.Status = taskbridge.SuspensionExpired
			sp.ClosedAt = a.Now
			s.unexpire(sp)
		}
		switch {
		case sp.Status == taskbridge.SuspensionExpired:
			res = taskbridge.AcceptResult{Status: taskbridge.ActionRejectedExpired, Suspension: cloneSuspension(*sp)}
			return nil
		case sp.Status != taskbridge.SuspensionOpen || ts.task.Status.Terminal():
			res = taskbridge.AcceptResult{Status: taskbridge.ActionRejectedAlreadyResolved, Suspension: cloneSuspension(*sp)}
			return nil
		}
		if stored, err = s.appendLocked(ts, stored); err != nil {
			return err
		}
		sp.Status = taskbridge.SuspensionResolved
		s.unexpire(sp)
		sp.ResolvedActionID = rec.ClientActionID
		sp.ClosedAt = a.Now
		sp.ResumeStatus = taskbridge.ResumePending
		rec.EventSeq = stored.Seq
		if ts.receipts == nil {
			ts.receipts = make(map[string]*taskbridge.ActionReceipt)
		}
		ts.receipts[rec.ClientActionID] = &rec
		s.pushDue(&s.receipts, dueItem{at: rec.CreatedAt, taskID: rec.TaskID, key: rec.ClientActionID, ts: ts})
		s.pushDue(&s.resumes, dueItem{at: sp.ClosedAt, taskID: taskID, seq: sp.EventSeq, key: sp.SuspendID, ts: ts})
		res = taskbridge.AcceptResult{Status: taskbridge.ActionAccepted, Suspension: cloneSuspension(*sp), Receipt: cloneReceipt(rec)}
		return nil
	})
	if err != nil {
		return taskbridge.AcceptResult{}, err
	}
	if res.Status == taskbridge.ActionAccepted {
		s.notify(taskID)
		s.control.notify(taskID)
		ev := a.Event
		ev.Seq, ev.EventID = stored.Seq, stored.EventID
		res.Event = ev
	}
	return res, nil
}

// CloseSuspension implements [taskbridge.SuspensionStore]. A status other
// than EXPIRED or CANCELLED fails with [taskbridge.ErrInvalidTransition].
func (s *Store) CloseSuspension(_ context.Context, taskID, suspendID string, status taskbridge.SuspensionStatus, now time.Time) (taskbridge.Suspension, bool, error) {
	if status != taskbridge.SuspensionExpired && status != taskbridge.SuspensionCancelled {
		return taskbridge.Suspension{}, false, fmt.Errorf("%w: a suspension is closed as EXPIRED or CANCELLED, not %q",
			taskbridge.ErrInvalidTransition, status)
	}
	var (
		out     taskbridge.Suspension
		changed bool
	)
	err := s.update(taskID, func(ts *taskState) error {
		sp, err := ts.suspension(suspendID)
		if err != nil {
			return err
		}
		if sp.Status == taskbridge.SuspensionOpen {
			sp.Status = status
			sp.ClosedAt = now
			s.unexpire(sp)
			changed = true
		}
		out = cloneSuspension(*sp)
		return nil
	})
	if err != nil {
		return taskbridge.Suspension{}, false, err
	}
	return out, changed, nil
}

// ExpireSuspensions implements [taskbridge.SuspensionStore]. It expires
// the suspensions with the earliest deadlines first; each gets ClosedAt =
// now. The store keeps open suspensions with a deadline ordered by it, so a
// call costs the suspensions it looks at, not a scan of the store. A limit
// below 1 fails with [taskbridge.ErrInvalidRequest].
func (s *Store) ExpireSuspensions(_ context.Context, now time.Time, limit int) ([]taskbridge.Suspension, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := storecheck.Limit(limit); err != nil {
		return nil, err
	}
	var out []taskbridge.Suspension
	for len(out) < limit {
		d, ok := s.popDue(&s.expiring, func(at time.Time) bool { return !now.Before(at) })
		if !ok {
			break
		}
		d.ts.mu.Lock()
		if !d.ts.deleted {
			// Resolved or cancelled since it was opened: nothing to do.
			if sp, err := d.ts.suspension(d.key); err == nil && sp.Status == taskbridge.SuspensionOpen && sp.ExpiredAt(now) {
				sp.Status = taskbridge.SuspensionExpired
				sp.ClosedAt = now
				out = append(out, cloneSuspension(*sp))
			}
		}
		d.ts.mu.Unlock()
	}
	return out, nil
}

// ListPendingResumes implements [taskbridge.SuspensionStore]: oldest first
// means by ClosedAt, the time the action was accepted. The store keeps
// accepted suspensions ordered so, dropping those dispatched since when
// they come up, so a call costs the suspensions it looks at, not a scan of
// the store. A limit below 1 fails with [taskbridge.ErrInvalidRequest].
func (s *Store) ListPendingResumes(_ context.Context, limit int) ([]taskbridge.Suspension, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := storecheck.Limit(limit); err != nil {
		return nil, err
	}
	var (
		out   []taskbridge.Suspension
		still []dueItem // listed, so still pending: back into the heap
	)
	always := func(time.Time) bool { return true }
	for len(out) < limit {
		d, ok := s.popDue(&s.resumes, always)
		if !ok {
			break
		}
		d.ts.mu.RLock()
		if !d.ts.deleted {
			if sp, err := d.ts.suspension(d.key); err == nil && sp.Status == taskbridge.SuspensionResolved && sp.ResumeStatus == taskbridge.ResumePending {
				out = append(out, cloneSuspension(*sp))
				still = append(still, d)
			}
		}
		d.ts.mu.RUnlock()
	}
	s.requeue(&s.resumes, still, func(d dueItem) bool {
		sp, err := d.ts.suspension(d.key)
		return err == nil && sp.ResumeStatus == taskbridge.ResumePending
	})
	return out, nil
}

// MarkResumeDispatched implements [taskbridge.SuspensionStore]. Only a
// PENDING hand-off changes; marking one that is already DISPATCHED, or a
// suspension that was never resolved, succeeds without a change.
func (s *Store) MarkResumeDispatched(_ context.Context, taskID, suspendID string) error {
	return s.update(taskID, func(ts *taskState) error {
		sp, err := ts.suspension(suspendID)
		if err != nil {
			return err
		}
		if sp.ResumeStatus == taskbridge.ResumePending {
			sp.ResumeStatus = taskbridge.ResumeDispatched
			s.dropDue(&s.resumes, taskID, suspendID)
		}
		return nil
	})
}

// GetReceipt implements [taskbridge.SuspensionStore]. An unknown task fails
// with [taskbridge.ErrTaskNotFound].
func (s *Store) GetReceipt(_ context.Context, taskID, clientActionID string) (taskbridge.ActionReceipt, error) {
	var out taskbridge.ActionReceipt
	err := s.view(taskID, func(ts *taskState) error {
		r, ok := ts.receipts[clientActionID]
		if !ok {
			return fmt.Errorf("%w: task %q, clientActionId %q", taskbridge.ErrReceiptNotFound, taskID, clientActionID)
		}
		out = cloneReceipt(*r)
		return nil
	})
	return out, err
}

// DeleteReceipts implements [taskbridge.SuspensionStore]. It removes the
// oldest receipts first, keeping those whose suspension still waits for its
// resume hand-off. The store keeps receipts ordered by creation, so a call
// costs the receipts it looks at, not a scan of the store. A limit below 1
// fails with [taskbridge.ErrInvalidRequest].
func (s *Store) DeleteReceipts(_ context.Context, before time.Time, limit int) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	if err := storecheck.Limit(limit); err != nil {
		return 0, err
	}
	n := 0
	var waiting []dueItem // due, but their resume is pending: kept
	for n < limit {
		d, ok := s.popDue(&s.receipts, before.After)
		if !ok {
			break
		}
		d.ts.mu.Lock()
		switch r := d.ts.receipts[d.key]; {
		case d.ts.deleted || r == nil:
			// Deleted with its task.
		case d.ts.resumePending(r):
			waiting = append(waiting, d)
		default:
			delete(d.ts.receipts, d.key)
			n++
		}
		d.ts.mu.Unlock()
	}
	s.requeue(&s.receipts, waiting, func(d dueItem) bool { return d.ts.receipts[d.key] != nil })
	return n, nil
}

// resumePending reports whether r's suspension still waits for its resume
// hand-off. ts.mu must be held.
func (ts *taskState) resumePending(r *taskbridge.ActionReceipt) bool {
	sp, err := ts.suspension(r.SuspendID)
	return err == nil && sp.ResumeStatus == taskbridge.ResumePending
}
