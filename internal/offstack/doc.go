// Package offstack runs deep one-off work on a short-lived goroutine, so
// that it does not grow the stack of a goroutine that stays parked for a
// long time (an HTTP handler holding a stream).
//
// A goroutine's stack grows to fit the deepest call it makes, and while
// the goroutine is parked the GC halves the stack only if less than a
// quarter of it is in use; net/http's connection goroutine alone uses more
// than 1 KiB below a handler. A deep call made once (route matching,
// writing the response head, a store read) would otherwise double an idle
// stream's stack for its whole life. A call costs about a microsecond,
// plus growing the new goroutine's stack to the call's depth; work that
// is offloaded often (a quiet SSE stream's steps) runs on a gopool.Pool
// instead, whose goroutines keep their grown stacks for the next call.
package offstack
