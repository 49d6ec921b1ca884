package taskbridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// repeatScan is how many of the caller's newest tasks a refused create
// looks through for an existing task with its clientRequestId.
const repeatScan = 100

// admit asks a [TaskAdmitter] executor for room for the caller's new task.
// It returns the release function to call once the task was submitted or
// will not be. A refusal is returned as an error that maps to 429 or 503,
// unless the request repeats an existing task: that one is answered as
// usual (deduplicated, or an idempotency conflict), whatever the limits.
func (s *Service) admit(ctx context.Context, auth AuthContext, req CreateTaskRequest) (func(), error) {
	a, ok := s.exec.(TaskAdmitter)
	if !ok {
		return func() {}, nil
	}
	release, err := a.AdmitTask(ctx, auth, req)
	if err == nil {
		if release == nil {
			release = func() {}
		}
		return release, nil
	}
	if s.existingRequest(ctx, auth, req.ClientRequestID) {
		return func() {}, nil
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "taskbridge: task create refused",
		slog.String("clientRequestId", req.ClientRequestID), slog.String("userId", auth.Subject),
		slog.String("outcome", "refused"), slog.Any("error", err))
	if !errors.Is(err, ErrTooManyTasks) && !errors.Is(err, ErrSubmission) && !errors.Is(err, ErrClosed) {
		err = fmt.Errorf("%w: %w", ErrSubmission, err)
	}
	return nil, err
}

// existingRequest reports whether one of the caller's newest tasks was
// created with clientRequestID. A store error counts as no.
func (s *Service) existingRequest(ctx context.Context, auth AuthContext, clientRequestID string) bool {
	tasks, err := s.store.ListTasks(ctx, TaskQuery{OwnerID: auth.Subject, Limit: repeatScan})
	if err != nil {
		return false
	}
	for _, t := range tasks {
		if t.ClientRequestID == clientRequestID {
			return true
		}
	}
	return false
}
