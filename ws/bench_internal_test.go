package ws

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// discardConn takes every write.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }

// hijackable is a ResponseWriter whose Hijack hands out conn.
type hijackable struct {
	hdr  http.Header
	conn net.Conn
	bufw int // the hijacked connection's write buffer size
}

func (h *hijackable) Header() http.Header         { return h.hdr }
func (h *hijackable) Write(p []byte) (int, error) { return len(p), nil }
func (h *hijackable) WriteHeader(int)             {}
func (h *hijackable) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.conn, bufio.NewReadWriter(bufio.NewReader(h.conn), bufio.NewWriterSize(h.conn, h.bufw)), nil
}

// BenchmarkDataWrites compares the CPU cost of sending a batch of 64
// event-sized text messages through the websocket library's per-message
// Write (onto a 4 KiB buffer, as if the library could carry data) with
// netConn.writeMessages. The socket is a sink, so no syscall is counted:
// with one, the library would also flush once per message.
func BenchmarkDataWrites(b *testing.B) {
	msgs := make([][]byte, 64)
	for i := range msgs {
		msgs[i] = bytes.Repeat([]byte("e"), 180+i)
	}
	b.Run("library", func(b *testing.B) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header = http.Header{
			"Connection": {"Upgrade"}, "Upgrade": {"websocket"},
			"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="},
		}
		wc, err := websocket.Accept(&hijackable{hdr: http.Header{}, conn: discardConn{}, bufw: 4096}, r, nil)
		require.NoError(b, err)
		b.ReportAllocs()
		for b.Loop() {
			for _, m := range msgs {
				if err := wc.Write(context.Background(), websocket.MessageText, m); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("seam", func(b *testing.B) {
		nc := newNetConn(discardConn{}, testWire(b))
		b.Cleanup(nc.release)
		require.NoError(b, nc.writeHead(head))
		b.ReportAllocs()
		for b.Loop() {
			if err := nc.writeMessages(msgs); err != nil {
				b.Fatal(err)
			}
		}
	})
}
