package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/taskbridge-go/taskbridge"
)

// recoverPage is how many tasks Recover lists per store read.
const recoverPage = 100

// Recover ends the tasks a previous process left unfinished: every task in
// tasks that is ACCEPTED or RUNNING, of any owner, and not held by this
// runner. A task with a recorded cancel request ends with TASK_CANCELLED
// {reason}; every other one with TASK_FAILED {code: EXECUTOR_LOST,
// retryable: true}, so clients can create it again. Handlers are not
// re-run: the runner cannot know what a dead handler already did. Events go
// through emitter (pass [taskbridge.Service.Emitter]); a task that became
// terminal meanwhile is skipped. Recover returns how many tasks it ended.
//
// Call it once at startup with a durable store, before serving. It assumes
// this runner is the store's only executor: with several processes sharing
// a store it would end the tasks the others are running.
func (r *Runner) Recover(ctx context.Context, tasks taskbridge.TaskRegistry, emitter func(taskID string) taskbridge.Emitter) (int, error) {
	q := taskbridge.TaskQuery{
		Statuses: []taskbridge.TaskStatus{taskbridge.StatusAccepted, taskbridge.StatusRunning},
		Limit:    recoverPage,
	}
	n := 0
	for {
		page, err := tasks.ListTasks(ctx, q)
		if err != nil {
			return n, fmt.Errorf("runner: listing unfinished tasks: %w", err)
		}
		for _, t := range page {
			if r.holds(t.ID) {
				continue
			}
			var p taskbridge.Payload = failedLost
			if t.CancelRequested {
				p = cancelledPayload(t.CancelReason)
			}
			_, err := emitter(t.ID).Emit(ctx, p)
			switch {
			case err == nil:
				n++
				r.log.LogAttrs(ctx, slog.LevelWarn, "runner: recovered unfinished task",
					slog.String("taskId", t.ID), slog.String("taskType", t.TaskType),
					slog.String("outcome", string(p.EventType())))
			case errors.Is(err, taskbridge.ErrTaskTerminal):
			default:
				return n, fmt.Errorf("runner: ending task %s: %w", t.ID, err)
			}
		}
		if len(page) < q.Limit {
			return n, nil
		}
		last := page[len(page)-1]
		q.Before = &taskbridge.TaskPosition{CreatedAt: last.CreatedAt, ID: last.ID}
	}
}

// holds reports whether the task is queued or running here.
func (r *Runner) holds(taskID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.jobs[taskID]
	return ok
}
