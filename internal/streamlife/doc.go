// Package streamlife keeps the books of a streaming handler's lifetime, for
// the sse and ws handlers: which streams are open, when the handler is shut
// down, and how to force the streams that outlive a shutdown deadline.
//
// A handler owns one [Group]. Each request that may become a stream enters
// the group ([Group.Enter]; refused once the group is closed) and leaves it
// when the stream has finished ([Stream.Leave]). A stream served on a
// hijacked connection, which net/http no longer tracks, registers how to
// abort it ([Stream.OnAbort]), typically by closing the connection.
//
// [Group.Close] closes the group: new streams are refused and [Group.Done]
// is closed, so open streams end themselves (an SSE stream ends, a
// WebSocket closes with 1001). [Group.Shutdown] closes it and waits until
// every stream has left; when its context ends first it aborts the
// abortable streams and waits for them, so that once it returns no
// goroutine of a hijacked stream is left.
package streamlife
