// Package ws serves task events over WebSocket (github.com/coder/websocket),
// wire-compatible with the TaskBridge v1 protocol and its Android SDK.
// [NewHandler] returns an http.Handler for the protocol's route,
// [DefaultPath] (mount it at the host's root: the SDK drops any path
// prefix). It checks the handshake, origin and credentials before the
// upgrade (refusals are protocol error envelopes), then serves subscribe
// frames: each subscription gets a confirmation, the events after its
// cursor (replayed, then live) and heartbeats, on one socket for up to
// [Config].MaxSubscriptions tasks. Every end of a socket is a close
// handshake with a code (1000, 1001, 1002, 1008, 1009, 1011,
// [CloseEventsExpired]). All bytes reach the socket through one write seam
// with a tested contract, so the library's control frames, the handler's
// batched data frames and the frames an appending goroutine writes inline
// (see [Config].DisableInlineWrites) never interleave. [Handler.Shutdown]
// closes every socket with 1001.
//
// The handshake answers, frames, close codes, resource use, the write seam
// and shutdown are described in docs/TRANSPORTS.md of the repository;
// docs/ARCHITECTURE.md shows where the package fits.
package ws
