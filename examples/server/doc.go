// Command server is a runnable TaskBridge demo: the HTTP API, SSE and
// WebSocket transports on a chi router, the in-process runner with four demo
// task types, an in-memory, PostgreSQL or Redis store and a browser demo
// page at /.
//
//	go run ./examples/server
//
// It listens on 127.0.0.1:8080 and prints "listening on http://ADDR" when it
// accepts connections. SIGINT or SIGTERM shut it down gracefully: streams are
// closed cleanly (SSE connections end, WebSockets close with 1001), running
// tasks get -task-grace to finish and are then stopped.
//
// With -store postgres (one database and schema) or -store redis (one Redis
// and key prefix), several servers are replicas of one application: a
// client may create, stream, cancel and act through any of them.
//
// # Flags
//
//	-addr                  host:port to listen on (default 127.0.0.1:8080; port 0 picks a free one)
//	-store                 memory (default), postgres or redis
//	-redis-url             Redis URL for -store redis (default $TASKBRIDGE_REDIS_URL)
//	-redis-prefix          key prefix for -store redis (default taskbridge)
//	-postgres-url          PostgreSQL URL for -store postgres (default $TASKBRIDGE_POSTGRES_URL)
//	-postgres-schema       schema of the tables for -store postgres (default taskbridge); the
//	                       server creates or upgrades them at startup
//	-lease-ttl             with -store postgres or redis, how long a replica's claim on a running
//	                       task lasts unless renewed (default 30s); when a replica dies, another
//	                       one ends its tasks (TASK_FAILED EXECUTOR_LOST) after that long
//	-replica               this process's name as the runner of its tasks (default random)
//	-heartbeat-interval    idle time before an SSE/WebSocket heartbeat (Go duration, default 15s,
//	                       at most 40s: the Android SDK reconnects after 60s of silence)
//	-shutdown-timeout      how long a graceful shutdown may take (default 10s)
//	-task-grace            how long running tasks may go on during a shutdown (default 2s);
//	                       then they end with TASK_FAILED EXECUTOR_SHUTDOWN (retryable)
//	-retention             how long finished tasks and their events are kept (default 1h)
//	-maintenance-interval  how often maintenance runs (default 1m): it deletes finished tasks
//	                       older than -retention and old action receipts, and retries failed
//	                       resume hand-offs; without it the in-memory store only grows
//	-max-live-tasks        how many unfinished tasks one user may have (default 20; 0: no
//	                       limit); a create beyond it is 429 TOO_MANY_TASKS
//	-metrics               serve Prometheus metrics at GET /metrics (default true; -metrics=false
//	                       turns it off): taskbridge_* (the prometheus module) and the Go
//	                       runtime's go_* and process_* metrics
//	-log-level             debug, info, warn or error (default info)
//
// # Authentication (demo only)
//
// Every API request must carry "Authorization: Bearer <subject>": the subject
// is the user and owns the tasks it creates (other users get 404 for them).
// A missing or empty token is 401 AUTHENTICATION_ERROR. Browsers cannot set
// headers on EventSource and WebSocket connections, so the SSE stream and
// WebSocket routes (only those) also accept the subject as the access_token
// query parameter. There are no passwords or signatures: anyone can be
// anyone. This is for demos only; a real host resolves real credentials in
// its taskbridge.AuthContextResolver.
//
// # Task types
//
// Create a task with POST /api/v1/tasks and one of these taskType values.
// Inputs are validated when the task is created: a member of the wrong type
// or out of range is 422 REQUEST_VALIDATION_ERROR naming the field (for
// example "input.steps"); unknown members are ignored. An unknown taskType
// is 400 INVALID_REQUEST. The bounds keep every task under 10 minutes:
// steps * stepDelayMs and count * intervalMs are at most 600000 too (422
// naming the delay field).
//
//   - greet, input {name="World", steps=3 (0..100), stepDelayMs=500
//     (0..60000)}: TASK_STARTED, then steps times (wait stepDelayMs,
//     TASK_PROGRESS {progress: 100*i/steps, stage, message}), then
//     TASK_COMPLETED {result: {greeting: "Hello, <name>!"}}.
//   - approval, input {ttlMs=60000 (1..600000)}: TASK_STARTED,
//     TASK_SUSPENDED {suspendId, kind: USER_ACTION_REQUIRED, reasonCode:
//     "approval_required", allowedActions: ["approve", "reject"],
//     schemaVersion: 1, expiresAt, interaction: {question}}. After an action
//     is accepted (TASK_ACTION_ACCEPTED): TASK_COMPLETED {result: {approved:
//     true}} for approve, {approved: false} for reject. When ttlMs passes
//     first: TASK_FAILED {code: "SUSPENSION_EXPIRED", message, retryable:
//     false}.
//   - fail, input {delayMs=0 (0..60000)}: TASK_STARTED, then after delayMs
//     TASK_FAILED {code: "DEMO_FAILURE", message, retryable: false}.
//   - stream, input {count=10 (0..1000), intervalMs=0 (0..60000)}:
//     TASK_STARTED, then for i = 1..count (wait intervalMs, TASK_MESSAGE
//     {message: "message <i> of <count>", level: "info"}), then
//     TASK_COMPLETED {result: {count}}.
//
// Every task can be cancelled (POST /api/v1/tasks/{taskId}/cancel) until it
// ends: it then ends with TASK_CANCELLED {reason} carrying the request's
// reason, or "cancelled_by_user".
//
// # Limits
//
// The runner's per-user limits are on (its defaults): each user has at most
// 16 tasks at work and 64 more waiting for a slot, and at most 256 approval
// tasks waiting for an answer; a create beyond that is 429 TOO_MANY_TASKS
// with Retry-After, and no task is created, so the same request succeeds
// once one of the user's tasks has ended. Tasks waiting for an answer hold
// no slot, and slots go round-robin by user: one user's tasks never delay
// another's.
//
// # Demo page
//
// GET / serves a single page (plain JavaScript, embedded in the binary) that
// starts tasks, shows their progress and event log live over SSE (falling
// back to WebSocket, then to long polling), offers Approve/Reject while a
// task is suspended and Cancel while it runs.
package main
