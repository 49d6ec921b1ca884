package taskbridge

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// maintenanceBatch is how many records one store call of a maintenance pass
// handles; maintenanceMaxBatches bounds the calls per pass.
const (
	maintenanceBatch      = 100
	maintenanceMaxBatches = 100
)

// ReconcileReport is the outcome of [Service.Reconcile].
type ReconcileReport struct {
	// Dispatched counts pending hand-offs completed by this pass.
	Dispatched int
	// Failed counts hand-offs that failed again and stay pending.
	Failed int
	// Skipped counts hand-offs of tasks that a [LocalExecutor] does not
	// hold: the process running the task hands them over, or the one that
	// takes the task over when that process died.
	Skipped int
}

// Reconcile retries the resume hand-offs of accepted actions that are still
// PENDING (the executor's Resume failed, or the process died in between).
// Hand-offs of terminal tasks are marked dispatched, since nobody waits for
// them any more. With a [LocalExecutor], hand-offs of other tasks it does
// not hold are skipped. One failure does not stop the pass; it returns the
// first store error that prevented listing.
func (s *Service) Reconcile(ctx context.Context) (ReconcileReport, error) {
	var rep ReconcileReport
	pending, err := s.store.ListPendingResumes(ctx, maintenanceBatch)
	if err != nil {
		return rep, err
	}
	for _, sus := range pending {
		skipped, err := s.reconcileOne(ctx, sus)
		if skipped {
			rep.Skipped++
			continue
		}
		if err != nil {
			rep.Failed++
			s.log.LogAttrs(ctx, slog.LevelWarn, "taskbridge: resume reconciliation failed",
				slog.String("taskId", sus.TaskID), slog.String("clientRequestId", sus.ResolvedActionID),
				slog.String("transport", "internal"), slog.String("outcome", "failed"), slog.Any("error", err))
			continue
		}
		rep.Dispatched++
		s.log.LogAttrs(ctx, slog.LevelInfo, "taskbridge: resume reconciled",
			slog.String("taskId", sus.TaskID), slog.String("clientRequestId", sus.ResolvedActionID),
			slog.String("transport", "internal"), slog.String("outcome", "dispatched"))
	}
	return rep, nil
}

// reconcileOne hands one pending action over, or reports that it is left
// to another process.
func (s *Service) reconcileOne(ctx context.Context, sus Suspension) (skipped bool, err error) {
	task, err := s.store.GetTask(ctx, sus.TaskID)
	if errors.Is(err, ErrTaskNotFound) {
		return false, nil // deleted by retention: nothing left to resume
	}
	if err != nil {
		return false, err
	}
	if task.Status.Terminal() {
		// Nobody waits for the action any more.
		return false, s.store.MarkResumeDispatched(ctx, sus.TaskID, sus.SuspendID)
	}
	if local, ok := s.exec.(LocalExecutor); ok && !local.Holds(task.ID) {
		return true, nil
	}
	rec, err := s.store.GetReceipt(ctx, sus.TaskID, sus.ResolvedActionID)
	if err != nil {
		return false, err
	}
	return false, s.resume(ctx, task, sus, rec)
}

// PruneReport is the outcome of [Service.Prune].
type PruneReport struct {
	// SuspensionsExpired counts OPEN suspensions moved to EXPIRED.
	SuspensionsExpired int
	// ReceiptsDeleted counts action receipts older than ReceiptRetention.
	ReceiptsDeleted int
	// TasksDeleted counts terminal tasks older than TaskRetention.
	TasksDeleted int
	// AttachmentsDiscarded counts the files of deleted tasks that
	// Config.Attachments removed.
	AttachmentsDiscarded int
}

// Prune applies retention: it expires OPEN suspensions past their deadline,
// deletes receipts older than Config.ReceiptRetention (keeping those whose
// resume is still pending) and, unless Config.TaskRetention is negative,
// deletes terminal tasks older than that with their events, and their
// uploaded files through Config.Attachments.
func (s *Service) Prune(ctx context.Context) (PruneReport, error) {
	var rep PruneReport
	now := s.clock()
	for range maintenanceMaxBatches {
		sus, err := s.store.ExpireSuspensions(ctx, now, maintenanceBatch)
		if err != nil {
			return rep, err
		}
		rep.SuspensionsExpired += len(sus)
		if len(sus) < maintenanceBatch {
			break
		}
	}
	if err := batched(func() (int, error) {
		return s.store.DeleteReceipts(ctx, now.Add(-s.cfg.ReceiptRetention), maintenanceBatch)
	}, &rep.ReceiptsDeleted); err != nil {
		return rep, err
	}
	if s.cfg.TaskRetention > 0 {
		if err := batched(func() (int, error) {
			return s.deleteTerminalTasks(ctx, now.Add(-s.cfg.TaskRetention), maintenanceBatch, &rep.AttachmentsDiscarded)
		}, &rep.TasksDeleted); err != nil {
			return rep, err
		}
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "taskbridge: retention pass",
		slog.Int("suspensionsExpired", rep.SuspensionsExpired), slog.Int("receiptsDeleted", rep.ReceiptsDeleted),
		slog.Int("tasksDeleted", rep.TasksDeleted), slog.String("transport", "internal"), slog.String("outcome", "ok"))
	return rep, nil
}

// batched calls del until it removes fewer than a full batch, adding the
// counts to total.
func batched(del func() (int, error), total *int) error {
	for range maintenanceMaxBatches {
		n, err := del()
		*total += n
		if err != nil || n < maintenanceBatch {
			return err
		}
	}
	return nil
}

// RunMaintenance runs [Service.Reconcile] and [Service.Prune] every interval
// until ctx ends, then returns nil. The host starts it (go
// svc.RunMaintenance(ctx, time.Minute)) and stops it by cancelling ctx.
// Errors of a pass are logged and the next pass runs as usual.
func (s *Service) RunMaintenance(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return errors.New("taskbridge: maintenance interval must be positive")
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := s.Reconcile(ctx); err != nil && ctx.Err() == nil {
			s.log.LogAttrs(ctx, slog.LevelError, "taskbridge: reconcile pass failed", slog.Any("error", err))
		}
		if _, err := s.Prune(ctx); err != nil && ctx.Err() == nil {
			s.log.LogAttrs(ctx, slog.LevelError, "taskbridge: retention pass failed", slog.Any("error", err))
		}
	}
}
