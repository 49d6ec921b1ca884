package taskbridge

import (
	"context"
	"fmt"
	"time"
)

// TaskRegistry keeps task records. Implementations must be safe for
// concurrent use. Every method returns [ErrTaskNotFound] (possibly wrapped)
// for an unknown task id.
//
// A task's Status and LastSeq are not written through the registry: they
// follow the task's event log and are updated by the [EventStore] and
// [SuspensionStore] in the same atomic step as each append.
type TaskRegistry interface {
	// CreateTask stores t unless a task with the same (OwnerID,
	// ClientRequestID) exists. It is atomic: of any number of concurrent
	// calls with the same key exactly one creates. It returns the stored
	// task and created=true, or the existing task and created=false.
	// t.ID is unique; t.Status is ACCEPTED and t.LastSeq is 0.
	CreateTask(ctx context.Context, t Task) (stored Task, created bool, err error)

	// GetTask returns the task with id taskID.
	GetTask(ctx context.Context, taskID string) (Task, error)

	// ListTasks returns up to q.Limit tasks matching q, ordered newest
	// first by (CreatedAt, ID) descending.
	//
	// Clients list their own tasks on every screen refresh, so with
	// q.OwnerID set it must not scan or sort the store: a page must cost
	// O(log n + k), n the owner's tasks and k the tasks looked at (the
	// page, plus those a status filter skips) — an index on (OwnerID,
	// CreatedAt, ID) gives that. Without OwnerID (hosts' maintenance and
	// admin tools, never a client request) it may cost O(n log n) in all
	// tasks.
	ListTasks(ctx context.Context, q TaskQuery) ([]Task, error)

	// RequestCancel records a cancellation request on a non-terminal task:
	// it sets CancelRequested, keeps the first request's reason and returns
	// first=true only for the call that set it; that call also sets
	// UpdatedAt to now. For a terminal task it returns the task unchanged
	// with first=false.
	RequestCancel(ctx context.Context, taskID, reason string, now time.Time) (t Task, first bool, err error)

	// DeleteTerminalTasks removes up to limit tasks whose terminal event
	// was created strictly before the given time, together with their
	// events, suspensions and receipts, and returns how many it removed.
	// Deleting a task frees its (OwnerID, ClientRequestID) key.
	DeleteTerminalTasks(ctx context.Context, before time.Time, limit int) (int, error)
}

// TaskHeadGetter is an optional [TaskRegistry] extension that the service
// uses, when the store implements it, to check who may see a task before
// anything large is loaded: a request for another owner's task then costs
// the same whether that task holds 1 MB of input or does not exist.
type TaskHeadGetter interface {
	// GetTaskHead returns the task with id taskID like GetTask, but with
	// nil Input, Metadata and Attachments; it must not load them.
	GetTaskHead(ctx context.Context, taskID string) (Task, error)
}

// TaskQuery selects tasks for [TaskRegistry.ListTasks].
type TaskQuery struct {
	// OwnerID keeps only this owner's tasks; "" means every owner.
	OwnerID string
	// Statuses keeps only tasks in one of these statuses; empty keeps all.
	Statuses []TaskStatus
	// Before, when set, keeps only tasks strictly older than this position
	// in (CreatedAt, ID) descending order.
	Before *TaskPosition
	// Limit bounds the result; at least 1.
	Limit int
}

// TaskPosition is a position in the newest-first task order.
type TaskPosition struct {
	CreatedAt time.Time
	ID        string
}

// Less reports whether a task at (createdAt, id) sorts after p in the
// newest-first order, i.e. belongs to a page that starts Before p.
func (p TaskPosition) Less(createdAt time.Time, id string) bool {
	if !createdAt.Equal(p.CreatedAt) {
		return createdAt.Before(p.CreatedAt)
	}
	return id < p.ID
}

// Matches reports whether t satisfies q's owner, status and Before filters.
// Stores may use it to filter in memory.
func (q TaskQuery) Matches(t Task) bool {
	if q.OwnerID != "" && t.OwnerID != q.OwnerID {
		return false
	}
	if len(q.Statuses) > 0 {
		ok := false
		for _, s := range q.Statuses {
			if t.Status == s {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if q.Before != nil && !q.Before.Less(t.CreatedAt, t.ID) {
		return false
	}
	return true
}

// NextStatus is the task state machine every store applies when appending an
// event of type et to a task in status cur. It returns the task's new status,
// or an error wrapping [ErrTaskTerminal] (nothing is appended after a
// terminal event) or [ErrInvalidTransition]:
//
//	ACCEPTED --TASK_STARTED--> RUNNING
//	ACCEPTED --terminal------> COMPLETED | FAILED | CANCELLED
//	RUNNING  --non-terminal--> RUNNING (TASK_STARTED excepted)
//	RUNNING  --terminal------> COMPLETED | FAILED | CANCELLED
func NextStatus(cur TaskStatus, et EventType) (TaskStatus, error) {
	if !et.Valid() {
		return cur, fmt.Errorf("%w: unknown event type %q", ErrInvalidEvent, et)
	}
	if cur.Terminal() {
		return cur, fmt.Errorf("%w: cannot append %s to a %s task", ErrTaskTerminal, et, cur)
	}
	if et.Terminal() {
		return et.TerminalStatus(), nil
	}
	switch cur {
	case StatusAccepted:
		if et == EventTaskStarted {
			return StatusRunning, nil
		}
		return cur, fmt.Errorf("%w: %s before TASK_STARTED", ErrInvalidTransition, et)
	case StatusRunning:
		if et == EventTaskStarted {
			return cur, fmt.Errorf("%w: task already started", ErrInvalidTransition)
		}
		return StatusRunning, nil
	}
	return cur, fmt.Errorf("%w: unknown task status %q", ErrInvalidTransition, cur)
}
