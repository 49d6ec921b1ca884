// Package sse serves a task's events as Server-Sent Events, wire-compatible
// with the TaskBridge v1 protocol and its Android SDK.
//
// [NewHandler] returns an http.Handler for
// GET /api/v1/tasks/{taskId}/events/stream (the path is the host's choice:
// see [Config.TaskID]). Before anything is committed to the stream it
// authenticates the request, checks that the caller may see the task and
// validates the cursor, so errors are ordinary protocol error envelopes:
// 401 AUTHENTICATION_ERROR, 404 TASK_NOT_FOUND (also for other users' tasks),
// 400 INVALID_REQUEST for a malformed cursor, 410 EVENTS_EXPIRED when the
// events after the cursor were removed by retention, 503
// SERVICE_UNAVAILABLE during shutdown, and 405 INVALID_REQUEST with
// Allow: GET for any method but GET (HEAD and OPTIONS included).
//
// # Wire format
//
// The response has Content-Type text/event-stream, Cache-Control
// "no-cache, no-transform" and X-Accel-Buffering "no", and its headers are
// flushed at once. Events strictly after the cursor follow, first replayed
// from the store and then live. The cursor is the Last-Event-ID header or,
// when that is absent, the lastEventId query parameter (a browser's first
// EventSource connection cannot set headers). Each event is
//
//	id: <eventId>
//	data: <the event's compact JSON>
//
// followed by a blank line. While the stream is idle a heartbeat data frame
// is sent every [Config.HeartbeatInterval]:
//
//	data: {"type":"HEARTBEAT","taskId":"…","eventId":"hb-…","createdAt":"…","payload":{"live":true}}
//
// It has no id line, so it never moves the client's cursor, and it is never
// stored. (The Android SDK's liveness timer is reset only by data frames,
// which is why the heartbeat is not just a comment.) After the task's
// terminal event the stream ends.
//
// # Resource use
//
// An HTTP/1.x stream, once its checks have passed, is served on the
// hijacked connection: ServeHTTP writes nothing itself, hands the
// connection to two goroutines owned by the Handler (one writes, one reads
// so that a departed client is noticed at once) and returns. net/http's
// per-connection buffers, request state and goroutine are released, so an
// idle stream costs about 9 KiB instead of about 27 KiB (see
// BenchmarkIdleStreams). The response carries the headers set on the
// ResponseWriter (by host middleware, for example) and is delimited by
// closing the connection. HTTP/2 streams, ResponseWriters that cannot be
// hijacked and [Config.DisableHijack] keep the stream inside ServeHTTP,
// written through the ResponseWriter.
//
// Either way a stream keeps nothing between writes but its subscription:
// frames come from the service's shared fan-out already encoded, queued
// frames are written in one batch (one write and one flush per 64 KiB) from a
// pooled buffer, and heartbeats come from the service's shared scheduler,
// not a per-stream ticker. Every write has a deadline
// ([Config.WriteTimeout]), set on the connection or through
// http.ResponseController, so a dead or slow client is disconnected (it
// resumes by cursor) and the host's http.Server ReadTimeout and
// WriteTimeout do not cut healthy long streams.
//
// # Shutdown
//
// Streams end when the service shuts down ([taskbridge.Service.Shutdown])
// or when [Handler.Shutdown] is called. Hijacked streams are not tracked by
// http.Server, so its Shutdown neither ends nor waits for them, and streams
// inside ServeHTTP would keep it waiting: end them first. A stream blocked
// writing to a client that does not read cannot end itself before its
// write deadline; when Handler.Shutdown's context ends, it closes the
// connections of such hijacked streams and returns once their goroutines
// have exited. A host typically does, on SIGTERM:
//
//	_ = sseHandler.Shutdown(ctx) // ends streams, refuses new ones with 503
//	_ = srv.Shutdown(ctx)
//	_ = svc.Shutdown(ctx)
//
// or registers [Handler.Close] with http.Server.RegisterOnShutdown.
package sse
