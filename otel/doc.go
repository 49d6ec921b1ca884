// Package otel traces taskbridge with OpenTelemetry. It lives in its own
// module, so only hosts that use it depend on OpenTelemetry.
//
// One [Tracing] plugs in at three places:
//
//	tr := otel.New(otel.Config{TracerProvider: tp}) // W3C trace context by default
//	svc, err := taskbridge.New(taskbridge.Config{
//		Store: store, Executor: exec,
//		Diagnostics: tr.Diagnostics(), // stream spans, event spans
//		Propagator:  tr.Propagator(),  // the create request's trace reaches the executor
//	})
//	api, err := httpapi.New(svc, httpapi.Config{...})
//	srv := &http.Server{Handler: tr.Middleware(api)} // create, poll, cancel, action spans
//
// The spans:
//
//	taskbridge.create, taskbridge.poll,       server spans of the commands (Middleware),
//	taskbridge.cancel, taskbridge.action      child of the request's traceparent
//	taskbridge.stream                         an SSE stream, a WebSocket subscription or a
//	                                          Service.Subscribe, from its replay start to its
//	                                          end: cursor, replayed and delivered counts,
//	                                          heartbeats, end reason
//	taskbridge.event <TYPE>                   each event an executor appends, child of the
//	                                          executor's context
//
// The create request's trace travels with the task: the service keeps it
// in the task's Metadata (never sent to clients) through the Propagator,
// the runner's handlers run in a context that carries it, riverexec's
// workers extract it (Service.TaskContext) and temporalexec's activities
// too (give temporalexec.WorkerConfig.Propagator the same propagator). So
// one trace shows the request, the task's events and the work around them
// that the handler traces itself.
package otel
