// Package streamtest holds helpers shared by the streaming transports'
// tests and benchmarks: a service over an in-memory store with a do-nothing
// executor, a bearer-token auth resolver, an SSE frame reader, raw WebSocket
// frames for hand-made clients, idle clients in a separate process for
// memory measurements and a fan-out benchmark driver.
package streamtest
