package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/storecheck"
)

func suspensionNotFound(taskID, suspendID string) error {
	return fmt.Errorf("%w: task %q has no suspension %q", taskbridge.ErrSuspensionNotFound, taskID, suspendID)
}

// suspensionPayload is the stored form of a suspension's payload: the
// TASK_SUSPENDED payload without the id and the deadline, which have
// columns.
func suspensionPayload(p taskbridge.SuspendedPayload) (string, error) {
	p.SuspendID, p.ExpiresAt = "", nil
	b, err := json.Marshal(p)
	if err != nil {
		return "", invalidRequest("suspension payload: %v", err)
	}
	return string(b), nil
}

// scanSuspension reads the columns of suspensionCols.
func scanSuspension(row pgx.Row) (taskbridge.Suspension, error) {
	var (
		sp                   taskbridge.Suspension
		payload              []byte
		expiresAt, closedAt  *time.Time
		status, resumeStatus string
	)
	if err := row.Scan(&sp.TaskID, &sp.SuspendID, &payload, &expiresAt, &status, &sp.EventSeq,
		&sp.ResolvedActionID, &resumeStatus, &sp.CreatedAt, &closedAt); err != nil {
		return taskbridge.Suspension{}, err
	}
	id := sp.SuspendID
	if err := json.Unmarshal(payload, &sp.SuspendedPayload); err != nil {
		return taskbridge.Suspension{}, fmt.Errorf("decoding suspension payload: %w", err)
	}
	sp.SuspendID = id
	if expiresAt != nil {
		at := expiresAt.UTC()
		sp.ExpiresAt = &at
	}
	sp.Status = taskbridge.SuspensionStatus(status)
	sp.ResumeStatus = taskbridge.ResumeStatus(resumeStatus)
	sp.CreatedAt = sp.CreatedAt.UTC()
	if closedAt != nil {
		sp.ClosedAt = closedAt.UTC()
	}
	return sp, nil
}

// scanReceipt reads the columns of receiptCols.
func scanReceipt(row pgx.Row) (taskbridge.ActionReceipt, error) {
	var (
		r             taskbridge.ActionReceipt
		payload, meta []byte
	)
	if err := row.Scan(&r.TaskID, &r.ClientActionID, &r.SuspendID, &r.ActionType, &payload, &meta, &r.ActorID,
		&r.Fingerprint, &r.EventSeq, &r.CreatedAt); err != nil {
		return taskbridge.ActionReceipt{}, err
	}
	r.Payload, r.Metadata = jsonOrNil(payload), jsonOrNil(meta)
	r.CreatedAt = r.CreatedAt.UTC()
	return r, nil
}

// missing turns a "no row" for a record of taskID into ErrTaskNotFound
// when the task does not exist, else into notFound.
func (s *Store) missing(ctx context.Context, q querier, taskID string, notFound error) error {
	var exists bool
	if err := q.QueryRow(ctx, s.q[qTaskExists], taskID).Scan(&exists); err != nil {
		return dbError("task exists", err)
	}
	if !exists {
		return taskNotFound(taskID)
	}
	return notFound
}

// OpenSuspension implements [taskbridge.SuspensionStore]. The stored
// suspension starts OPEN with ResumeStatus NONE, whatever s says; s.TaskID
// may be empty (it is taken from ev).
func (s *Store) OpenSuspension(ctx context.Context, sp taskbridge.Suspension, ev taskbridge.TaskEvent) (taskbridge.Suspension, taskbridge.TaskEvent, error) {
	var (
		out   taskbridge.Suspension
		outEv taskbridge.TaskEvent
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		out, outEv, err = s.openSuspension(ctx, tx, sp, ev)
		return err
	})
	return out, outEv, err
}

// OpenSuspensionTx is [Store.OpenSuspension] inside the caller's
// transaction tx.
func (s *Store) OpenSuspensionTx(ctx context.Context, tx pgx.Tx, sp taskbridge.Suspension, ev taskbridge.TaskEvent) (taskbridge.Suspension, taskbridge.TaskEvent, error) {
	if tx == nil {
		return taskbridge.Suspension{}, taskbridge.TaskEvent{}, errors.New("pgstore: OpenSuspensionTx needs a transaction")
	}
	return s.openSuspension(ctx, tx, sp, ev)
}

func (s *Store) openSuspension(ctx context.Context, q querier, sp taskbridge.Suspension, ev taskbridge.TaskEvent) (taskbridge.Suspension, taskbridge.TaskEvent, error) {
	fail := func(err error) (taskbridge.Suspension, taskbridge.TaskEvent, error) {
		return taskbridge.Suspension{}, taskbridge.TaskEvent{}, err
	}
	if err := s.check(); err != nil {
		return fail(err)
	}
	if sp.TaskID == "" {
		sp.TaskID = ev.TaskID
	}
	if err := storecheck.EventOf(ev, taskbridge.EventTaskSuspended, sp.TaskID); err != nil {
		return fail(err)
	}
	if sp.SuspendID == "" {
		return fail(invalidRequest("suspendId is empty"))
	}
	payload, err := suspensionPayload(sp.SuspendedPayload)
	if err != nil {
		return fail(err)
	}
	var dup bool
	err = q.QueryRow(ctx, s.q[qSuspensionDup], sp.TaskID, sp.SuspendID).Scan(&dup)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fail(taskNotFound(sp.TaskID))
	case err != nil:
		return fail(dbError("open suspension", err))
	case dup:
		return fail(fmt.Errorf("%w: task %q already has suspension %q", taskbridge.ErrDuplicateSuspension, sp.TaskID, sp.SuspendID))
	}
	stored, _, err := s.appendEvent(ctx, q, ev, true)
	if err != nil {
		return fail(err)
	}
	if _, err := q.Exec(ctx, s.q[qInsertSuspension], sp.TaskID, sp.SuspendID, payload, sp.ExpiresAt,
		stored.Seq, ev.CreatedAt); err != nil {
		return fail(dbError("open suspension", err))
	}
	// Read it back, so the caller gets values it does not share.
	out, err := scanSuspension(q.QueryRow(ctx, s.q[qGetSuspension], sp.TaskID, sp.SuspendID))
	if err != nil {
		return fail(dbError("open suspension", err))
	}
	return out, stored, nil
}

// GetSuspension implements [taskbridge.SuspensionStore].
func (s *Store) GetSuspension(ctx context.Context, taskID, suspendID string) (taskbridge.Suspension, error) {
	if err := s.check(); err != nil {
		return taskbridge.Suspension{}, err
	}
	sp, err := scanSuspension(s.pool.QueryRow(ctx, s.q[qGetSuspension], taskID, suspendID))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return taskbridge.Suspension{}, s.missing(ctx, s.pool, taskID, suspensionNotFound(taskID, suspendID))
	case err != nil:
		return taskbridge.Suspension{}, dbError("get suspension", err)
	}
	return sp, nil
}

// LockSuspensionTx returns a suspension inside the caller's transaction tx
// with the task's row locked, so that no action can be accepted for it, and
// no event appended to the task, until tx ends. Executors use it to decide
// atomically what to do about a suspension that is still OPEN.
func (s *Store) LockSuspensionTx(ctx context.Context, tx pgx.Tx, taskID, suspendID string) (taskbridge.Suspension, error) {
	if err := s.check(); err != nil {
		return taskbridge.Suspension{}, err
	}
	if _, err := s.lockTask(ctx, tx, taskID); err != nil {
		return taskbridge.Suspension{}, err
	}
	sp, err := scanSuspension(tx.QueryRow(ctx, s.q[qGetSuspension], taskID, suspendID))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return taskbridge.Suspension{}, suspensionNotFound(taskID, suspendID)
	case err != nil:
		return taskbridge.Suspension{}, dbError("lock suspension", err)
	}
	return sp, nil
}

// ListSuspensions implements [taskbridge.SuspensionStore].
func (s *Store) ListSuspensions(ctx context.Context, taskID string) ([]taskbridge.Suspension, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	out, err := s.querySuspensions(ctx, s.q[qListSuspensions], taskID)
	if err != nil {
		return nil, dbError("list suspensions", err)
	}
	if len(out) == 0 {
		if err := s.missing(ctx, s.pool, taskID, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Store) querySuspensions(ctx context.Context, sql string, args ...any) ([]taskbridge.Suspension, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []taskbridge.Suspension
	for rows.Next() {
		sp, err := scanSuspension(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sp)
	}
	return out, rows.Err()
}

// AcceptAction implements [taskbridge.SuspensionStore] in one transaction
// that locks the task row and then the suspension's. The task and the
// suspension named by a.Receipt must exist before the decision table
// applies, and a.Event must be a TASK_ACTION_ACCEPTED event of that task
// (else [taskbridge.ErrInvalidEvent]). DEDUPLICATED returns the suspension
// the existing receipt answered. ACCEPTED notifies every process's
// [Store.WatchControl] watchers.
func (s *Store) AcceptAction(ctx context.Context, a taskbridge.ActionAttempt) (taskbridge.AcceptResult, error) {
	if err := s.check(); err != nil {
		return taskbridge.AcceptResult{}, err
	}
	taskID := a.Receipt.TaskID
	if err := storecheck.EventOf(a.Event, taskbridge.EventTaskActionAccepted, taskID); err != nil {
		return taskbridge.AcceptResult{}, err
	}
	if a.Receipt.ClientActionID == "" {
		return taskbridge.AcceptResult{}, invalidRequest("clientActionId is empty")
	}
	var res taskbridge.AcceptResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		res, err = s.acceptAction(ctx, tx, a)
		return err
	})
	if err != nil {
		return taskbridge.AcceptResult{}, err
	}
	return res, nil
}

func (s *Store) acceptAction(ctx context.Context, tx pgx.Tx, a taskbridge.ActionAttempt) (taskbridge.AcceptResult, error) {
	taskID, rec := a.Receipt.TaskID, a.Receipt
	locked, err := s.lockTask(ctx, tx, taskID)
	if err != nil {
		return taskbridge.AcceptResult{}, err
	}
	sp, err := scanSuspension(tx.QueryRow(ctx, s.q[qGetSuspensionForUpdate], taskID, rec.SuspendID))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return taskbridge.AcceptResult{}, suspensionNotFound(taskID, rec.SuspendID)
	case err != nil:
		return taskbridge.AcceptResult{}, dbError("accept action", err)
	}
	old, err := scanReceipt(tx.QueryRow(ctx, s.q[qGetReceipt], taskID, rec.ClientActionID))
	switch {
	case err == nil:
		if old.Fingerprint != rec.Fingerprint {
			return taskbridge.AcceptResult{}, fmt.Errorf("%w: clientActionId %q of task %q was used for a different action",
				taskbridge.ErrIdempotencyConflict, rec.ClientActionID, taskID)
		}
		if old.SuspendID != sp.SuspendID {
			if answered, err := scanSuspension(tx.QueryRow(ctx, s.q[qGetSuspension], taskID, old.SuspendID)); err == nil {
				sp = answered
			}
		}
		return taskbridge.AcceptResult{Status: taskbridge.ActionDeduplicated, Suspension: sp, Receipt: old}, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return taskbridge.AcceptResult{}, dbError("accept action", err)
	}
	if sp.Status == taskbridge.SuspensionOpen && sp.ExpiredAt(a.Now) {
		if sp, err = scanSuspension(tx.QueryRow(ctx, s.q[qExpireSuspension], taskID, sp.SuspendID, a.Now)); err != nil {
			return taskbridge.AcceptResult{}, dbError("accept action", err)
		}
	}
	switch {
	case sp.Status == taskbridge.SuspensionExpired:
		return taskbridge.AcceptResult{Status: taskbridge.ActionRejectedExpired, Suspension: sp}, nil
	case sp.Status != taskbridge.SuspensionOpen || locked.terminal:
		return taskbridge.AcceptResult{Status: taskbridge.ActionRejectedAlreadyResolved, Suspension: sp}, nil
	}
	ev, _, err := s.appendEvent(ctx, tx, a.Event, true)
	if err != nil {
		return taskbridge.AcceptResult{}, err
	}
	if sp, err = scanSuspension(tx.QueryRow(ctx, s.q[qResolveSuspension], taskID, sp.SuspendID, rec.ClientActionID, a.Now)); err != nil {
		return taskbridge.AcceptResult{}, dbError("accept action", err)
	}
	rec.EventSeq = ev.Seq
	if _, err := tx.Exec(ctx, s.q[qInsertReceipt], rec.TaskID, rec.ClientActionID, rec.SuspendID, rec.ActionType,
		rawJSON(rec.Payload), rawJSON(rec.Metadata), rec.ActorID, rec.Fingerprint, rec.EventSeq, rec.CreatedAt); err != nil {
		if isCheckViolation(err) {
			return taskbridge.AcceptResult{}, invalidRequest("action receipt: %v", err)
		}
		return taskbridge.AcceptResult{}, dbError("accept action", err)
	}
	if _, err := tx.Exec(ctx, s.q[qNotifyControl], taskID); err != nil {
		return taskbridge.AcceptResult{}, dbError("accept action", err)
	}
	rec.Payload, rec.Metadata = jsonOrNil(rec.Payload), jsonOrNil(rec.Metadata)
	return taskbridge.AcceptResult{Status: taskbridge.ActionAccepted, Suspension: sp, Receipt: rec, Event: ev}, nil
}

// CloseSuspension implements [taskbridge.SuspensionStore]. A status other
// than EXPIRED or CANCELLED fails with [taskbridge.ErrInvalidTransition].
func (s *Store) CloseSuspension(ctx context.Context, taskID, suspendID string, status taskbridge.SuspensionStatus, now time.Time) (taskbridge.Suspension, bool, error) {
	if err := s.check(); err != nil {
		return taskbridge.Suspension{}, false, err
	}
	if status != taskbridge.SuspensionExpired && status != taskbridge.SuspensionCancelled {
		return taskbridge.Suspension{}, false, fmt.Errorf("%w: a suspension is closed as EXPIRED or CANCELLED, not %q",
			taskbridge.ErrInvalidTransition, status)
	}
	sp, err := scanSuspension(s.pool.QueryRow(ctx, s.q[qCloseSuspension], taskID, suspendID, string(status), now))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// Not OPEN (or missing): return it as it is.
		sp, err := s.GetSuspension(ctx, taskID, suspendID)
		return sp, false, err
	case err != nil:
		return taskbridge.Suspension{}, false, dbError("close suspension", err)
	}
	return sp, true, nil
}

// ExpireSuspensions implements [taskbridge.SuspensionStore]: it expires the
// suspensions with the earliest deadlines first, reading an index of OPEN
// suspensions with a deadline. Suspensions locked by a concurrent call are
// skipped. A limit below 1 fails with [taskbridge.ErrInvalidRequest].
func (s *Store) ExpireSuspensions(ctx context.Context, now time.Time, limit int) ([]taskbridge.Suspension, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := storecheck.Limit(limit); err != nil {
		return nil, err
	}
	out, err := s.querySuspensions(ctx, s.q[qExpireSuspensions], now, limit)
	if err != nil {
		return nil, dbError("expire suspensions", err)
	}
	return out, nil
}

// ListPendingResumes implements [taskbridge.SuspensionStore]: oldest first
// means by ClosedAt, the time the action was accepted. A limit below 1
// fails with [taskbridge.ErrInvalidRequest].
func (s *Store) ListPendingResumes(ctx context.Context, limit int) ([]taskbridge.Suspension, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := storecheck.Limit(limit); err != nil {
		return nil, err
	}
	out, err := s.querySuspensions(ctx, s.q[qPendingResumes], limit)
	if err != nil {
		return nil, dbError("list pending resumes", err)
	}
	return out, nil
}

// MarkResumeDispatched implements [taskbridge.SuspensionStore]. Only a
// PENDING hand-off changes; marking one that is already DISPATCHED, or a
// suspension that was never resolved, succeeds without a change.
func (s *Store) MarkResumeDispatched(ctx context.Context, taskID, suspendID string) error {
	if err := s.check(); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, s.q[qMarkDispatched], taskID, suspendID)
	if err != nil {
		return dbError("mark resume dispatched", err)
	}
	if tag.RowsAffected() == 0 {
		_, err := s.GetSuspension(ctx, taskID, suspendID)
		return err
	}
	return nil
}

// GetReceipt implements [taskbridge.SuspensionStore]. An unknown task
// fails with [taskbridge.ErrTaskNotFound].
func (s *Store) GetReceipt(ctx context.Context, taskID, clientActionID string) (taskbridge.ActionReceipt, error) {
	if err := s.check(); err != nil {
		return taskbridge.ActionReceipt{}, err
	}
	r, err := scanReceipt(s.pool.QueryRow(ctx, s.q[qGetReceipt], taskID, clientActionID))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return taskbridge.ActionReceipt{}, s.missing(ctx, s.pool, taskID,
			fmt.Errorf("%w: task %q, clientActionId %q", taskbridge.ErrReceiptNotFound, taskID, clientActionID))
	case err != nil:
		return taskbridge.ActionReceipt{}, dbError("get receipt", err)
	}
	return r, nil
}

// DeleteReceipts implements [taskbridge.SuspensionStore]: it removes the
// oldest receipts first, skipping those whose suspension still has a
// PENDING resume and those locked by a concurrent call. A limit below 1
// fails with [taskbridge.ErrInvalidRequest].
func (s *Store) DeleteReceipts(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	if err := storecheck.Limit(limit); err != nil {
		return 0, err
	}
	tag, err := s.pool.Exec(ctx, s.q[qDeleteReceipts], before, limit)
	if err != nil {
		return 0, dbError("delete receipts", err)
	}
	return int(tag.RowsAffected()), nil
}
