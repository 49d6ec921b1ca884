// Package bufpool pools the buffers the streaming transports (sse, ws)
// hold only while they write a batch, so that an idle stream keeps none.
package bufpool
