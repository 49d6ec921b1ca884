// Package temporalexec runs taskbridge tasks as Temporal workflows: durable
// execution behind the TaskBridge API. It lives in its own Go module, so
// only hosts that use it depend on the Temporal SDK.
//
// Two halves share a task queue and a store:
//
//   - In the API process, an [Executor] is the Service's
//     [taskbridge.TaskExecutor]. It starts one workflow per task (id
//     "taskbridge-" + task id, the workflow type chosen by task type),
//     cancels it when a client cancels the task, and signals accepted
//     actions to it.
//   - In worker processes, [Register] registers the task workflows (plain
//     [WorkflowFunc]s) and the activities that append their events through
//     the [taskbridge.Emitter] of a Service over the same store.
//
// # Workflows
//
// A [WorkflowFunc] is ordinary workflow code with the feel of a runner
// handler:
//
//	func greet(ctx workflow.Context, task *taskbridge.Task) (any, error) {
//		for i := 1; i <= 3; i++ {
//			if err := workflow.Sleep(ctx, time.Second); err != nil {
//				return nil, err
//			}
//			if _, err := temporalexec.Emit(ctx, taskbridge.ProgressPayload{Progress: float64(100 * i / 3)}); err != nil {
//				return nil, err
//			}
//		}
//		return map[string]string{"greeting": "Hello!"}, nil
//	}
//
// The adapter emits TASK_STARTED before calling it and exactly one terminal
// event from what it returns: TASK_COMPLETED {result}, TASK_FAILED (codes
// and messages chosen with [NewFailure]; any other error is a generic
// TASK_EXECUTION_FAILED) or, when the workflow was cancelled, TASK_CANCELLED.
// [Emit] appends TASK_PROGRESS and TASK_MESSAGE; [Suspend] opens a
// suspension and waits for the client's action, delivered by a signal, or
// for its deadline, a workflow timer.
//
// # Events come from the workflow side
//
// Every event is appended by an activity in the worker, never by the API
// process, so events survive restarts of both: a task goes on while the API
// is down, and a stream opened on any API process later replays what it
// missed from the store. Activities are retried until the store takes the
// event (see WorkerConfig.RetryPolicy), and retries never duplicate an
// event: each append carries an idempotency key made of the workflow id and
// the step number (TASK_STARTED is step 0, then each Emit and Suspend call
// in workflow order; the terminal event has its own key), which the store
// checks ([taskbridge.EventStore] Append). The key contains no run id, so it
// is the same in a replay after a worker restart, in a retried activity and
// in a run continued by [ContinueAsNew]. Suspension ids derive from the same
// key. The store's state machine adds the last guarantee: a task has one
// terminal event, whatever races.
//
// # Cancellation and actions
//
// A client's cancel request becomes a Temporal cancellation of the
// workflow; the workflow's context is cancelled, and when the WorkflowFunc
// returns the task ends with TASK_CANCELLED {the request's reason}, also if
// the function returned a result after the request (cancellation wins). A
// workflow cancelled through Temporal directly ends with reason
// [WorkflowCancelReason]. An accepted action is signalled ([SignalAction])
// after the service appended TASK_ACTION_ACCEPTED; duplicate hand-offs are
// ignored.
//
// # What workflow code cannot report
//
// Some endings run no workflow code: a terminated workflow, a workflow
// execution or run timeout, a workflow that fails on a panic when the
// worker's WorkflowPanicPolicy is FailWorkflow (the default blocks the
// workflow instead, until fixed code is deployed), a history deleted by the
// namespace's retention. [Executor.Reconcile], run periodically, ends those
// tasks (TASK_FAILED WORKFLOW_TERMINATED or EXECUTOR_LOST, retryable),
// re-sends cancel requests and submits tasks whose process died between
// creating and submitting them.
//
// # Limits
//
//   - Workflow reset: a reset run replays the steps before the reset point
//     and re-executes the later ones with the same step numbers, so events
//     the original run appended for those steps are not appended again
//     (and if the reset run takes a different path, the earlier event
//     stands for the new step). A task that already ended stays ended: a
//     reset cannot reopen it.
//   - Continue-as-new: use [ContinueAsNew], which carries the step count
//     and untaken actions to the new run. A continue-as-new error made any
//     other way fails the task.
//   - History size: each event costs an activity (a few history events), and
//     Temporal caps a workflow's history (50,000 events by default). A
//     workflow that reports many events should batch its progress or
//     continue as new now and then.
//   - Workflow code changes must keep the order of Emit and Suspend calls
//     for running workflows, as Temporal requires for any command (use
//     workflow.GetVersion).
//   - Tracing: Executor methods pass their context to the client and
//     activities pass theirs to the store, so Temporal's interceptors
//     (client and worker options) carry trace context from the API request
//     to the workflow and its appends.
package temporalexec
