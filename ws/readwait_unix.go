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

// takeControl looks at what the client sent next, without waiting: the
// bytes buffered (in pending, or the library's read buffer: frames that
// arrived with the handshake, or together with one the library read),
// then those on the socket. When they begin with a whole ping or pong
// frame, valid as a client's (final, masked, no RSV bit, at most 125
// bytes of payload), it takes the frame out of the buffers and off the
// socket itself. Everything else stays for the websocket library to read.
// The caller makes sure nothing else reads meanwhile, and that the library
// is between messages (see conn.waitReadable). An error means the socket
// can no longer be read.
func (c *netConn) takeControl() (*socketHead, error) {
	if c.raw == nil {
		return partialHead, nil
	}
	f := new(socketHead)
	if c.br != nil {
		// At most what is buffered: Peek does not read then.
		b, _ := c.br.Peek(min(c.br.Buffered(), peekHeadSize))
		f.buffered = copy(f.buf[:], b)
	}
	f.buffered += copy(f.buf[f.buffered:], c.pending)
	if err := c.raw.Read(f.take); err != nil {
		return nil, err
	}
	if f.kind == headControl {
		c.dropBuffered(min(f.size, f.buffered))
	}
	return f, f.err
}

// dropBuffered drops the first n buffered bytes: those of the library's
// read buffer first, then pending.
func (c *netConn) dropBuffered(n int) {
	if c.br != nil {
		d, _ := c.br.Discard(min(n, c.br.Buffered()))
		n -= d
	}
	c.pending = c.pending[n:]
	if len(c.pending) == 0 {
		c.pending = nil
	}
}

// socketHead is what takeControl found at the head of the client's bytes.
type socketHead struct {
	kind headKind
	h    wsframe.Header // the frame's header, but for headNone and headPartial
	// broken is set for a whole frame whose header breaks the protocol:
	// the library fails the read once it has read the header, and its
	// close handshake would read the payload as frames; the reader
	// discards it first (see conn.readLoop).
	broken bool
	// buf holds the buffered bytes, then what the socket had, and once a
	// control frame is taken: its header, masking key, payload.
	buf      [peekHeadSize]byte
	buffered int // bytes of buf copied from the buffers
	size     int // bytes of the control frame in buf
	err      error
}

// payload returns a taken control frame's payload, unmasked by take.
func (f *socketHead) payload() []byte { return f.buf[f.h.Size:f.size] }

// take is takeControl's callback: it peeks at what the socket holds, after
// the buffered bytes, and reads the socket's part of a whole ping or pong
// frame at their head. It always returns true, so the read it runs in
// never waits.
func (f *socketHead) take(fd uintptr) bool {
	f.kind = headPartial
	n, err := recvRetry(fd, f.buf[f.buffered:], syscall.MSG_PEEK)
	switch {
	case err == syscall.EAGAIN && f.buffered == 0:
		f.kind = headNone
		return true
	case err != nil && f.buffered == 0:
		return true // EOF or an error: for the library
	case err != nil:
		n = 0 // the buffered bytes may tell; a failure is the library's to meet
	}
	size, control := f.parse(f.buffered + n)
	if !control {
		return true
	}
	// The peeked bytes are there and nothing else reads the socket: this
	// read takes exactly them.
	if want := size - f.buffered; want > 0 {
		if got, err := recvRetry(fd, f.buf[f.buffered:size], 0); err != nil || got != want {
			f.err = fmt.Errorf("ws: reading the %d bytes of a control frame that were there: got %d, %v", want, got, err)
			return true
		}
	}
	key := f.buf[f.h.Size-4 : f.h.Size]
	for i := range int(f.h.Length) {
		f.buf[f.h.Size+i] ^= key[i&3]
	}
	f.kind, f.size = headControl, size
	return true
}

// parse classifies the n bytes at the head of f.buf, setting f.kind (to
// headFrame, or headPartial for anything but a whole frame), f.h and
// f.broken. For a whole ping or pong frame valid as a client's, left for
// the caller to take, it returns the frame's size and true.
func (f *socketHead) parse(n int) (size int, control bool) {
	if n < 2 {
		return 0, false // too little to tell: for the library
	}
	h, ok := wsframe.ParseHeader(f.buf[:n])
	if !ok || h.Length > uint64(n-h.Size) {
		return 0, false // a frame not all there yet, or longer than the peek
	}
	f.h = h
	if brokenHeader(h) {
		// The library refuses it once it has read the header, and
		// leaves the payload (see socketHead.broken).
		f.kind, f.broken = headFrame, true
		return 0, false
	}
	if h.Opcode != wsframe.OpPing && h.Opcode != wsframe.OpPong {
		// A whole frame that ends its message: the library reads it
		// without waiting for more.
		if h.Fin {
			f.kind = headFrame
		}
		return 0, false
	}
	return h.Size + int(h.Length), true
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
