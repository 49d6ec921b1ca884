package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/storecheck"
)

// requestField is the request index field of (owner, clientRequestID).
func requestField(owner, clientRequestID string) string {
	return strconv.Itoa(len(owner)) + ":" + owner + clientRequestID
}

// CreateTask implements [taskbridge.TaskRegistry]. The stored task always
// starts ACCEPTED with LastSeq 0. A task id that is already used by another
// task, or that is empty or contains NUL, fails with
// [taskbridge.ErrInvalidRequest].
func (s *Store) CreateTask(ctx context.Context, t taskbridge.Task) (taskbridge.Task, bool, error) {
	return s.create(ctx, t, 0)
}

// CreateLiveTask implements [taskbridge.LiveTaskCreator]: CreateTask that
// fails with [taskbridge.ErrTaskQuota] when the owner already has maxLive
// tasks that have not ended. The check and the create are one script over
// the owner's set of live tasks (a task joins it when created and leaves
// it with its terminal event), so the quota is exact across every
// process sharing the server. Tasks created by a version of this package
// without that set are not counted.
func (s *Store) CreateLiveTask(ctx context.Context, t taskbridge.Task, maxLive int) (taskbridge.Task, bool, error) {
	if maxLive < 1 {
		return taskbridge.Task{}, false, invalidRequest("maxLive %d must be at least 1", maxLive)
	}
	return s.create(ctx, t, maxLive)
}

func (s *Store) create(ctx context.Context, t taskbridge.Task, maxLive int) (taskbridge.Task, bool, error) {
	if err := s.check(); err != nil {
		return taskbridge.Task{}, false, err
	}
	if err := checkID("task id", t.ID); err != nil {
		return taskbridge.Task{}, false, err
	}
	head := taskData{
		ID: t.ID, OwnerID: t.OwnerID, ClientRequestID: t.ClientRequestID, TaskType: t.TaskType,
		Fingerprint: t.Fingerprint, CreatedAt: t.CreatedAt,
	}
	headJSON, err := json.Marshal(head)
	if err != nil {
		return taskbridge.Task{}, false, invalidRequest("task %q: %v", t.ID, err)
	}
	full := head
	full.Input, full.Metadata, full.Attachments = t.Input, t.Metadata, t.Attachments
	data, err := json.Marshal(full)
	if err != nil {
		return taskbridge.Task{}, false, invalidRequest("task %q: %v", t.ID, err)
	}
	cxl := ""
	if t.CancelRequested {
		cxl = "1"
	}
	r, err := s.run(ctx, "create task", createScript,
		[]string{s.k.requests(), s.k.task(t.ID), s.k.all(), s.k.owner(t.OwnerID), s.k.live(t.OwnerID)},
		s.k.taskPrefix(), requestField(t.OwnerID, t.ClientRequestID), t.ID, data,
		timeKey(t.UpdatedAt), cxl, t.CancelReason, t.OwnerID, timeKey(t.CreatedAt)+t.ID, headJSON, maxLive)
	if err != nil {
		return taskbridge.Task{}, false, err
	}
	switch r.str(0) {
	case "CREATED", "EXISTS":
		got, err := decodeTask(r.sub(1))
		return got, r.str(0) == "CREATED", err
	case "IDUSED":
		return taskbridge.Task{}, false, invalidRequest("task id %q is already used", t.ID)
	case "QUOTA":
		return taskbridge.Task{}, false, fmt.Errorf("%w: at most %d unfinished tasks", taskbridge.ErrTaskQuota, maxLive)
	}
	return taskbridge.Task{}, false, unexpected("create task", r)
}

// GetTask implements [taskbridge.TaskRegistry].
func (s *Store) GetTask(ctx context.Context, taskID string) (taskbridge.Task, error) {
	if err := s.check(); err != nil {
		return taskbridge.Task{}, err
	}
	v, err := s.rdb.HMGet(ctx, s.k.task(taskID), taskFields...).Result()
	if err != nil {
		return taskbridge.Task{}, s.redisErr("get task", err)
	}
	if v[0] == nil {
		return taskbridge.Task{}, taskNotFound(taskID)
	}
	return decodeTask(v)
}

// GetTaskHead implements [taskbridge.TaskHeadGetter]: the task without its
// Input, Metadata and Attachments, which are not read from the server (a
// task stored by a version of this package without the head record is
// read whole and stripped).
func (s *Store) GetTaskHead(ctx context.Context, taskID string) (taskbridge.Task, error) {
	if err := s.check(); err != nil {
		return taskbridge.Task{}, err
	}
	v, err := s.rdb.HMGet(ctx, s.k.task(taskID), headFields...).Result()
	if err != nil {
		return taskbridge.Task{}, s.redisErr("get task", err)
	}
	if v[1] == nil {
		return taskbridge.Task{}, taskNotFound(taskID)
	}
	if v[0] == nil {
		t, err := s.GetTask(ctx, taskID)
		t.Input, t.Metadata, t.Attachments = nil, nil, nil
		return t, err
	}
	return decodeTask(v)
}

// headFields are taskFields with the head record in place of data.
var headFields = append([]string{"head"}, taskFields[1:]...)

// listBatch is how many index entries ListTasks reads per round trip.
const listBatch = 100

// ListTasks implements [taskbridge.TaskRegistry]. It walks the owner's (or
// the global) creation index newest first and filters statuses as it goes,
// so a filter that matches few tasks reads more of the index. A limit
// below 1 fails with [taskbridge.ErrInvalidRequest].
func (s *Store) ListTasks(ctx context.Context, q taskbridge.TaskQuery) ([]taskbridge.Task, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := storecheck.Limit(q.Limit); err != nil {
		return nil, err
	}
	index := s.k.all()
	if q.OwnerID != "" {
		index = s.k.owner(q.OwnerID)
	}
	upper := "+"
	if q.Before != nil {
		upper = "(" + timeKey(q.Before.CreatedAt) + q.Before.ID
	}
	out := []taskbridge.Task{}
	for len(out) < q.Limit {
		r, err := s.run(ctx, "list tasks", listScript, []string{index}, s.k.taskPrefix(), upper, listBatch)
		if err != nil {
			return nil, err
		}
		for i := range r {
			item := r.sub(i)
			upper = "(" + item.str(0)
			f := item.sub(1)
			if len(f) == 0 || f[0] == nil {
				continue // deleted meanwhile
			}
			t, err := decodeTask(f)
			if err != nil {
				return nil, err
			}
			if q.Matches(t) {
				out = append(out, t)
				if len(out) == q.Limit {
					break
				}
			}
		}
		if len(r) < listBatch {
			break
		}
	}
	return out, nil
}

// RequestCancel implements [taskbridge.TaskRegistry]. The first request also
// sets the task's UpdatedAt to now and notifies the [taskbridge.ControlFeed]
// watchers of every process.
func (s *Store) RequestCancel(ctx context.Context, taskID, reason string, now time.Time) (taskbridge.Task, bool, error) {
	r, err := s.run(ctx, "request cancel", cancelScript, s.k.taskKeys(taskID), s.k.taskArgs(taskID, reason, timeKey(now))...)
	if err != nil {
		return taskbridge.Task{}, false, err
	}
	switch r.str(0) {
	case "FIRST", "NOTFIRST":
		t, err := decodeTask(r.sub(1))
		return t, r.str(0) == "FIRST", err
	case "NOTFOUND":
		return taskbridge.Task{}, false, taskNotFound(taskID)
	}
	return taskbridge.Task{}, false, unexpected("request cancel", r)
}

// DeleteTerminalTasks implements [taskbridge.TaskRegistry]: it removes the
// tasks whose terminal event is oldest first, each with its events,
// suspensions, receipts, lease and index entries, in one script. A limit
// below 1 fails with [taskbridge.ErrInvalidRequest].
func (s *Store) DeleteTerminalTasks(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	if err := storecheck.Limit(limit); err != nil {
		return 0, err
	}
	n, err := deleteTerminalScript.Run(ctx, s.rdb, s.deleteKeys(), s.deleteArgs(before, limit, "0")...).Int()
	if err != nil {
		return 0, s.redisErr("delete terminal tasks", err)
	}
	return n, nil
}

// PruneTerminalTasks implements [taskbridge.TerminalTaskPruner]: it is
// DeleteTerminalTasks returning the deleted tasks, read in the script that
// deletes them.
func (s *Store) PruneTerminalTasks(ctx context.Context, before time.Time, limit int) ([]taskbridge.Task, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := storecheck.Limit(limit); err != nil {
		return nil, err
	}
	r, err := s.run(ctx, "delete terminal tasks", deleteTerminalScript, s.deleteKeys(), s.deleteArgs(before, limit, "1")...)
	if err != nil {
		return nil, err
	}
	out := make([]taskbridge.Task, 0, len(r))
	for i := range r {
		t, err := decodeTask(r.sub(i))
		if err != nil {
			return out, err
		}
		out = append(out, t)
	}
	return out, nil
}

func (s *Store) deleteKeys() []string {
	return []string{s.k.terminal(), s.k.requests(), s.k.all(), s.k.leases(), s.k.expiry(), s.k.resumes(), s.k.receipts()}
}

func (s *Store) deleteArgs(before time.Time, limit int, tasks string) []any {
	return []any{s.k.taskPrefix(), s.k.ownerPrefix(), strictlyBefore(before), limit, tasks}
}

// decodeSuspensionList decodes {{task id, suspension fields}, ...} replies.
func decodeSuspensionList(r reply) ([]taskbridge.Suspension, error) {
	out := make([]taskbridge.Suspension, 0, len(r))
	for i := range r {
		item := r.sub(i)
		sp, err := decodeSuspension(item.str(0), item.sub(1))
		if err != nil {
			return nil, err
		}
		out = append(out, sp)
	}
	return out, nil
}

// sortSuspensions orders suspensions as they were opened.
func sortSuspensions(list []taskbridge.Suspension) {
	slices.SortFunc(list, func(a, b taskbridge.Suspension) int {
		switch {
		case a.EventSeq < b.EventSeq:
			return -1
		case a.EventSeq > b.EventSeq:
			return 1
		}
		return 0
	})
}
