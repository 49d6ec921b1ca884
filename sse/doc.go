// Package sse serves a task's events as Server-Sent Events, wire-compatible
// with the TaskBridge v1 protocol and its Android SDK. [NewHandler] returns
// an http.Handler for GET /api/v1/tasks/{taskId}/events/stream that checks
// the request before it commits to a stream (so every refusal is a protocol
// error envelope), then writes each event after the client's cursor
// (Last-Event-ID, or the lastEventId query parameter for browsers) as
// "id:"/"data:" frames, replayed and then live, with heartbeat data frames
// while the task is quiet, and ends after the terminal event. Streams stay
// inside ServeHTTP so host middleware sees them; [Config].Hijack trades
// that for the densest idle streams. [Handler.Shutdown] ends them.
//
// The wire format, heartbeats, resource use and shutdown order are
// described in docs/TRANSPORTS.md of the repository; docs/ARCHITECTURE.md
// shows where the package fits.
package sse
