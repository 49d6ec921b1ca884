package memstore

import (
	"context"
	"fmt"
	"time"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/storecheck"
)

// CreateTask implements [taskbridge.TaskRegistry]. The stored task always
// starts ACCEPTED with LastSeq 0. A task id that is already used by another
// task fails with [taskbridge.ErrInvalidRequest].
func (s *Store) CreateTask(_ context.Context, t taskbridge.Task) (taskbridge.Task, bool, error) {
	return s.create(t, 0)
}

// CreateLiveTask implements [taskbridge.LiveTaskCreator]: CreateTask that
// fails with [taskbridge.ErrTaskQuota] when the owner already has maxLive
// tasks that have not ended. Creates are serialised, so the quota is
// exact.
func (s *Store) CreateLiveTask(_ context.Context, t taskbridge.Task, maxLive int) (taskbridge.Task, bool, error) {
	if maxLive < 1 {
		return taskbridge.Task{}, false, invalidRequest("maxLive %d must be at least 1", maxLive)
	}
	return s.create(t, maxLive)
}

// create stores t unless its key is taken; with maxLive > 0, only while
// its owner has fewer live tasks.
func (s *Store) create(t taskbridge.Task, maxLive int) (taskbridge.Task, bool, error) {
	if err := s.check(); err != nil {
		return taskbridge.Task{}, false, err
	}
	if t.ID == "" {
		return taskbridge.Task{}, false, invalidRequest("task id is empty")
	}
	key := taskKey{t.OwnerID, t.ClientRequestID}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if err := s.check(); err != nil {
		return taskbridge.Task{}, false, err
	}
	if id, ok := s.keys[key]; ok {
		var existing taskbridge.Task
		err := s.view(id, func(ts *taskState) error {
			existing = ts.task
			return nil
		})
		if err != nil {
			return taskbridge.Task{}, false, err
		}
		return cloneTask(existing), false, nil
	}
	if _, ok := s.tasks.load(t.ID); ok {
		return taskbridge.Task{}, false, invalidRequest("task id %q is already used", t.ID)
	}
	if maxLive > 0 && s.liveTasks(t.OwnerID) >= int64(maxLive) {
		return taskbridge.Task{}, false, fmt.Errorf("%w: at most %d unfinished tasks", taskbridge.ErrTaskQuota, maxLive)
	}
	stored := cloneTask(t)
	stored.Status = taskbridge.StatusAccepted
	stored.LastSeq = 0
	out := cloneTask(stored)
	ts := &taskState{task: stored, first: 1}
	s.index(ts, stored) // before the task can be found, so ts.owner is set for every append
	s.tasks.store(t.ID, ts)
	s.keys[key] = t.ID
	return out, true, nil
}

// GetTask implements [taskbridge.TaskRegistry].
func (s *Store) GetTask(_ context.Context, taskID string) (taskbridge.Task, error) {
	var t taskbridge.Task
	err := s.view(taskID, func(ts *taskState) error {
		t = ts.task
		return nil
	})
	if err != nil {
		return taskbridge.Task{}, err
	}
	return cloneTask(t), nil
}

// GetTaskHead implements [taskbridge.TaskHeadGetter]: the task without its
// Input, Metadata and Attachments, which are not copied.
func (s *Store) GetTaskHead(_ context.Context, taskID string) (taskbridge.Task, error) {
	var t taskbridge.Task
	err := s.view(taskID, func(ts *taskState) error {
		t = ts.task
		return nil
	})
	t.Input, t.Metadata, t.Attachments = nil, nil, nil
	return t, err
}

// ListTasks implements [taskbridge.TaskRegistry]. One owner's tasks are
// listed from the owner's index: O(log n + the tasks looked at), where the
// tasks looked at are the page plus those a status filter skips. Listing
// every owner's tasks merges the owners' indexes: O(owners + looked at ×
// log owners). A limit below 1 fails with [taskbridge.ErrInvalidRequest].
func (s *Store) ListTasks(_ context.Context, q taskbridge.TaskQuery) ([]taskbridge.Task, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := storecheck.Limit(q.Limit); err != nil {
		return nil, err
	}
	var one [1]ownerCursor // one owner's listing allocates no slice
	cursors := one[:0]
	s.ownersMu.RLock()
	if q.OwnerID != "" {
		if o := s.owners[q.OwnerID]; o != nil {
			cursors = append(cursors, o.cursor(q.Before))
		}
	} else {
		cursors = make([]ownerCursor, 0, len(s.owners))
		for _, o := range s.owners {
			cursors = append(cursors, o.cursor(q.Before))
		}
	}
	s.ownersMu.RUnlock()

	out := make([]taskbridge.Task, 0, min(q.Limit, 128))
	newestFirst(cursors, func(ts *taskState) bool {
		ts.mu.RLock()
		if !ts.deleted && q.Matches(ts.task) {
			out = append(out, cloneTask(ts.task))
		}
		ts.mu.RUnlock()
		return len(out) < q.Limit
	})
	return out, nil
}

// forget takes a task about to be deleted out of the heaps of records
// waiting for maintenance: its receipts and its resumes still pending (a
// terminal task has no open suspension). ts.mu is held.
func (s *Store) forget(ts *taskState) {
	for id := range ts.receipts {
		s.dropDue(&s.receipts, ts.task.ID, id)
	}
	for _, sp := range ts.susps {
		if sp.ResumeStatus == taskbridge.ResumePending {
			s.dropDue(&s.resumes, ts.task.ID, sp.SuspendID)
		}
	}
}

// RequestCancel implements [taskbridge.TaskRegistry]. The first request also
// sets the task's UpdatedAt to now and calls the control watchers (see
// [Store.WatchControl]).
func (s *Store) RequestCancel(_ context.Context, taskID, reason string, now time.Time) (taskbridge.Task, bool, error) {
	var (
		t     taskbridge.Task
		first bool
	)
	err := s.update(taskID, func(ts *taskState) error {
		if !ts.task.Status.Terminal() && !ts.task.CancelRequested {
			ts.task.CancelRequested = true
			ts.task.CancelReason = reason
			ts.task.UpdatedAt = now
			first = true
		}
		t = ts.task
		return nil
	})
	if err != nil {
		return taskbridge.Task{}, false, err
	}
	if first {
		s.control.notify(taskID)
	}
	return cloneTask(t), first, nil
}

// DeleteTerminalTasks implements [taskbridge.TaskRegistry]. A task reached
// its terminal status at the CreatedAt of its terminal event; the oldest
// are removed first. A limit below 1 fails with
// [taskbridge.ErrInvalidRequest].
func (s *Store) DeleteTerminalTasks(ctx context.Context, before time.Time, limit int) (int, error) {
	deleted, err := s.PruneTerminalTasks(ctx, before, limit)
	return len(deleted), err
}

// PruneTerminalTasks implements [taskbridge.TerminalTaskPruner]: it is
// DeleteTerminalTasks returning the deleted tasks. The store keeps its
// terminal tasks ordered by end, so a call costs the tasks it removes
// (O(limit × log tasks)), not a scan of the store.
func (s *Store) PruneTerminalTasks(_ context.Context, before time.Time, limit int) ([]taskbridge.Task, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := storecheck.Limit(limit); err != nil {
		return nil, err
	}
	var deleted []taskbridge.Task
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	for len(deleted) < limit {
		e, ok := s.popDue(&s.ended, before.After)
		if !ok {
			break
		}
		e.ts.mu.Lock()
		if e.ts.deleted {
			e.ts.mu.Unlock()
			continue
		}
		t := e.ts.task
		key := taskKey{t.OwnerID, t.ClientRequestID}
		s.forget(e.ts)
		e.ts.release()
		e.ts.mu.Unlock()
		if s.keys[key] == e.taskID {
			delete(s.keys, key)
		}
		s.tasks.compareAndDelete(e.taskID, e.ts)
		deleted = append(deleted, cloneTask(t))
	}
	s.unindex(deleted)
	return deleted, nil
}
