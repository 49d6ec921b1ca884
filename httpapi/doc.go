// Package httpapi serves the TaskBridge v1 HTTP API (create, poll, cancel,
// actions, task snapshot and list, health and readiness) for a
// [taskbridge.Service], as one mountable http.Handler.
//
// # Routes
//
// With the default [Paths], relative to where the handler is mounted:
//
//	POST /api/v1/tasks                         create (JSON or multipart/form-data): 201, or 200 when deduplicated
//	GET  /api/v1/tasks                         the caller's tasks, newest first (limit, cursor, status)
//	GET  /api/v1/tasks/{taskId}                task snapshot
//	GET  /api/v1/tasks/{taskId}/events         poll (afterEventId, waitTimeoutMs, maxEvents)
//	GET  /api/v1/tasks/{taskId}/events/stream  Config.Stream (SSE), if set
//	POST /api/v1/tasks/{taskId}/cancel         202 CANCELLATION_REQUESTED or ALREADY_TERMINAL
//	POST /api/v1/tasks/{taskId}/actions        202 ACCEPTED / REJECTED_*, 200 DEDUPLICATED
//	GET  /api/v1/tasks/ws                      Config.WebSocket, if set
//	GET  /health                               {"status":"ok"}, unauthenticated
//	GET  /ready                                readiness report, 200 or 503, unauthenticated
//
// A literal segment wins over {taskId}, so /api/v1/tasks/ws reaches the
// WebSocket handler, not the snapshot route. Every path is configurable
// ([Paths]).
//
// Poll parameters: afterEventId (absent or empty: from the start),
// waitTimeoutMs 0..60000 (default 25000, as in the OpenAPI document; the
// wait ends early when the client goes away or the service shuts down) and
// maxEvents 1..500 (default 100). A long poll extends its response's write
// deadline to cover the wait, so a host's http.Server.WriteTimeout shorter
// than the wait does not cut it off. The list route takes limit 1..100
// (default 20), the opaque cursor of the previous page and status filters,
// repeated (status=RUNNING&status=FAILED) and/or comma-separated. The
// cancel body is optional: none, empty, null, {} or {"reason": ...}.
//
// # Mounting
//
// The handler routes with a chi router of its own and routes on the path
// relative to its mount point. Mounted with chi's Mount it is a chi
// sub-router: it routes on the path chi left for it, and the host's
// middleware finds the full route pattern in the routing context after the
// request (chi.RouteContext(ctx).RoutePattern() is
// "/tb/api/v1/tasks/{taskId}/events"). Elsewhere it routes on r.URL.Path,
// so use http.StripPrefix with an http.ServeMux:
//
//	r.Mount("/", h)                                  // chi, at the root
//	r.Mount("/tb", h)                                // chi, under a prefix
//	mux.Handle("/", h)                               // net/http
//	mux.Handle("/tb/", http.StripPrefix("/tb", h))   // net/http, under a prefix
//
// Paths are matched in their escaped form and {taskId} is decoded
// afterwards: /api/v1/tasks/%61bc/events is task "abc", and
// /api/v1/tasks/a%2Fb/events is task "a/b" (no valid id, so 404
// TASK_NOT_FOUND), never the segments "a" and "b".
//
// The Android SDK builds its WebSocket URL from the base URL's scheme and
// host only, dropping any path prefix: when the API lives under a prefix,
// mount the WebSocket handler at the root as well
// (mux.Handle("/api/v1/tasks/ws", wsHandler)).
//
// # Errors
//
// Every error is the protocol envelope {code, message, details, timestamp}:
// malformed JSON (syntax, trailing data, not an object) is 400
// INVALID_REQUEST, and so is a multipart input or metadata part that is not
// valid JSON; well-formed requests with invalid fields or query
// parameters are 422 REQUEST_VALIDATION_ERROR with details.errors naming
// every bad field; missing credentials are 401; unknown tasks and other
// users' tasks are both 404 TASK_NOT_FOUND; a create Content-Type other
// than JSON or multipart/form-data is 400 INVALID_REQUEST; a JSON body over
// Config.MaxJSONBytes is 413 INVALID_REQUEST; unknown routes are 404 and
// wrong methods 405 (with Allow), both INVALID_REQUEST. A create refused
// because the caller has too many tasks is 429 TOO_MANY_TASKS with a
// Retry-After header (see [taskbridge.TaskAdmitter]). Unexpected failures
// are 500 INTERNAL_ERROR without internals. Client mistakes never get a 5xx,
// since clients retry those; a request whose client went away, or that
// meets a shutting-down service, gets 503 SERVICE_UNAVAILABLE. A create
// beyond taskbridge.Config.MaxLiveTasksPerOwner is 429 TOO_MANY_TASKS
// (clients retry it with backoff). Optional
// members given as JSON null count as absent. A JSON body declared with a
// non-JSON Content-Type is 400; a missing Content-Type is accepted on the
// cancel and action routes (see below).
//
// # Cross-site requests
//
// On hosts that authenticate browsers with cookies, a page on another site
// could make the browser send create, cancel and action requests with the
// user's cookies. Such a page can send only "simple" requests without a
// CORS preflight: no Content-Type, or text/plain, a form or
// multipart/form-data. So the state-changing routes refuse every request
// without a JSON Content-Type that the browser marks as cross-origin
// (Sec-Fetch-Site other than same-origin or none, or else an Origin other
// than the request's host) with 403 INVALID_REQUEST, through
// Config.CrossOrigin (an http.CrossOriginProtection). That covers a cancel
// with no body, a JSON body sent without a type, and a multipart create: a
// web front end on another origin that posts multipart creates must be
// added with AddTrustedOrigin. Requests with a JSON Content-Type cross
// origins only after a preflight, which the host's CORS policy answers.
// Clients that are not browsers (the Android SDK, curl, servers) send
// neither header and are not affected. Hosts that authenticate with bearer
// tokens are not exposed to cross-site request forgery in the first place.
//
// # Uploads
//
// Multipart creates are streamed with a multipart.Reader, never parsed into
// memory as a whole: text parts clientRequestId and taskType, optional
// JSON-object parts input and metadata, and files in the fields of
// Config.FileFields: "attachments" (the Android SDK's default) and
// "attachment" unless configured. A file in any other field is 400
// UPLOAD_VALIDATION_ERROR naming the accepted fields, never silently
// dropped; other text parts are ignored. Limits ([UploadLimits]) are enforced
// while reading: a file or body over its size limit is 413
// UPLOAD_VALIDATION_ERROR; too many files, a content type not allowed or a
// refusal by Config.UploadPolicy is 400 UPLOAD_VALIDATION_ERROR. File bytes
// go to Config.Sink ([TempDirSink] by default) with their size and SHA-256
// computed on the way; file names are reduced to their last path segment
// ("upload.bin" when none is left). Files of a request that fails or is
// deduplicated are discarded; files of a created task belong to the executor
// from then on (Attachment.Ref locates them), which should delete them when
// done; pass the sink as taskbridge.Config.Attachments as well, and
// retention deletes the files of the tasks it deletes. An upload refused mid-body gets its error response at once; net/http
// then reads up to 256 KiB more of the body, or closes the connection.
//
// # Slow bodies and shutdown
//
// Request bodies must arrive in time: Config.BodyReadTimeout (30s) for
// JSON creates, cancels and actions, UploadLimits.ReadTimeout (5m) for
// multipart creates, counted from when the request reaches the handler; a
// body still incomplete then gets 408 and the request's partial files are
// discarded. The deadline is set on the one request through
// http.ResponseController and cleared once its body is read, so long
// polls, SSE streams and WebSockets on the same server are not affected.
// A request answered before its body was read (a refusal, a limit) gives
// net/http one more second to drain the rest. [Handler.Close], registered
// with http.Server.RegisterOnShutdown, ends the bodies still arriving when
// the server shuts down (503), so a shutdown does not wait for slow
// uploads. Files are discarded on every way out of a request that creates
// no task.
//
// Give the http.Server a ReadHeaderTimeout (headers are read before any
// handler runs). ReadTimeout and WriteTimeout are not needed: the handlers
// bound bodies and writes themselves, per request. A ReadTimeout, if set,
// covers headers and body together, so it must allow the slowest upload
// accepted.
//
// # Authentication
//
// Config.Auth is required and resolves every request except /health and
// /ready. Requests passed to Config.Stream and Config.WebSocket are not
// authenticated here: those handlers do it themselves.
package httpapi
