package ws

import "time"

// SetDeliverHook makes every inline delivery of h's connections (on an
// appending goroutine) report whether the socket took all of it. Call it
// before h serves.
func SetDeliverHook(h *Handler, f func(sent bool)) { h.wire.deliverHook = f }

// SetQuietAfter sets how long a connection must have sent nothing for its
// next round to run on a goroutine of h's offload pool: 0 offloads every
// round. Call it before the first connection.
func SetQuietAfter(h *Handler, d time.Duration) { h.quietAfter = d }

// OffloadWaiting returns how many goroutines of h's offload pool wait for
// work.
func OffloadWaiting(h *Handler) int { return h.offload.Waiting() }

// SetRoundHook makes every round of h's connections call f first, on the
// goroutine the round runs on. Call it before the first connection.
func SetRoundHook(h *Handler, f func()) { h.roundHook = f }

// SetCloseHook makes every close handshake of h's connections report how
// it ended: nil once the client answered the close frame. Call it before
// the first connection.
func SetCloseHook(h *Handler, f func(error)) { h.closeHook = f }

// SetReadHook makes every read of a client message through the library
// call f first, on the goroutine that reads. Call it before the first
// connection.
func SetReadHook(h *Handler, f func()) { h.readHook = f }
