// Package gopool runs functions on goroutines that, once done, wait for the
// next function instead of exiting.
//
// A new goroutine's stack starts small, and the runtime grows it by
// copying, frame by frame, to the depth of what it runs. For the library's
// short, deep, frequent jobs (a topic's fetch: a store read, an encoding,
// inline writes; a quiet stream's step: a read, an encoding, a write
// through net/http) that copying cost as much as the job or more, every
// time. A waiting goroutine's stack has grown already.
//
// A Pool keeps at most MaxIdle goroutines waiting; a job that finds none
// starts a new one, so jobs never queue behind each other (a job that
// blocks, on a slow store or client, delays no other). Its owner releases
// the waiting goroutines when it has no work for them (the fan-out when
// its last subscription closes, an SSE handler when its last stream
// leaves), so that none outlives the work.
package gopool
