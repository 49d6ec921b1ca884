package ws

// SetDeliverHook makes every inline delivery of h's connections (on an
// appending goroutine) report whether the socket took all of it. Call it
// before h serves.
func SetDeliverHook(h *Handler, f func(sent bool)) { h.wire.deliverHook = f }
