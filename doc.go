// Package taskbridge streams the events of long-running tasks to mobile,
// browser and service clients over polling, SSE and WebSocket, replay-safe
// and wire-compatible with the TaskBridge v1 protocol.
package taskbridge
