// Package writewatch cuts off socket writes that take too long, for the
// sse and ws handlers, without a deadline update per write.
//
// A stream's socket writes used to each move the connection's write
// deadline (a runtime timer update per write, and through
// http.ResponseController a lock and an interface call too). Instead, a
// [Watchdog] per handler watches every stream's write in progress: a
// [Writer] records when its current write began ([Writer.Begin], an atomic
// store) and that it ended ([Writer.End]); one goroutine per Watchdog,
// running while it has writers, checks them every timeout/8 and cuts off
// (with the Writer's cut function: close the connection, or move its
// deadline into the past) a write that began at least 7/8 of the timeout
// ago. So a write that is stuck is cut off within the timeout, and a write
// that completes within 7/8 of it is never cut: a client that reads slowly
// but keeps up stays connected, one that stops reading does not.
package writewatch
