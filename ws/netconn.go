package ws

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/taskbridge-go/taskbridge/internal/bufpool"
	"github.com/taskbridge-go/taskbridge/internal/fanout"
	"github.com/taskbridge-go/taskbridge/internal/httpx"
	"github.com/taskbridge-go/taskbridge/internal/rawwrite"
	"github.com/taskbridge-go/taskbridge/internal/writewatch"
	"github.com/taskbridge-go/taskbridge/internal/wsframe"
)

// Buffer sizes of a hijacked connection. The client sends only small
// subscribe frames and control frames; everything the server sends in a
// batch goes through a pooled buffer (see netConn.writeMessages), and the
// websocket library writes only control frames. Its write buffer holds
// the close frames the handler sends and pongs to short pings whole; a
// longer control frame reaches netConn in two Writes, which it
// reassembles.
const (
	readBufSize  = 128
	writeBufSize = 64
)

// chunkSize is how many bytes of a batch collect before they are written
// anyway: the write watchdog times each write on its own, so a large batch
// to a healthy client never runs into the write timeout, and the buffer
// stays small.
const chunkSize = 64 << 10

// upgradeWriter is the ResponseWriter handed to websocket.Accept. It holds
// back the status the library writes, and its body: a refusal is answered
// by the Handler with an error envelope instead of the library's plain
// text, and the 101 goes out on the hijacked connection. Its Hijack swaps
// the server's 4 KiB connection buffers for small ones and wraps the
// connection in a [netConn], the one writer of the socket, so that a
// connection costs little memory while idle and a batch of messages goes
// out in one write.
type upgradeWriter struct {
	http.ResponseWriter
	wire   *wireConfig
	status int      // the status the library wrote, held back
	conn   *netConn // set once hijacked
}

// wireConfig is what the connections of a Handler share.
type wireConfig struct {
	// wd cuts off a connection whose socket write overruns the write
	// timeout (see package writewatch).
	wd  *writewatch.Watchdog
	log *slog.Logger // nil: contract breaks are not logged
	// deliverHook, set by tests, learns the outcome of every
	// subscription.deliver.
	deliverHook func(sent bool)
}

// WriteHeader records the status; nothing reaches the client.
func (u *upgradeWriter) WriteHeader(status int) {
	if u.status == 0 {
		u.status = status
	}
}

// Write discards the library's refusal text.
func (u *upgradeWriter) Write(p []byte) (int, error) {
	u.WriteHeader(http.StatusOK)
	return len(p), nil
}

// Hijack implements http.Hijacker: it takes over the connection (nothing
// has been written to it) and writes the 101 response with the headers the
// library and any host middleware set. It refuses an upgrade that
// negotiated an extension: compression must stay off (see [netConn]).
func (u *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if u.status != http.StatusSwitchingProtocols {
		return nil, nil, errors.New("ws: hijack without a 101 response")
	}
	if ext := u.Header().Get("Sec-WebSocket-Extensions"); ext != "" {
		return nil, nil, fmt.Errorf("ws: the websocket library negotiated %q: compression must stay off", ext)
	}
	c, brw, err := http.NewResponseController(u.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	nc := newNetConn(c, u.wire)
	// Bytes the client sent right after its handshake may already sit in
	// the server's read buffer; they are read first.
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		nc.pending = bytes.Clone(b)
	}
	head := bufpool.Bytes.Get()
	*head = httpx.AppendResponseHead(*head, http.StatusSwitchingProtocols, u.Header(), "Upgrade")
	err = nc.writeHead(*head)
	bufpool.Bytes.Put(head)
	if err != nil {
		_ = c.Close()
		nc.release()
		return nil, nil, err
	}
	u.conn = nc
	nc.br = bufio.NewReaderSize(nc, readBufSize)
	return nc, bufio.NewReadWriter(nc.br, bufio.NewWriterSize(nc, writeBufSize)), nil
}

// netConn is a hijacked connection and the one writer of its socket: every
// byte the server sends passes through it, under one mutex, and every
// socket write is timed by the handler's write watchdog, which closes the
// connection when a write overruns the write timeout. Its contract:
//
//   - The HTTP response head goes first, written by [upgradeWriter.Hijack]
//     through writeHead before the websocket library sees the connection.
//     Nothing else may be written before it.
//   - Data messages are written only by [netConn.writeMessages]: it frames a
//     batch of text messages (unfragmented, unmasked) into one pooled buffer
//     and writes whole frames, about chunkSize bytes at a time.
//   - The websocket library writes through Write (from its bufio.Writer)
//     and may write control frames only: close, ping or pong, with FIN set,
//     no RSV bit (so no compression), no mask, at most 125 bytes of payload.
//     Write parses what it is given as frames, however the library splits
//     its writes: it sends the complete frames of a Write (with the held
//     back start of the first) in one socket write, and holds back the start
//     of an incomplete frame until its last byte arrives. So each library
//     frame reaches the socket whole, at the moment its last byte is
//     written; a data batch may go out before it, even while it is
//     incomplete (its bytes are still held back), never inside it.
//   - Anything else from the library breaks the contract: a data or
//     continuation frame (the library must never send data), an RSV bit, a
//     mask, a fragmented or oversized control frame, an unknown opcode, or
//     bytes after a close frame in the same Write. Nothing of that Write is
//     sent, the connection fails (the socket is closed; the error is logged
//     and returned to every later write).
//   - Once a close frame (opcode 0x8) is sent, nothing follows it: every
//     later write, the library's or writeMessages', fails with
//     net.ErrClosed, while the close handshake goes on reading.
//   - A failed socket write may have sent part of its bytes, so it ends the
//     write side: every later write fails with its error.
//
// The test TestLibraryWritesThroughTheSeam drives the real library through
// this seam and checks the bytes; rerun it when upgrading
// github.com/coder/websocket.
type netConn struct {
	net.Conn
	wire *wireConfig

	// pending is read before the socket; only the reading goroutine
	// touches it.
	pending []byte
	// br is the library's read buffer (handed to it by Hijack).
	br *bufio.Reader

	mu sync.Mutex
	// err is why nothing may be written: errNoHead until writeHead, then
	// nil while open, net.ErrClosed once a close frame went out, or a
	// socket write's error or a broken contract.
	err  error
	tail *[]byte // the start of an incomplete library frame (pooled), or nil
	// owed is what the socket did not take of an inline delivery (see
	// deliver): the rest of a data frame already begun on the wire, so it
	// goes out before any other bytes. Pooled; nil when nothing is owed.
	owed *[]byte
	// raw writes to the socket without waiting, for deliver; nil when
	// the connection is not a socket (TLS).
	raw syscall.RawConn

	// guard times the socket writes; released by release.
	guard *writewatch.Writer
}

// Errors of the write seam.
var (
	errNoHead        = errors.New("ws: write before the handshake response")
	errCloseSent     = fmt.Errorf("ws: close frame sent: %w", net.ErrClosed)
	errLibraryFrames = errors.New("ws: the websocket library broke the write contract")
)

func newNetConn(c net.Conn, wire *wireConfig) *netConn {
	// No deadline per write: the watchdog closes the connection when a
	// write overruns. Clear one the server may have set.
	_ = c.SetWriteDeadline(time.Time{})
	return &netConn{Conn: c, wire: wire, err: errNoHead, guard: wire.wd.Add(func() { _ = c.Close() }), raw: rawwrite.Conn(c)}
}

// release stops timing the connection's writes and drops what is owed;
// call it once the connection is closed and its subscriptions are closed
// (so no inline delivery runs). Idempotent.
func (c *netConn) release() {
	c.guard.Remove()
	c.mu.Lock()
	if c.owed != nil {
		bufpool.Bytes.Put(c.owed)
		c.owed = nil
	}
	c.mu.Unlock()
}

// buffered reports that bytes the client sent wait in pending or the
// library's read buffer. Only the goroutine that reads may call it, while
// the library is not reading on another (see conn.waitReadable).
func (c *netConn) buffered() bool {
	return len(c.pending) > 0 || (c.br != nil && c.br.Buffered() > 0)
}

// Read implements net.Conn.
func (c *netConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		if len(c.pending) == 0 {
			c.pending = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// writeHead writes the HTTP response head; it must be the first write.
func (c *netConn) writeHead(head []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != errNoHead {
		return errors.New("ws: handshake response written twice")
	}
	c.err = nil
	return c.writeLocked(head)
}

// Write implements net.Conn for the websocket library: p must continue a
// stream of control frames (see netConn). It returns len(p) once the
// complete frames are sent and the rest is held back.
func (c *netConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	buf := p
	if c.tail != nil {
		*c.tail = append(*c.tail, p...)
		buf = *c.tail
	}
	n, closing, err := libraryFrames(buf)
	if err != nil {
		c.fail(err)
		return 0, err
	}
	if n > 0 {
		if err := c.writeLocked(buf[:n]); err != nil {
			return 0, err
		}
		if closing {
			c.err = errCloseSent
		}
	}
	rest := buf[n:]
	switch {
	case len(rest) == 0:
		c.dropTail()
	case c.tail != nil:
		*c.tail = (*c.tail)[:copy(*c.tail, rest)]
	default:
		c.tail = bufpool.Bytes.Get()
		*c.tail = append((*c.tail)[:0], rest...)
	}
	return len(p), nil
}

// libraryFrames returns the length of the complete frames at the start of
// b and whether the last of them is a close frame, or an error if a frame
// breaks the contract (see netConn). Only a frame's header is checked, so
// at most one incomplete header or frame is ever held back.
func libraryFrames(b []byte) (n int, closing bool, err error) {
	for n < len(b) {
		h, ok := wsframe.ParseHeader(b[n:])
		if !ok {
			return n, false, nil
		}
		if msg := checkLibraryFrame(h); msg != "" {
			return 0, false, fmt.Errorf("%w: %s (frame header %x)", errLibraryFrames, msg, b[n:n+h.Size])
		}
		end := n + h.Size + int(h.Length)
		if end > len(b) {
			return n, false, nil
		}
		n = end
		if h.Opcode == wsframe.OpClose {
			if n < len(b) {
				return 0, false, fmt.Errorf("%w: %d bytes after a close frame", errLibraryFrames, len(b)-n)
			}
			return n, true, nil
		}
	}
	return n, false, nil
}

// checkLibraryFrame returns what is wrong with a frame the library wrote,
// or "".
func checkLibraryFrame(h wsframe.Header) string {
	switch {
	case h.RSV != 0:
		return "RSV bits set (compression must stay off)"
	case !h.IsControl():
		return "a data frame (data goes through writeMessages only)"
	case h.Opcode != wsframe.OpClose && h.Opcode != wsframe.OpPing && h.Opcode != wsframe.OpPong:
		return "an unknown control opcode"
	case !h.Fin:
		return "a fragmented control frame"
	case h.Masked:
		return "a masked frame (servers do not mask)"
	case h.Length > wsframe.MaxControlPayload:
		return "a control frame over 125 bytes"
	}
	return ""
}

// dropTail releases the held-back bytes.
func (c *netConn) dropTail() {
	if c.tail != nil {
		bufpool.Bytes.Put(c.tail)
		c.tail = nil
	}
}

// fail ends the connection after a broken contract.
func (c *netConn) fail(err error) {
	c.err = err
	c.dropTail()
	_ = c.Conn.Close()
	if c.wire.log != nil {
		c.wire.log.LogAttrs(context.Background(), slog.LevelError, "taskbridge: websocket connection failed",
			slog.String("transport", "ws"), slog.Any("error", err))
	}
}

// writeLocked writes what is owed (see deliver), then p, to the socket,
// each timed by the write watchdog. A failure is final (see netConn).
func (c *netConn) writeLocked(p []byte) error {
	if c.owed != nil {
		owed := c.owed
		c.owed = nil
		err := c.writeSocket(*owed)
		bufpool.Bytes.Put(owed)
		if err != nil {
			return err
		}
	}
	if len(p) == 0 {
		return nil
	}
	return c.writeSocket(p)
}

// writeSocket writes p to the socket, timed by the write watchdog.
func (c *netConn) writeSocket(p []byte) error {
	c.guard.Begin()
	_, err := c.Conn.Write(p)
	err = c.guard.End(err)
	if err != nil {
		c.err = err
	}
	return err
}

// writeMessages sends msgs as unfragmented, unmasked text frames (RFC 6455
// section 5.2), collected in a pooled buffer and written in pieces of about
// chunkSize bytes, each with its own deadline and made of whole frames. It
// returns an error wrapping net.ErrClosed once a close frame was sent.
func (c *netConn) writeMessages(msgs [][]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(msgs) == 0 {
		// Nothing new, but what an inline delivery left is due.
		if c.owed == nil || c.err != nil {
			return nil
		}
		return c.writeLocked(nil)
	}
	if c.err != nil {
		return c.err
	}
	bp := bufpool.Bytes.Get()
	defer bufpool.Bytes.Put(bp)
	b := *bp
	for _, m := range msgs {
		b = appendText(b, m)
		if len(b) >= chunkSize {
			if err := c.writeLocked(b); err != nil {
				*bp = b
				return err
			}
			b = b[:0]
		}
	}
	*bp = b
	if len(b) == 0 {
		return nil
	}
	return c.writeLocked(b)
}

// deliver writes frames as text messages (as writeMessages does) on a
// goroutine appending to their task, with one write that does not wait
// (see subscription.deliver). handled is false when it wrote nothing and
// the caller keeps the frames: another write is under way (the
// connection's goroutine or the library's), the connection failed or
// something is owed already, or there is no socket to write to without
// waiting. flushed is false when the socket took only part: the rest is
// owed, and the connection's goroutine, which the caller wakes, writes it
// before anything else.
func (c *netConn) deliver(frames []*fanout.Frame) (handled, flushed bool) {
	if c.raw == nil || !c.mu.TryLock() {
		return false, false
	}
	defer c.mu.Unlock()
	if c.err != nil || c.owed != nil {
		return false, false
	}
	bp := bufpool.Bytes.Get()
	b := *bp
	for _, f := range frames {
		b = appendText(b, f.JSON)
	}
	*bp = rawwrite.Drain(c.raw, b)
	if len(*bp) == 0 {
		bufpool.Bytes.Put(bp)
		return true, true
	}
	c.owed = bp
	return true, false
}

// pong answers a ping the reader took off the socket itself (see
// takeControl) with a pong carrying its payload, as the library answers
// the pings it reads (RFC 6455 section 5.5.3). Nothing is sent once a close
// frame went out or the connection failed. A library frame held back
// incomplete is not on the wire yet, so the pong may go out before it.
func (c *netConn) pong(payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	bp := bufpool.Bytes.Get()
	b := wsframe.AppendHeader((*bp)[:0], wsframe.OpPong, false, len(payload))
	b = append(b, payload...)
	_ = c.writeLocked(b) // a failure is kept in c.err
	*bp = b
	bufpool.Bytes.Put(bp)
}

// appendText appends m as an unfragmented, unmasked text frame.
func appendText(b, m []byte) []byte {
	b = wsframe.AppendHeader(b, wsframe.OpText, false, len(m))
	return append(b, m...)
}
