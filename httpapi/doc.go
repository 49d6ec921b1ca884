// Package httpapi serves the TaskBridge v1 HTTP API for a
// [taskbridge.Service] as one mountable http.Handler: create (JSON or
// streamed multipart uploads), long poll, cancel, actions, plus the
// additive task snapshot, task list, health and readiness routes, with the
// SSE and WebSocket handlers plugged in at their protocol paths
// ([Config].Stream, [Config].WebSocket). Every answer but a success is the
// protocol's error envelope; every path is configurable ([Paths]); it works
// under chi's Mount and behind http.StripPrefix. Request bodies get read
// deadlines and size limits, state-changing routes refuse cross-site
// browser requests, and [Handler.Close] ends slow bodies at shutdown.
// [Handler.OpenAPIDocument] describes exactly the routes the handler
// serves (the v1 document merged with the library's additions), and
// [Config].ServeOpenAPI serves it at /openapi.json.
//
// The routes, parameters, error answers, upload rules and timeouts are
// described in docs/TRANSPORTS.md of the repository; docs/ARCHITECTURE.md
// shows where the package fits.
package httpapi
