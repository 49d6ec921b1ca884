// Package ws serves task events over WebSocket (github.com/coder/websocket),
// wire-compatible with the TaskBridge v1 protocol and its Android SDK.
//
// [NewHandler] returns an http.Handler for the protocol's WebSocket route,
// [DefaultPath]. The Android SDK builds the WebSocket URL from the base
// URL's scheme and host only, dropping any path prefix, so mount the handler
// at /api/v1/tasks/ws on the host's root even when the HTTP API lives under a
// prefix (see the chi example).
//
// # Handshake
//
// The handshake is checked before the upgrade, and every answer but the 101
// is a protocol error envelope {code, message, details, timestamp}, in this
// order:
//
//   - 405 INVALID_REQUEST with Allow: GET for any other method (HEAD and
//     OPTIONS included);
//   - 426 INVALID_REQUEST, with Upgrade: websocket and
//     Sec-WebSocket-Version: 13, for a request that is not a WebSocket
//     upgrade (or not HTTP/1.1) or asks for another protocol version, and
//     400 INVALID_REQUEST for a missing or malformed Sec-WebSocket-Key;
//   - 403 [CodeOriginNotAllowed] for a browser origin other than the
//     request's own that [Config.OriginPatterns] does not allow: another
//     host, or an http page on a socket that came over TLS (see
//     [Config.TrustForwardedProto] behind a TLS-terminating proxy);
//     requests without an Origin header, native clients, are accepted;
//   - 401 AUTHENTICATION_ERROR without valid credentials, so the client can
//     refresh its token (a close after the upgrade would make the SDK give
//     up);
//   - 503 SERVICE_UNAVAILABLE during shutdown;
//   - 500 INTERNAL_ERROR when the connection cannot be taken over (host
//     middleware whose ResponseWriter hides http.Hijacker).
//
// # Frames
//
// The client's first message must be
//
//	{"action":"subscribe","taskId":"…","lastEventId":"…"}
//
// (lastEventId optional or null), within [Config.SubscribeTimeout]. The
// server answers
//
//	{"type":"SUBSCRIPTION_CONFIRMED","taskId":"…","replayStartedAfterEventId":"…"|null,"live":true}
//
// then sends every event strictly after the cursor, one text message each,
// first replayed from the store, then live, and
//
//	{"type":"HEARTBEAT","taskId":"…","live":true}
//
// when the subscription has been idle for [Config.HeartbeatInterval] (at
// most [MaxHeartbeatInterval], so that the SDK's 60 s liveness timer does
// not fire while a task is quiet; [Config.DisableHeartbeats] turns them
// off for other clients). After the task's terminal event it closes the
// socket with 1000, sending nothing in between.
//
// Further subscribe frames on the same socket subscribe to more tasks (up to
// [Config.MaxSubscriptions]); frames are unchanged and carry their taskId.
// A subscribe frame for a task already subscribed restarts that task's
// stream from the new cursor, with a new confirmation. Frames are handled
// in order however many arrive at once: the server reads at most
// MaxSubscriptions frames ahead of those it has handled. The socket closes
// with 1000 once every subscribed task has delivered its terminal event.
//
// Close codes: 1000 all subscribed tasks finished; 1001 the server is
// shutting down (reconnect, possibly elsewhere); 1008 a frame that is not a
// valid subscribe frame (bad JSON, another action, a binary message), no
// subscribe frame within [Config.SubscribeTimeout], an unknown task or one
// owned by someone else (no confirmation is sent, so task ids cannot be
// probed), a malformed or out-of-range cursor, too many subscriptions; 1009
// a message larger than [Config.ReadLimit]; 1002 a frame that breaks RFC
// 6455 (unmasked, an unknown opcode, a fragmented control frame); 4410
// ([CloseEventsExpired]) the events after the cursor were removed by
// retention; 1011 an internal error. A failing subscription closes the
// whole socket.
//
// Every close is a close handshake: the server sends its close frame, then
// reads and discards what the client still sends until the client's close
// frame arrives (5 s at most; the client then sees the TCP connection end
// with a FIN). Closing a socket with unread bytes in its receive buffer
// would send a TCP reset instead, which can destroy the close frame before
// the client reads it. A socket ends without a close frame of the server's
// only when the client has gone away, has closed first (its close frame is
// echoed), or a write has failed or timed out.
//
// # Resource use
//
// ServeHTTP upgrades the connection and returns: the connection is then
// served by two goroutines owned by the Handler, one that owns the
// subscriptions and all data writes and parks on a single channel shared by
// the connection's subscriptions, and one that keeps reading so that pings
// are answered and a departed client is noticed at once. net/http's
// per-connection buffers are not kept: the connection gets small fixed
// buffers instead, and the messages of one batch are framed straight into a
// pooled buffer and sent with one write (in 64 KiB pieces), so a subscriber
// that is behind catches up with few syscalls. Every write to the socket has a
// deadline ([Config.WriteTimeout]); a client that does not read is dropped
// and resumes by cursor. Frames come from the service's shared fan-out,
// encoded once for all subscribers, and heartbeats from its shared
// scheduler. An idle subscribed connection costs about 14 KiB (see
// BenchmarkIdleConnections).
//
// # One writer per socket
//
// Data frames bypass github.com/coder/websocket's per-message write path,
// which cost most of the server's CPU in fan-out. So that the library's
// frames and the handler's cannot interleave, the hijacked connection has
// one write seam with a stated contract (netConn in netconn.go): the
// handler writes the 101 response head and the data frames, the library
// only whole control frames (pings, pongs, close), which the seam parses
// out of whatever writes the library makes and sends whole, between data
// batches; nothing follows a close frame, compression is never negotiated,
// and anything else the library writes fails the connection instead of
// reaching the client. Tests drive the real library through the seam and
// check every byte on the socket; rerun them when upgrading it (see
// go.mod).
//
// Because the request's handler returns at the upgrade, host middleware
// sees the request end there, and request-scoped context values are not
// available to the stream. Half-open connections (a peer that vanished
// without closing) are detected by TCP keep-alive, which net/http enables.
//
// # Shutdown
//
// Hijacked connections are not tracked by http.Server, so its Shutdown
// neither closes nor waits for them. [Handler.Shutdown] closes every
// connection with 1001, also those still waiting for their first subscribe
// frame, and waits for its goroutines; when its context ends first it drops
// the remaining connections and returns once their goroutines have exited,
// so none is left behind. The service's own Shutdown has the same effect on
// subscribed sockets. A host typically does, on SIGTERM:
//
//	_ = wsHandler.Shutdown(ctx) // 1001 to every client, refuse new ones
//	_ = srv.Shutdown(ctx)
//	_ = svc.Shutdown(ctx)
package ws
