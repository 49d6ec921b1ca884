// Package wire holds the encoding every transport writes: the event
// envelope's compact JSON, made once per event and shared by polling, SSE,
// WebSocket and Go subscribers.
package wire
