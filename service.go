package taskbridge

import (
	"context"
	"errors"
)

var errTODO = errors.New("taskbridge: not implemented yet")

// CreateTask creates a task (idempotent by the caller's clientRequestId) and
// submits it to the executor.
func (s *Service) CreateTask(ctx context.Context, auth AuthContext, req CreateTaskRequest) (CreateTaskResponse, error) {
	return CreateTaskResponse{}, errTODO
}

// PollEvents returns events strictly after req.AfterEventID, waiting up to
// req.WaitTimeout for the first one.
func (s *Service) PollEvents(ctx context.Context, auth AuthContext, taskID string, req PollRequest) (PollResponse, error) {
	return PollResponse{}, errTODO
}

// CancelTask requests cancellation of a task.
func (s *Service) CancelTask(ctx context.Context, auth AuthContext, taskID string, req CancelRequest) (CancelResponse, error) {
	return CancelResponse{}, errTODO
}

// SubmitAction answers a suspension of a task.
func (s *Service) SubmitAction(ctx context.Context, auth AuthContext, taskID string, req ActionRequest) (ActionResponse, error) {
	return ActionResponse{}, errTODO
}

// GetTask returns a snapshot of one task.
func (s *Service) GetTask(ctx context.Context, auth AuthContext, taskID string) (TaskSnapshot, error) {
	return TaskSnapshot{}, errTODO
}

// ListTasks returns a page of the caller's tasks, newest first.
func (s *Service) ListTasks(ctx context.Context, auth AuthContext, req ListTasksRequest) (TaskList, error) {
	return TaskList{}, errTODO
}
