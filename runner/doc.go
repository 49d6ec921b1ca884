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
//     and the runner goes on with the next task.
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
// While it waits, the handler gives its slot up (see below) and holds only
// its goroutine and, with leases, its lease, which is renewed as usual.
//
// # Slots, fairness and limits
//
// At most Config.Concurrency handlers are at work at once, each holding a
// slot; a handler waiting in Suspend does not hold one (up to
// Config.MaxSuspended such handlers, Config.MaxSuspendedPerOwner of one
// owner; past those it keeps its slot while it waits). Tasks waiting for a
// slot, new ones and handlers back from Suspend, are served round-robin by
// owner (the task's OwnerID), at most Config.MaxRunningPerOwner of one
// owner at work at once, so one owner's backlog does not delay anyone
// else's tasks.
//
// The runner is a [taskbridge.TaskAdmitter]: the service asks it before it
// creates a task, and it refuses the create, before the task exists, when
// the caller already has MaxRunningPerOwner+MaxQueuedPerOwner tasks running
// or waiting for a slot, or MaxSuspendedPerOwner handlers waiting in
// Suspend: 429 TOO_MANY_TASKS with Retry-After, which frees up as the
// caller's tasks end. When the runner as a whole holds
// Concurrency+QueueSize tasks running or waiting for a slot, creates are
// refused with 503 TASK_SUBMISSION_ERROR ([ErrQueueFull]). Clients retry
// both, and since no task was created a retry with the same
// clientRequestId creates it. The defaults (64 slots, 16 per owner, 64
// more waiting per owner, 1024 waiting in all, 4096 suspended, 256 per
// owner) are on; a host loosens them with negative values. [Runner.Stats]
// and [Runner.OwnerStats] report the load. The limits count the tasks this
// runner holds: with several processes, each applies its own. A task taken
// over from a dead process (see below) counts too, but is only refused
// when the runner as a whole is full.
//
// # Shutdown and recovery
//
// [Runner.Shutdown] stops accepting, lets submitted tasks finish and,
// when its context ends, cancels them: a shutdown is not a client cancel,
// so those tasks end with TASK_FAILED {code: EXECUTOR_SHUTDOWN, retryable:
// true}. With a durable store, [Runner.Recover] at startup ends the tasks a
// dead process left ACCEPTED or RUNNING with TASK_FAILED {code:
// EXECUTOR_LOST, retryable: true}.
//
// # Several processes
//
// Several processes ("replicas") can serve one store when it is a
// [taskbridge.LeaseStore] and a [taskbridge.ControlFeed] (the Redis and
// PostgreSQL stores). Give each runner the store as Config.Leases and its
// own Config.Replica, call [Runner.Recover] at startup and run
// [Runner.RunRecovery] next to the service's maintenance:
//
//	r, _ := runner.New(runner.Config{Handlers: h, Leases: store, Replica: hostname})
//	svc, _ := taskbridge.New(taskbridge.Config{Store: store, Executor: r})
//	_, _ = r.Recover(ctx, store, svc.Emitter)
//	go r.RunRecovery(ctx, store, svc.Emitter, 0)
//
// The runner then holds a lease on every task it queues or runs: Submit
// acquires it (and refuses a task another live process holds), one
// goroutine renews all of them every LeaseTTL/3, and the lease is released
// after the task's terminal event. Cancel requests and accepted actions
// received by any process reach the handler through the service's control
// relay (see [taskbridge.LocalExecutor]), within milliseconds.
//
// A runner that could not renew a lease by its deadline (LeaseTTL*4/5 after
// the last renewal started), or learns that another process took it, stops
// acting for the task: the handler's context is cancelled with
// [taskbridge.ErrLeaseLost] as its cause, its emitter refuses every event,
// and the runner emits no terminal event, since the process that takes the
// task over does. The deadline is checked at every event, so a process that
// was paused (a stopped VM, a long GC pause) emits nothing once it resumes
// late.
//
// When a process dies (kill -9, a lost machine), its leases expire and
// [Runner.TakeOver] in another process takes its tasks over, exactly one
// process per task, by this policy:
//
//   - a task with a cancel request ends with TASK_CANCELLED {reason};
//   - a task whose type is listed in Config.RerunTypes runs again on the
//     process that took it over, from the start of its handler: the log
//     goes on (no second TASK_STARTED), events emitted with
//     [taskbridge.Emitter.EmitOnce] are not repeated, and [Suspend] takes
//     up a suspension the earlier run opened with the same id (returning
//     an action accepted meanwhile). Handlers listed there must be
//     idempotent: emit with EmitOnce and stable keys, give suspensions
//     fixed ids, and make their own side effects safe to repeat;
//   - every other task ends with TASK_FAILED {code: EXECUTOR_LOST,
//     retryable: true}.
//
// Either way the task gets exactly one terminal event. A task created by a
// process that died before submitting it has no lease; it is taken over
// once it was last updated more than a LeaseTTL ago.
//
// Leases compare times of different processes: they assume that the
// processes' clocks agree to well within LeaseTTL/5 (6s with the default
// TTL of 30s), as NTP-synchronised clocks do. The guarantee rests on the
// runner's own checks, not on the store refusing stale writes: a process
// paused between its check and a store write could append that one event
// after its lease expired.
package runner
