package taskbridge

import (
	"context"
	"encoding/json"
	"time"
)

// SuspensionStatus is the lifecycle state of a suspension.
type SuspensionStatus string

// Suspension statuses. A suspension is created OPEN and leaves OPEN exactly
// once: RESOLVED by an accepted action, EXPIRED when its deadline passed, or
// CANCELLED when the task ended or the executor withdrew it.
const (
	SuspensionOpen      SuspensionStatus = "OPEN"
	SuspensionResolved  SuspensionStatus = "RESOLVED"
	SuspensionExpired   SuspensionStatus = "EXPIRED"
	SuspensionCancelled SuspensionStatus = "CANCELLED"
)

// ResumeStatus tracks the hand-off of an accepted action to the executor.
type ResumeStatus string

// Resume hand-off states.
const (
	ResumeNone       ResumeStatus = "NONE"
	ResumePending    ResumeStatus = "PENDING"
	ResumeDispatched ResumeStatus = "DISPATCHED"
)

// Suspension is a point where a task waits for a client action. The embedded
// payload is exactly what the TASK_SUSPENDED event carried.
type Suspension struct {
	TaskID string `json:"taskId"`
	SuspendedPayload
	Status SuspensionStatus `json:"status"`
	// EventSeq is the Seq of the TASK_SUSPENDED event.
	EventSeq int64 `json:"eventSeq"`
	// ResolvedActionID is the clientActionId of the accepted action.
	ResolvedActionID string       `json:"resolvedActionId,omitempty"`
	ResumeStatus     ResumeStatus `json:"resumeStatus"`
	CreatedAt        time.Time    `json:"createdAt"`
	// ClosedAt is when the suspension left OPEN; zero while OPEN.
	ClosedAt time.Time `json:"closedAt"`
}

// ExpiredAt reports whether the suspension's deadline has passed at now.
func (s Suspension) ExpiredAt(now time.Time) bool {
	return s.ExpiresAt != nil && !now.Before(*s.ExpiresAt)
}

// ActionReceipt is the idempotency record of an accepted action.
type ActionReceipt struct {
	TaskID         string          `json:"taskId"`
	SuspendID      string          `json:"suspendId"`
	ClientActionID string          `json:"clientActionId"`
	ActionType     string          `json:"actionType"`
	Payload        json.RawMessage `json:"payload"`
	Metadata       json.RawMessage `json:"metadata"`
	// ActorID is the subject that submitted the action.
	ActorID string `json:"actorId"`
	// Fingerprint identifies the logical action (suspension, type and
	// payload); computed by the service.
	Fingerprint string `json:"fingerprint"`
	// EventSeq is the Seq of the TASK_ACTION_ACCEPTED event.
	EventSeq  int64     `json:"eventSeq"`
	CreatedAt time.Time `json:"createdAt"`
}

// ActionAttempt is the input of [SuspensionStore.AcceptAction].
type ActionAttempt struct {
	// Receipt is stored when the action is accepted (EventSeq is assigned by
	// the store).
	Receipt ActionReceipt
	// Event is the TASK_ACTION_ACCEPTED event to append on acceptance.
	Event TaskEvent
	// Now is the submission time: an OPEN suspension whose ExpiresAt is not
	// after Now is expired.
	Now time.Time
}

// AcceptResult is the outcome of [SuspensionStore.AcceptAction].
type AcceptResult struct {
	// Status is ACCEPTED, DEDUPLICATED, REJECTED_EXPIRED or
	// REJECTED_ALREADY_RESOLVED.
	Status ActionStatus
	// Suspension is the suspension after the call.
	Suspension Suspension
	// Receipt is the new receipt (ACCEPTED) or the existing one
	// (DEDUPLICATED); zero otherwise.
	Receipt ActionReceipt
	// Event is the appended TASK_ACTION_ACCEPTED event (ACCEPTED only).
	Event TaskEvent
}

// SuspensionStore keeps suspensions and action receipts. Its two writes that
// touch the event log are atomic with their event append, and notify
// watchers like [EventStore.Append]. Methods taking a limit fail with
// [ErrInvalidRequest] when it is below 1.
type SuspensionStore interface {
	// OpenSuspension records s as OPEN and appends ev (its TASK_SUSPENDED
	// event) in one atomic step, applying [NextStatus] like
	// [EventStore.Append]. It fails with [ErrDuplicateSuspension] when the
	// task already has a suspension with s.SuspendID, with [ErrInvalidEvent]
	// when ev is not a TASK_SUSPENDED event of s.TaskID, and with the errors
	// of Append. It returns the stored suspension (Status OPEN,
	// ResumeStatus NONE, EventSeq and CreatedAt = ev.CreatedAt set) and the
	// appended event.
	OpenSuspension(ctx context.Context, s Suspension, ev TaskEvent) (Suspension, TaskEvent, error)

	// GetSuspension returns a suspension or [ErrSuspensionNotFound]
	// ([ErrTaskNotFound] if the task is unknown).
	GetSuspension(ctx context.Context, taskID, suspendID string) (Suspension, error)

	// ListSuspensions returns the task's suspensions in the order they were
	// opened.
	ListSuspensions(ctx context.Context, taskID string) ([]Suspension, error)

	// AcceptAction decides an action in one atomic step, in this order:
	//   - a receipt for (task, clientActionId) exists: same Fingerprint →
	//     DEDUPLICATED, different → error [ErrIdempotencyConflict];
	//   - the suspension is EXPIRED, or OPEN with ExpiresAt <= a.Now (it is
	//     then moved to EXPIRED with ClosedAt = a.Now) → REJECTED_EXPIRED;
	//   - the suspension is not OPEN or the task is terminal →
	//     REJECTED_ALREADY_RESOLVED;
	//   - otherwise ACCEPTED: the suspension becomes RESOLVED with
	//     ResolvedActionID, ClosedAt = a.Now and ResumeStatus PENDING, the
	//     receipt is stored and a.Event is appended.
	// Unknown task or suspension fail with [ErrTaskNotFound] or
	// [ErrSuspensionNotFound]; an a.Event that is not a TASK_ACTION_ACCEPTED
	// event of the task fails with [ErrInvalidEvent].
	AcceptAction(ctx context.Context, a ActionAttempt) (AcceptResult, error)

	// CloseSuspension moves an OPEN suspension to status (EXPIRED or
	// CANCELLED) with ClosedAt = now. It returns the suspension and
	// changed=true, or the unchanged suspension and changed=false if it was
	// no longer OPEN. Other statuses fail with [ErrInvalidTransition].
	CloseSuspension(ctx context.Context, taskID, suspendID string, status SuspensionStatus, now time.Time) (s Suspension, changed bool, err error)

	// ExpireSuspensions moves up to limit OPEN suspensions with
	// ExpiresAt <= now to EXPIRED with ClosedAt = now and returns them.
	ExpireSuspensions(ctx context.Context, now time.Time, limit int) ([]Suspension, error)

	// ListPendingResumes returns up to limit RESOLVED suspensions whose
	// ResumeStatus is PENDING, oldest ClosedAt first.
	ListPendingResumes(ctx context.Context, limit int) ([]Suspension, error)

	// MarkResumeDispatched sets a suspension's ResumeStatus to DISPATCHED.
	MarkResumeDispatched(ctx context.Context, taskID, suspendID string) error

	// GetReceipt returns the receipt for (taskID, clientActionID) or
	// [ErrReceiptNotFound] ([ErrTaskNotFound] if the task is unknown).
	GetReceipt(ctx context.Context, taskID, clientActionID string) (ActionReceipt, error)

	// DeleteReceipts removes up to limit receipts created strictly before
	// the given time, except those whose suspension still has a PENDING resume, and
	// returns how many it removed.
	DeleteReceipts(ctx context.Context, before time.Time, limit int) (int, error)
}

// Store is everything the service needs from storage. One backend (memory,
// Redis, PostgreSQL) implements all of it, because appends, status changes,
// suspensions and receipts must change together atomically.
// The storetest package checks an implementation against this contract.
type Store interface {
	TaskRegistry
	EventStore
	SuspensionStore
}
