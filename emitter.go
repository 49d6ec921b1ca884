package taskbridge

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Emitter returns the [Emitter] that reports events for taskID. Executors
// get one in Submit; an executor in another process that shares the store
// can build a Service over the same store and call this.
func (s *Service) Emitter(taskID string) Emitter { return &emitter{s: s, taskID: taskID} }

type emitter struct {
	s      *Service
	taskID string
}

func (e *emitter) TaskID() string { return e.taskID }

func (e *emitter) Emit(ctx context.Context, p Payload) (TaskEvent, error) {
	return e.emit(ctx, "", p)
}

func (e *emitter) EmitOnce(ctx context.Context, key string, p Payload) (TaskEvent, error) {
	if key == "" {
		return TaskEvent{}, fmt.Errorf("%w: EmitOnce needs a key", ErrInvalidEvent)
	}
	return e.emit(ctx, key, p)
}

func (e *emitter) emit(ctx context.Context, key string, p Payload) (TaskEvent, error) {
	if p == nil {
		return TaskEvent{}, fmt.Errorf("%w: nil payload", ErrInvalidEvent)
	}
	switch t := p.EventType(); t {
	case EventTaskSuspended, EventTaskActionAccepted:
		return TaskEvent{}, fmt.Errorf("%w: %s cannot be emitted directly (use Suspend; actions are appended by the service)", ErrInvalidEvent, t)
	}
	raw, err := EncodePayload(p)
	if err != nil {
		return TaskEvent{}, err
	}
	now := e.s.clock()
	// EncodePayload's JSON is valid and compact: a store that vouches for
	// its payloads takes it without checking it.
	ev := TaskEvent{Type: p.EventType(), TaskID: e.taskID, CreatedAt: now, Payload: raw, IdempotencyKey: key}
	if e.s.vetted != nil {
		ev, err = e.s.vetted.AppendVetted(ctx, ev)
	} else {
		ev, err = e.s.store.Append(ctx, ev)
	}
	if err != nil {
		return TaskEvent{}, err
	}
	// An earlier event with the same key comes back as it was stored.
	repeated := key != "" && !ev.CreatedAt.Equal(now)
	outcome := string(ev.Type)
	level := slog.LevelDebug
	switch {
	case repeated:
		outcome = "deduplicated"
	case ev.Terminal():
		level = slog.LevelInfo
	}
	if ev.Type == EventTaskFailed && !repeated {
		e.s.metrics.AddCounter(MetricTaskFailures, 1)
	}
	if fn := e.s.cfg.Diagnostics.EventAppended; fn != nil && !repeated {
		fn(ctx, ev)
	}
	e.s.log.LogAttrs(ctx, level, "taskbridge: event appended",
		slog.String("taskId", e.taskID), slog.String("eventId", ev.EventID),
		slog.String("transport", "internal"), slog.String("outcome", outcome))
	return ev, nil
}

func (e *emitter) Suspend(ctx context.Context, opts SuspendOpts) (Suspension, error) {
	now := e.s.clock()
	p := SuspendedPayload{
		SuspendID:      opts.SuspendID,
		Kind:           opts.Kind,
		ReasonCode:     opts.ReasonCode,
		AllowedActions: slices.Clone(opts.AllowedActions),
		SchemaVersion:  opts.SchemaVersion,
		UIHints:        opts.UIHints,
		Interaction:    opts.Interaction,
	}
	if p.SuspendID == "" {
		p.SuspendID = e.s.newID()
	}
	if p.Kind == "" {
		p.Kind = KindUserActionRequired
	}
	if p.SchemaVersion == 0 {
		p.SchemaVersion = 1
	}
	switch {
	case opts.ExpiresAt != nil:
		at := opts.ExpiresAt.UTC().Truncate(time.Millisecond)
		p.ExpiresAt = &at
	case opts.TTL > 0:
		at := now.Add(opts.TTL)
		p.ExpiresAt = &at
	}
	if err := p.checkAnswerable(); err != nil {
		return Suspension{}, err
	}
	raw, err := EncodePayload(p)
	if err != nil {
		return Suspension{}, err
	}
	sus, ev, err := e.s.store.OpenSuspension(ctx,
		Suspension{TaskID: e.taskID, SuspendedPayload: p, Status: SuspensionOpen, ResumeStatus: ResumeNone, CreatedAt: now},
		TaskEvent{Type: EventTaskSuspended, TaskID: e.taskID, CreatedAt: now, Payload: raw})
	if err != nil {
		return Suspension{}, err
	}
	if fn := e.s.cfg.Diagnostics.EventAppended; fn != nil {
		fn(ctx, ev)
	}
	e.s.log.LogAttrs(ctx, slog.LevelInfo, "taskbridge: task suspended",
		slog.String("taskId", e.taskID), slog.String("eventId", ev.EventID),
		slog.String("transport", "internal"), slog.String("outcome", string(EventTaskSuspended)))
	return sus, nil
}

func (e *emitter) CloseSuspension(ctx context.Context, suspendID string, status SuspensionStatus) (Suspension, bool, error) {
	if status != SuspensionExpired && status != SuspensionCancelled {
		return Suspension{}, false, fmt.Errorf("%w: a suspension can only be closed as EXPIRED or CANCELLED, not %q", ErrInvalidTransition, status)
	}
	return e.s.store.CloseSuspension(ctx, e.taskID, suspendID, status, e.s.clock())
}
