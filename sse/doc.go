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
// "no-cache, no-transform" and X-Accel-Buffering "no", and its headers go
// out at once (with the first replayed events, if any), without waiting
// for a live event. Events strictly after the cursor follow, first replayed
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
// which is why the heartbeat is not just a comment, and why NewHandler
// refuses intervals above [MaxHeartbeatInterval].) After the task's
// terminal event the stream ends.
//
// # Resource use
//
// A stream is served inside its ServeHTTP call and written through the
// ResponseWriter, so host middleware sees its real status, byte count and
// duration, and a timeout middleware or the request's context ends it.
// Between writes it holds little but its subscription: frames come from
// the service's shared fan-out already encoded, queued frames go out in one
// batch from a pooled buffer, heartbeats come from a shared scheduler, the
// steps of a quiet stream run on short-lived goroutines so that the
// goroutine holding it keeps a small stack, and every write gets a deadline
// ([Config.WriteTimeout], through http.ResponseController), so a stalled
// client is dropped (it resumes by cursor) while the server's ReadTimeout
// and WriteTimeout do not cut healthy streams. Most of what an idle stream
// costs is net/http's connection state; [Config.Hijack] releases it by
// serving HTTP/1.x streams on the hijacked connection, for hosts that need
// the densest idle streams and accept that their middleware then sees each
// stream end as it starts. docs/BENCHMARKS.md has the numbers for both.
//
// # Shutdown
//
// Streams end when the service shuts down ([taskbridge.Service.Shutdown])
// or when [Handler.Shutdown] or [Handler.Close] is called. http.Server's
// Shutdown does neither: it waits for the streams inside ServeHTTP and
// does not know hijacked ones, so end them first. A stream blocked writing
// to a client that does not read cannot end itself before its write
// deadline; when Handler.Shutdown's context ends, it forces such streams
// to end and returns once they have finished. A host typically does, on
// SIGTERM:
//
//	_ = sseHandler.Shutdown(ctx) // ends streams, refuses new ones with 503
//	_ = srv.Shutdown(ctx)
//	_ = svc.Shutdown(ctx)
//
// or registers [Handler.Close] with http.Server.RegisterOnShutdown.
package sse
