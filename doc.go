// Package taskbridge streams the events of long-running tasks to mobile,
// browser and service clients over long polling, Server-Sent Events and
// WebSocket. Delivery is replay-safe: every event has an id, and a client
// that reconnects with the last id it saw resumes exactly after it, on any
// transport. The wire format is the TaskBridge v1 protocol (see the
// protocol directory of the repository), so the TaskBridge Android SDK works
// unchanged. Every time the library writes (event createdAt, payload times,
// task summaries, error timestamps, SSE heartbeats) is RFC 3339 in UTC with
// exactly three fractional digits, "2026-05-04T12:00:00.000Z", so apps may
// parse it with a fixed pattern; decoding accepts any RFC 3339 time.
//
// A task is created by a client, runs in an executor, and reports an ordered
// event log: TASK_STARTED, TASK_PROGRESS, TASK_MESSAGE, TASK_SUSPENDED
// (waiting for a client action), TASK_ACTION_ACCEPTED, and exactly one
// terminal TASK_COMPLETED, TASK_FAILED or TASK_CANCELLED.
//
// The library owns the models, the [Service] (create, poll, cancel, actions,
// subscribe, snapshots and listings), the HTTP, SSE and WebSocket handlers
// (packages httpapi, sse and ws), and replay-safe delivery. The host owns
// its http.Server or router, its authentication ([AuthContextResolver]),
// where state lives (a [Store]) and how work runs (a [TaskExecutor]).
//
// # Services
//
// A [Service] ties a store and an executor together:
//
//	store := memstore.New(memstore.Config{})
//	exec, _ := runner.New(runner.Config{Handlers: handlers})
//	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: exec})
//
// Its methods take the caller's [AuthContext] explicitly and return sentinel
// errors ([ErrTaskNotFound], [ErrInvalidCursor], [ErrEventsExpired], ...)
// that [HTTPError] maps to protocol error codes and HTTP statuses. Commands
// are idempotent: creates by the caller's clientRequestId, actions by
// clientActionId.
//
// # Mounting handlers
//
// The transports are plain http.Handlers that work in chi (r.Mount) and in
// http.ServeMux, with every path configurable:
//
//	api, _ := httpapi.New(svc, httpapi.Config{Auth: auth, Stream: sseHandler, WebSocket: wsHandler})
//	r := chi.NewRouter()
//	r.Mount("/", api)
//
// See the httpapi, sse and ws packages.
//
// # Stores
//
// A [Store] is a [TaskRegistry], an [EventStore] and a [SuspensionStore]
// implemented by one backend, because an append, the task's status change
// and suspension/receipt updates must happen atomically. The store assigns
// event positions (Seq 1, 2, 3, ... per task); event ids are their decimal
// form, and "after cursor c" means strictly after c in append order. A
// malformed cursor is a client error ([ErrInvalidCursor], HTTP 400); a cursor
// older than the retained log is reported as [ErrEventsExpired] (HTTP 410,
// WebSocket close 4410), never skipped silently. Waiting is push-based:
// stores notify watchers on append. The memstore package is the in-memory
// default; the pgstore and redisstore modules keep tasks in PostgreSQL or
// Redis, shared by several processes; and the storetest package is the
// conformance suite every store must pass. Optional interfaces a store may
// add, checked by type assertion: [TaskHeadGetter] (ownership checks before
// the payload is loaded), [TerminalTaskPruner] (retention removes uploaded
// files), [LiveTaskCreator] (exact per-owner quotas,
// [Config].MaxLiveTasksPerOwner), [InlineReader] (reads from memory:
// a task's only subscriber on a WebSocket or a hijacked SSE stream is
// written to by the appending goroutine), [EventLender] (events are
// encoded from the store's memory without a copy) and [VettedAppender]
// (the store vouches for the payloads it lends, which are then encoded
// without checking them again).
//
// # Executors
//
// A [TaskExecutor] receives new tasks with an [Emitter], through which it
// reports events. The emitter enforces the protocol: payloads are typed
// ([StartedPayload], [ProgressPayload], ...) and validated against the event
// schema, the status goes ACCEPTED → RUNNING → exactly one terminal status,
// and a suspension is recorded together with its TASK_SUSPENDED event.
// Executors that wait on suspensions implement [Resumer]; the service calls
// it after accepting an action, and [Service.Reconcile] retries hand-offs
// that failed. Executors that bound the tasks they hold implement
// [TaskAdmitter], which refuses a create before the task exists: 429
// TOO_MANY_TASKS ([ErrTooManyTasks]) for a caller at its limit, 503
// otherwise. The runner package is an in-process executor, with per-owner
// limits and fairness on by default; the temporalexec module runs tasks as
// Temporal workflows.
//
// # Several processes
//
// Several processes ("replicas") can serve one application behind a load
// balancer when their store is shared between processes (a Redis or
// PostgreSQL store): a client's create, stream, cancel or action may reach
// any of them. Streams follow a task wherever it runs, since the store's
// Watch wakes every process. A store shared between processes implements
// [ControlFeed], which pushes cancel requests and accepted actions to
// every process, and [LeaseStore]. With an executor that runs tasks in the
// process ([LocalExecutor], the runner package) the Service relays those
// control changes to the process running the task, and the runner holds a
// lease on each task it runs, so that the tasks of a process that died are
// taken over by another one: see the runner package's documentation for
// the policy and the clock assumption.
//
// # Fan-out
//
// One mechanism serves long polls, SSE, WebSocket and Go programs: a
// subscription replays from the store, then joins a per-task live window
// in which each event is read once and JSON-encoded once for all
// subscribers. Subscribers hold no queues; one that falls behind reads the
// store with its own cursor and rejoins, so nothing is lost and nobody is
// slowed down. The window learns of appends through [EventStore.Watch].
// A Go program follows a task with [Service.Subscribe]:
//
//	sub, err := svc.Subscribe(ctx, auth, taskID, lastEventID)
//	if err != nil {
//		return err // ErrTaskNotFound, ErrInvalidCursor, ErrEventsExpired, ...
//	}
//	defer sub.Close()
//	for {
//		ev, err := sub.Next(ctx) // waits for the next event
//		if err == io.EOF {
//			break // the task has ended
//		}
//		...
//	}
//
// # Observability
//
// A [MetricsSink] receives the upstream metric names (task_starts_total,
// duplicates_total, task_failures_total, cancels_total, replays_total,
// actions_total{status}, actions_accepted_total,
// actions_resume_pending_total and the streams_active{transport} gauge), each
// counted in exactly one place, and slow_consumer_disconnects_total and
// events_expired_total by transport. A sink that also implements
// [HistogramSink] gets the histograms (append-to-delivery latency, stream
// lifetime, poll wait, replay size, action latency); the prometheus module
// has one. [Config].Diagnostics are hooks into every stream and long poll
// (replay start, delivery, heartbeat, disconnect with a [DisconnectReason],
// EVENTS_EXPIRED, appended events), free when unset; the otel module turns
// them into spans, and [Config].Propagator carries the create request's
// trace to the executor ([Service.TaskContext]). [Service.Readiness]
// combines the readiness of the store, the executor and the host's own
// probes. Logs go to log/slog with the fields taskId, eventId,
// clientRequestId, userId, transport and outcome, never payload contents.
//
// # Shutdown
//
// http.Server.Shutdown does not end hijacked WebSockets or endless SSE
// streams. Register the transports' shutdown hooks with
// srv.RegisterOnShutdown, or call [Service.Shutdown], which ends every
// subscription (SSE streams close, WebSockets close with 1001) and waits for
// the transports to let go.
//
// # Maintenance
//
// Retention is on by default: terminal tasks are kept for 24h
// ([Config].TaskRetention) and action receipts for 24h
// ([Config].ReceiptRetention). It is applied by [Service.Prune], which
// [Service.RunMaintenance] runs periodically together with
// [Service.Reconcile]. The host starts it in a goroutine it owns and stops
// it with a context; without it nothing is ever deleted:
//
//	ctx, stop := context.WithCancel(context.Background())
//	done := make(chan struct{})
//	go func() { defer close(done); _ = svc.RunMaintenance(ctx, time.Minute) }()
//	// ... at shutdown:
//	stop()
//	<-done
//
// Uploaded files are deleted with their tasks when [Config].Attachments is
// set (pass the HTTP handler's upload sink) and the store implements
// [TerminalTaskPruner].
package taskbridge
