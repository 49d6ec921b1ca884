// Package httpx holds the small HTTP helpers shared by the transports:
// JSON responses, protocol error envelopes (also for refusals no taskbridge
// error maps to, such as 405 or a WebSocket handshake's 426), authentication
// and response heads for hijacked connections.
package httpx
