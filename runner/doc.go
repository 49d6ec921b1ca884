// Package runner is an in-process task executor for taskbridge: it maps task
// types to handler functions and runs them on a bounded pool of goroutines.
//
// # Handlers
//
// A [HandlerFunc] gets the task, a context and an emitter. The runner emits
// TASK_STARTED before calling it; the handler reports TASK_PROGRESS and
// TASK_MESSAGE through the emitter and waits for client actions with
// [Suspend]; the runner emits the one terminal event from what the handler
// returns:
//
//   - a nil error: TASK_COMPLETED {result} (a result that is not valid JSON
//     fails the task with INTERNAL instead);
//   - a [*Failure] (found with errors.As): TASK_FAILED with its code,
//     message and retryable flag, as they are;
//   - any other error: TASK_FAILED {code: TASK_EXECUTION_FAILED, message:
//     "The task failed", retryable: false}; the error is only logged, since
//     it may hold internals;
//   - a panic (or runtime.Goexit): TASK_FAILED {code: INTERNAL, retryable:
//     false} with a generic message; the panic value and stack are logged
//     and the worker goes on with the next task.
//
// Handlers cannot emit TASK_STARTED or terminal events themselves.
//
// # Cancellation
//
// A client cancel cancels the handler's context. A task cancelled while
// queued never runs. Either way the task ends with exactly one
// TASK_CANCELLED {reason} (the request's reason, or "cancelled_by_user"):
// once the cancel reached the runner before the handler returned,
// cancellation wins over whatever the handler returns.
//
// # Suspensions
//
// [Suspend] opens a suspension and blocks until the service hands over an
// accepted action through [Runner.Resume], the suspension's deadline
// passes (the runner expires it at ExpiresAt and Suspend fails with
// [ErrSuspensionExpired]) or the task is cancelled. No polling is involved.
//
// # Queue, shutdown and recovery
//
// At most Config.Concurrency handlers run at once; up to Config.QueueSize
// more tasks wait in FIFO order, and Submit fails with [ErrQueueFull]
// beyond that (the service answers 503 TASK_SUBMISSION_ERROR, which clients
// retry). [Runner.Shutdown] stops accepting, lets submitted tasks finish and,
// when its context ends, cancels them: a shutdown is not a client cancel,
// so those tasks end with TASK_FAILED {code: EXECUTOR_SHUTDOWN, retryable:
// true}. With a durable store, [Runner.Recover] at startup ends the tasks a
// dead process left ACCEPTED or RUNNING with TASK_FAILED {code:
// EXECUTOR_LOST, retryable: true}.
package runner
