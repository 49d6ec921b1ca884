package ws

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/taskbridge-go/taskbridge/internal/httpx"
)

// Buffer sizes of a hijacked connection. The client sends only small
// subscribe frames and control frames; everything the server sends in a
// batch goes through the corking buffer below, which is pooled.
const (
	readBufSize  = 128
	writeBufSize = 128
)

const (
	// chunkSize is how many corked bytes collect before they are written
	// anyway: each write gets its own deadline, so a large batch to a
	// healthy client never runs into the write timeout, and the buffer
	// stays small.
	chunkSize = 64 << 10
	// maxPooledBuf keeps unusually large buffers out of the pool.
	maxPooledBuf = 256 << 10
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

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
	head := bufPool.Get().(*[]byte)
	*head = httpx.AppendResponseHead((*head)[:0], http.StatusSwitchingProtocols, u.Header(), "Upgrade")
	_, err = nc.Write(*head)
	putBuf(head)
	if err != nil {
		_ = c.Close()
		return nil, nil, err
	}
	u.conn = nc
	return nc, bufio.NewReadWriter(bufio.NewReaderSize(nc, readBufSize), bufio.NewWriterSize(nc, writeBufSize)), nil
}

// netConn is a hijacked connection that gives every write a deadline and
// can be corked: while corked, writes collect in a pooled buffer that
// uncork sends with one write. The websocket library flushes after every
// message; corking turns a batch of messages into one syscall.
//
// All writes, direct or from uncork, are serialised by mu, so control
// frames the library writes from the reading goroutine (pongs, close
// replies) stay whole and in order.
type netConn struct {
	net.Conn
	writeTimeout time.Duration

	// pending is read before the socket; only the reading goroutine
	// touches it.
	pending []byte

	mu     sync.Mutex
	corked bool
	buf    *[]byte
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

// Write implements net.Conn.
func (c *netConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		if c.buf == nil {
			c.buf = bufPool.Get().(*[]byte)
		}
		*c.buf = append(*c.buf, p...)
		if len(*c.buf) >= chunkSize {
			_, err := c.writeLocked(*c.buf)
			*c.buf = (*c.buf)[:0]
			if err != nil {
				return 0, err
			}
		}
		return len(p), nil
	}
	return c.writeLocked(p)
}

func (c *netConn) writeLocked(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.writeTimeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// cork starts collecting writes.
func (c *netConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork sends what was collected, in one write, and stops collecting.
func (c *netConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	bp := c.buf
	if bp == nil {
		return nil
	}
	c.buf = nil
	_, err := c.writeLocked(*bp)
	putBuf(bp)
	return err
}

// putBuf returns a buffer to the pool, unless it grew unusually large.
func putBuf(bp *[]byte) {
	if cap(*bp) <= maxPooledBuf {
		*bp = (*bp)[:0]
		bufPool.Put(bp)
	}
}
