// Package rawwrite writes to a socket without waiting: the one write an
// inline delivery makes on the appending goroutine (see packages sse and
// ws), which must never block on a slow client.
package rawwrite
