// Command temporal runs TaskBridge tasks as Temporal workflows with the
// temporalexec adapter: the HTTP API (with SSE and WebSocket) in front, task
// workflows behind, their events appended by activities in the worker.
//
// Start a Temporal dev server, then the example:
//
//	temporal server start-dev --headless --ip 127.0.0.1 --port 7233
//	go run ./examples/temporal
//
// It listens on 127.0.0.1:8080 and prints "listening on http://ADDR" when it
// accepts connections (and "worker polling QUEUE" once its worker polls).
// The task types are greet ({name, steps, stepDelayMs}: TASK_STARTED, steps
// TASK_PROGRESS events, TASK_COMPLETED {greeting}) and approval ({ttlMs}:
// TASK_STARTED, TASK_SUSPENDED with actions approve and reject,
// TASK_ACTION_ACCEPTED, TASK_COMPLETED {approved}; TASK_FAILED
// SUSPENSION_EXPIRED when nobody answers in time). Authentication is a demo
// stand-in: "Authorization: Bearer <name>" makes you <name>.
//
// # Separate processes
//
// Events are appended by the worker through a Service over the store the
// API reads, so a server and its workers in separate processes need a store
// they all reach: PostgreSQL.
//
//	export TASKBRIDGE_POSTGRES_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
//	go run ./examples/temporal -role server -store postgres &   # creates the tables, listens on 127.0.0.1:8080
//	go run ./examples/temporal -role worker -store postgres &   # as many as you like
//
// Kill a worker (kill -9) in the middle of a greet task and start another:
// the workflow goes on there, and its events arrive once each. Kill the
// server while a task runs: the task goes on, and a new server streams
// everything it missed.
//
// # Flags
//
//	-role                all (default): API server and worker in one process; server or worker alone
//	-addr                host:port the API listens on (default 127.0.0.1:8080; port 0 picks a free one)
//	-temporal            Temporal frontend host:port (default 127.0.0.1:7233)
//	-namespace           Temporal namespace (default "default")
//	-task-queue          task queue of the task workflows (default taskbridge-example)
//	-store               memory (default; only with -role all) or postgres
//	-postgres-url        PostgreSQL URL for -store postgres (default $TASKBRIDGE_POSTGRES_URL)
//	-postgres-schema     schema of the tables for -store postgres (default taskbridge)
//	-activity-timeout    worker: how long an event append may take before it is retried (default 10s)
//	-reconcile-interval  how often the server reconciles unfinished tasks with their workflows (default 1m)
//	-shutdown-timeout    how long a graceful shutdown may take (default 10s)
//	-log-level           debug, info, warn or error (default info)
package main
