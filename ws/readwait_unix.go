//go:build unix

package ws

import (
	"fmt"
	"syscall"

	"github.com/taskbridge-go/taskbridge/internal/wsframe"
)

// waitReadable waits until the socket has bytes to read (or has failed,
// or reached EOF) in a shallow frame, so that the reading goroutine of an
// idle connection keeps a small stack; without a raw socket (TLS) it
// returns at once. An error is ignored: the read that follows reports it.
func (c *netConn) waitReadable() {
	if c.raw != nil {
		_ = c.raw.Read(peekReadable)
	}
}

// peekReadable is waitReadable's callback: true once the socket has bytes
// to read, or has failed or reached EOF.
func peekReadable(fd uintptr) bool {
	var b [1]byte
	_, err := recvRetry(fd, b[:], syscall.MSG_PEEK)
	return err != syscall.EAGAIN
}

// peekHeadSize is how many bytes takeControl looks at: a subscribe frame
// fits.
const peekHeadSize = 1024

// takeControl looks at what the client sent next, without waiting, and
// reads it off the socket itself when it is a whole ping or pong frame,
// valid as a client's (final, masked, no RSV bit, at most 125 bytes of
// payload). Everything else stays for the websocket library to read. The
// caller makes sure nothing else reads the socket meanwhile and that the
// library has buffered none of the client's bytes (see conn.waitReadable).
// An error means the socket can no longer be read.
func (c *netConn) takeControl() (*socketHead, error) {
	if c.raw == nil {
		return &socketHead{kind: headPartial}, nil
	}
	f := new(socketHead)
	if err := c.raw.Read(f.take); err != nil {
		return nil, err
	}
	return f, f.err
}

// socketHead is what takeControl found at the head of the socket.
type socketHead struct {
	kind headKind
	h    wsframe.Header // the frame's header, but for headNone and headPartial
	// broken is set for a whole frame whose header breaks the protocol:
	// the library fails the read once it has read the header, and its
	// close handshake would read the payload as frames; the reader
	// discards it first (see conn.readLoop).
	broken bool
	buf    [peekHeadSize]byte // a control frame taken: header, masking key, payload
	size   int                // bytes of the control frame in buf
	err    error
}

// payload returns a taken control frame's payload, unmasked by take.
func (f *socketHead) payload() []byte { return f.buf[f.h.Size:f.size] }

// take is takeControl's callback: it peeks at what the socket holds and
// reads it only when it begins with a whole ping or pong frame. It always
// returns true, so the read it runs in never waits.
func (f *socketHead) take(fd uintptr) bool {
	f.kind = headPartial
	n, err := recvRetry(fd, f.buf[:], syscall.MSG_PEEK)
	switch {
	case err == syscall.EAGAIN:
		f.kind = headNone
		return true
	case err != nil || n < 2:
		return true // EOF, an error, or too little to tell: for the library
	}
	h, ok := wsframe.ParseHeader(f.buf[:n])
	if !ok || h.Length > uint64(n-h.Size) {
		return true // a frame not all there yet, or longer than the peek
	}
	size := h.Size + int(h.Length)
	f.h = h
	if brokenHeader(h) {
		// The library refuses it once it has read the header, and
		// leaves the payload (see socketHead.broken).
		f.kind, f.broken = headFrame, true
		return true
	}
	if h.Opcode != wsframe.OpPing && h.Opcode != wsframe.OpPong {
		// A whole frame that ends its message: the library reads it
		// without waiting for more.
		if h.Fin {
			f.kind = headFrame
		}
		return true
	}
	// The peeked bytes are there and nothing else reads the socket: this
	// read takes exactly them.
	if got, err := recvRetry(fd, f.buf[:size], 0); err != nil || got != size {
		f.err = fmt.Errorf("ws: reading a %d-byte control frame that was there: got %d bytes, %v", size, got, err)
		return true
	}
	key := f.buf[h.Size-4 : h.Size]
	for i := range int(h.Length) {
		f.buf[h.Size+i] ^= key[i&3]
	}
	f.kind, f.size = headControl, size
	return true
}

// brokenHeader reports a client frame whose header alone breaks the
// protocol: an RSV bit (no extension is negotiated), no mask, a reserved
// opcode, a control frame that is fragmented or carries more than 125
// bytes.
func brokenHeader(h wsframe.Header) bool {
	switch h.Opcode {
	case wsframe.OpContinuation, wsframe.OpText, wsframe.OpBinary:
	case wsframe.OpClose, wsframe.OpPing, wsframe.OpPong:
		if !h.Fin || h.Length > wsframe.MaxControlPayload {
			return true
		}
	default:
		return true
	}
	return h.RSV != 0 || !h.Masked
}

// recvRetry receives into b with flags, retrying on EINTR.
func recvRetry(fd uintptr, b []byte, flags int) (int, error) {
	for {
		n, _, err := syscall.Recvfrom(int(fd), b, flags)
		if err != syscall.EINTR {
			return n, err
		}
	}
}
