package taskbridge

import (
	"context"
	"log/slog"
	"time"
)

// AttachmentDiscarder deletes stored upload files by their
// [Attachment].Ref. Every httpapi.AttachmentSink is one. Implementations
// must be safe for concurrent use; deleting a missing file is not an error.
type AttachmentDiscarder interface {
	Discard(ctx context.Context, ref string) error
}

// TerminalTaskPruner is an optional [TaskRegistry] extension. Retention
// uses it when [Config].Attachments is set, to learn which tasks it
// deleted so that their files can be removed too.
type TerminalTaskPruner interface {
	// PruneTerminalTasks is DeleteTerminalTasks that returns the tasks it
	// removed, with their Attachments.
	PruneTerminalTasks(ctx context.Context, before time.Time, limit int) ([]Task, error)
}

// deleteTerminalTasks deletes up to limit terminal tasks that ended before
// the given time and returns how many it deleted. With Config.Attachments
// and a [TerminalTaskPruner] store it also discards their files, adding
// the count to *discarded.
func (s *Service) deleteTerminalTasks(ctx context.Context, before time.Time, limit int, discarded *int) (int, error) {
	p, ok := s.store.(TerminalTaskPruner)
	if !ok || s.cfg.Attachments == nil {
		return s.store.DeleteTerminalTasks(ctx, before, limit)
	}
	tasks, err := p.PruneTerminalTasks(ctx, before, limit)
	for _, t := range tasks {
		*discarded += s.discardAttachments(ctx, t)
	}
	return len(tasks), err
}

// discardAttachments removes the files of a deleted task and returns how
// many it removed; failures are logged, since the task is gone either way.
func (s *Service) discardAttachments(ctx context.Context, t Task) int {
	n := 0
	for _, a := range t.Attachments {
		if a.Ref == "" {
			continue
		}
		if err := s.cfg.Attachments.Discard(ctx, a.Ref); err != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "taskbridge: discarding an attachment of a deleted task failed",
				slog.String("taskId", t.ID), slog.String("transport", "internal"), slog.Any("error", err))
			continue
		}
		n++
	}
	return n
}
