// Package riverexec is a [taskbridge.TaskExecutor] that runs every task as
// a River job (github.com/riverqueue/river) on PostgreSQL, next to the
// tasks in a [pgstore.Store]: the work spreads over every process that
// runs workers on the database, with River's retries, rescue of jobs whose
// worker died, and cancellation.
//
// # Setup
//
// Every process, serving clients or working jobs, builds the same three
// pieces over one database:
//
//	store, _ := pgstore.New(pool, pgstore.Config{})
//	exec, _ := riverexec.New(pool, riverexec.Config{Store: store, Handlers: handlers, Workers: 10})
//	svc, _ := taskbridge.New(taskbridge.Config{Store: exec.Store(), Executor: exec})
//	err := exec.Start(ctx, svc)
//	defer exec.Stop(ctx)
//
// Run [pgstore.Store.Migrate] and River's migrations ([Migrate]) first. A
// process with Workers 0 only creates, cancels and resumes tasks. Passing
// exec.Store() to the service makes a create write the task and insert its
// job in one transaction, so a task never exists without its job or a job
// without its task.
//
// # Handlers
//
// A [HandlerFunc] has the runner's signature and reports through the same
// [taskbridge.Emitter]: TASK_PROGRESS and TASK_MESSAGE events, suspensions
// through [Suspend], and the outcome by returning ([*runner.Failure] picks
// the TASK_FAILED payload). The worker emits TASK_STARTED and exactly one
// terminal event.
//
// A handler runs again from the start after a worker crash or an
// interrupted attempt, and when an accepted action resumes a suspended
// task. Each Emit is keyed by its position in the run (an idempotent
// append, see [taskbridge.Emitter].EmitOnce), so events are never appended
// twice; handlers must emit deterministically and keep side effects
// idempotent.
//
// # Suspensions
//
// [Suspend] does not hold a worker while the task waits: the job ends in
// the transaction that finds the suspension still OPEN, and the service's
// call to [Executor.Resume] after an accepted action inserts a new job,
// which runs the handler again; Suspend then returns the action at once.
// A suspension with a deadline leaves a job scheduled at the deadline,
// which expires it.
//
// # Cancellation and failures
//
// A cancel request cancels the task's job through River: a running
// handler's context is cancelled in whichever process runs it, and the task
// ends with TASK_CANCELLED; a task whose job waits is cancelled at once.
// When a worker dies, River's rescuer (after River's RescueStuckJobsAfter)
// makes the job run again; after [Config].MaxAttempts runs the task ends
// with TASK_FAILED {code: EXECUTOR_LOST, retryable: true}. A process that
// stops ([Executor.Stop]) hands its running jobs back to River, which runs
// them again elsewhere.
package riverexec
