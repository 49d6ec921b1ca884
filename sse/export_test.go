package sse

import "time"

// SetQuietAfter sets how long a stream must have sent nothing for its next
// step to run on a short-lived goroutine: 0 offloads every step. Call it
// before h serves.
func SetQuietAfter(h *Handler, d time.Duration) { h.quietAfter = d }

// SetDeliverHook makes every inline delivery of h's streams (on an
// appending goroutine) report whether the socket took all of it. Call it
// before h serves.
func SetDeliverHook(h *Handler, f func(sent bool)) { h.deliverHook = f }

// OffloadWaiting returns how many goroutines of h's offload pool wait for
// work.
func OffloadWaiting(h *Handler) int { return h.offload.Waiting() }

// SetWaitHook makes every wait of h's streams report whether the stream
// waits on its subscription alone, as a busy one does. Call it before h
// serves.
func SetWaitHook(h *Handler, f func(busy bool)) { h.waitHook = f }
