package memstore

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/taskbridge-go/taskbridge"
)

// CreateTask implements [taskbridge.TaskRegistry]. The stored task always
// starts ACCEPTED with LastSeq 0. A task id that is already used by another
// task fails with [taskbridge.ErrInvalidRequest].
func (s *Store) CreateTask(_ context.Context, t taskbridge.Task) (taskbridge.Task, bool, error) {
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
	if _, ok := s.tasks.Load(t.ID); ok {
		return taskbridge.Task{}, false, invalidRequest("task id %q is already used", t.ID)
	}
	stored := cloneTask(t)
	stored.Status = taskbridge.StatusAccepted
	stored.LastSeq = 0
	out := cloneTask(stored)
	s.tasks.Store(t.ID, &taskState{task: stored, first: 1})
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

// compareNewestFirst orders tasks by (CreatedAt, ID) descending.
func compareNewestFirst(a, b taskbridge.Task) int {
	if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}

// ListTasks implements [taskbridge.TaskRegistry]. It scans every task. A
// limit below 1 fails with [taskbridge.ErrInvalidRequest].
func (s *Store) ListTasks(_ context.Context, q taskbridge.TaskQuery) ([]taskbridge.Task, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := checkLimit(q.Limit); err != nil {
		return nil, err
	}
	var found []taskbridge.Task
	s.each(func(ts *taskState) bool {
		if q.Matches(ts.task) {
			found = append(found, ts.task)
		}
		return true
	})
	slices.SortFunc(found, compareNewestFirst)
	found = found[:min(len(found), q.Limit)]
	out := make([]taskbridge.Task, len(found))
	for i, t := range found {
		out[i] = cloneTask(t)
	}
	return out, nil
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
func (s *Store) DeleteTerminalTasks(_ context.Context, before time.Time, limit int) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	if err := checkLimit(limit); err != nil {
		return 0, err
	}
	type candidate struct {
		ts *taskState
		id string
		at time.Time
	}
	var cands []candidate
	s.each(func(ts *taskState) bool {
		if ts.task.Status.Terminal() && ts.terminalAt.Before(before) {
			cands = append(cands, candidate{ts, ts.task.ID, ts.terminalAt})
		}
		return true
	})
	slices.SortFunc(cands, func(a, b candidate) int {
		return cmp.Or(a.at.Compare(b.at), strings.Compare(a.id, b.id))
	})

	n := 0
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	for _, c := range cands {
		if n == limit {
			break
		}
		c.ts.mu.Lock()
		if c.ts.deleted {
			c.ts.mu.Unlock()
			continue
		}
		key := taskKey{c.ts.task.OwnerID, c.ts.task.ClientRequestID}
		c.ts.release()
		c.ts.mu.Unlock()
		if s.keys[key] == c.id {
			delete(s.keys, key)
		}
		s.tasks.CompareAndDelete(c.id, c.ts)
		n++
	}
	return n, nil
}
