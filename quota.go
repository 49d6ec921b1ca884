package taskbridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// LiveTaskCreator is an optional [TaskRegistry] extension that makes
// [Config].MaxLiveTasksPerOwner exact.
type LiveTaskCreator interface {
	// CreateLiveTask is CreateTask with a quota, in one atomic step: when
	// no task with t's (OwnerID, ClientRequestID) exists and the owner
	// already has maxLive or more tasks that are not terminal, it creates
	// nothing and fails with an error wrapping [ErrTaskQuota]. An existing
	// task is returned with created=false whatever the count.
	CreateLiveTask(ctx context.Context, t Task, maxLive int) (stored Task, created bool, err error)
}

// liveStatuses are the statuses of tasks that count against the quota.
var liveStatuses = []TaskStatus{StatusAccepted, StatusRunning}

// storeTask stores a new task as [TaskRegistry.CreateTask] does, within
// Config.MaxLiveTasksPerOwner when it is set.
func (s *Service) storeTask(ctx context.Context, t Task) (Task, bool, error) {
	limit := s.cfg.MaxLiveTasksPerOwner
	if limit == 0 {
		return s.store.CreateTask(ctx, t)
	}
	if c, ok := s.store.(LiveTaskCreator); ok {
		stored, created, err := c.CreateLiveTask(ctx, t, limit)
		return stored, created, s.quotaError(ctx, t, err)
	}
	// Best effort: count first, then create. A repeat of a live task is
	// let through to be deduplicated.
	live, err := s.store.ListTasks(ctx, TaskQuery{OwnerID: t.OwnerID, Statuses: liveStatuses, Limit: limit})
	if err != nil {
		return Task{}, false, err
	}
	if len(live) >= limit {
		repeat := false
		for _, l := range live {
			repeat = repeat || l.ClientRequestID == t.ClientRequestID
		}
		if !repeat {
			return Task{}, false, s.quotaError(ctx, t, fmt.Errorf("%w: at most %d unfinished tasks", ErrTaskQuota, limit))
		}
	}
	return s.store.CreateTask(ctx, t)
}

// quotaError logs a create refused by the quota and returns err.
func (s *Service) quotaError(ctx context.Context, t Task, err error) error {
	if err != nil && errors.Is(err, ErrTaskQuota) {
		s.log.LogAttrs(ctx, slog.LevelInfo, "taskbridge: task create over quota",
			slog.String("clientRequestId", t.ClientRequestID), slog.String("userId", t.OwnerID),
			slog.String("outcome", "quota_exceeded"))
	}
	return err
}
