package ws

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/taskbridge-go/taskbridge/internal/bufpool"
	"github.com/taskbridge-go/taskbridge/internal/httpx"
	"github.com/taskbridge-go/taskbridge/internal/wsframe"
)

// Buffer sizes of a hijacked connection. The client sends only small
// subscribe frames and control frames; everything the server sends in a
// batch goes through a pooled buffer (see netConn.writeMessages).
const (
	readBufSize  = 128
	writeBufSize = 128
)

// The library's write buffer must hold a whole control frame (2 + 125
// bytes unmasked), so that each reaches netConn in one Write: this fails
// to compile otherwise.
var _ [writeBufSize - (2 + 125)]struct{}

// chunkSize is how many bytes of a batch collect before they are written
// anyway: each write gets its own deadline, so a large batch to a healthy
// client never runs into the write timeout, and the buffer stays small.
const chunkSize = 64 << 10

// upgradeWriter is the ResponseWriter handed to websocket.Accept. It holds
// back the status the library writes, and its body: a refusal is answered
// by the Handler with an error envelope instead of the library's plain
// text, and the 101 goes out on the hijacked connection. Its Hijack swaps
// the server's 4 KiB connection buffers for small ones and wraps the
// connection in a [netConn], so that a connection costs little memory while
// idle and a batch of messages goes out in one write.
type upgradeWriter struct {
	http.ResponseWriter
	writeTimeout time.Duration
	status       int      // the status the library wrote, held back
	conn         *netConn // set once hijacked
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
// library and any host middleware set.
func (u *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if u.status != http.StatusSwitchingProtocols {
		return nil, nil, errors.New("ws: hijack without a 101 response")
	}
	c, brw, err := http.NewResponseController(u.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	nc := &netConn{Conn: c, writeTimeout: u.writeTimeout}
	// Bytes the client sent right after its handshake may already sit in
	// the server's read buffer; they are read first.
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		nc.pending = bytes.Clone(b)
	}
	head := bufpool.Bytes.Get()
	*head = httpx.AppendResponseHead(*head, http.StatusSwitchingProtocols, u.Header(), "Upgrade")
	_, err = nc.Write(*head)
	bufpool.Bytes.Put(head)
	if err != nil {
		_ = c.Close()
		return nil, nil, err
	}
	u.conn = nc
	return nc, bufio.NewReadWriter(bufio.NewReaderSize(nc, readBufSize), bufio.NewWriterSize(nc, writeBufSize)), nil
}

// netConn is a hijacked connection that gives every write a deadline and
// writes the server's data messages itself: [netConn.writeMessages] frames
// a batch of text messages into one pooled buffer and sends it with one
// write (per 64 KiB), where the websocket library would take its write lock,
// and flush, once per message.
//
// The library still writes every control frame (pongs, close frames) and
// the handshake. All writes are serialised by mu, so frames from both
// sources stay whole and in order: a control frame is at most 127 bytes
// unmasked, which the library's write buffer (writeBufSize) holds whole
// and flushes in one Write. Data messages are never sent through the
// library, so nothing it writes spans two Writes. Once the library has
// written a close frame, writeMessages refuses, as the library would.
type netConn struct {
	net.Conn
	writeTimeout time.Duration

	// pending is read before the socket; only the reading goroutine
	// touches it.
	pending []byte

	mu        sync.Mutex
	closeSent bool // a close frame went out: no data may follow
}

// opCloseFin is the first byte of an unfragmented close frame without
// extensions, as the library writes it.
const opCloseFin = 0x88

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

// Write implements net.Conn. The library's frames arrive whole (see
// netConn), so a Write that starts with a close frame's first byte is one.
func (c *netConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(p) > 0 && p[0] == opCloseFin {
		c.closeSent = true
	}
	return c.writeLocked(p)
}

func (c *netConn) writeLocked(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.writeTimeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// writeMessages sends msgs as unfragmented, unmasked text frames (RFC 6455
// section 5.2), collected in a pooled buffer and written in pieces of about
// chunkSize bytes, each with its own deadline. It returns net.ErrClosed
// once a close frame was written.
func (c *netConn) writeMessages(msgs [][]byte) error {
	if len(msgs) == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent {
		return net.ErrClosed
	}
	bp := bufpool.Bytes.Get()
	defer bufpool.Bytes.Put(bp)
	b := *bp
	for _, m := range msgs {
		b = wsframe.AppendHeader(b, wsframe.OpText, false, len(m))
		b = append(b, m...)
		if len(b) >= chunkSize {
			if _, err := c.writeLocked(b); err != nil {
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
	_, err := c.writeLocked(b)
	return err
}
