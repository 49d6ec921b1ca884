//go:build unix

package ws

import (
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/wsframe"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	server, err = ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { _ = server.Close() })
	return server, client
}

// TestReaderMeetsAClosedSocketWithBytesBuffered: when the connection is
// closed under the reader while client bytes wait in its buffers (the
// server ended the connection right after a burst of frames), the reader's
// look at them reports the closed socket as an error that ends reading.
// The first version of the buffered look dereferenced the missing head and
// panicked.
func TestReaderMeetsAClosedSocketWithBytesBuffered(t *testing.T) {
	server, _ := tcpPair(t)
	nc := newNetConn(server, testWire(t))
	t.Cleanup(nc.release)
	nc.pending = wsframe.AppendClientFrame(nil, wsframe.OpPing, []byte("buffered"))
	require.NoError(t, server.Close())
	c := &conn{nc: nc}
	head, err := c.waitReadable()
	require.ErrorIs(t, err, net.ErrClosed)
	require.Nil(t, head)
}

// TestReaderTakesAPingSplitAcrossBufferAndSocket: a ping whose first bytes
// the library buffered and whose rest is still on the socket is taken
// whole, out of both, and nothing after it is consumed.
func TestReaderTakesAPingSplitAcrossBufferAndSocket(t *testing.T) {
	server, client := tcpPair(t)
	nc := newNetConn(server, testWire(t))
	t.Cleanup(nc.release)
	ping := wsframe.AppendClientFrame(nil, wsframe.OpPing, []byte("split across"))
	next := wsframe.AppendClientFrame(nil, wsframe.OpText, []byte(`{"action":"subscribe"}`))
	nc.pending = ping[:5]
	_, err := client.Write(append(ping[5:len(ping):len(ping)], next...))
	require.NoError(t, err)
	c := &conn{nc: nc}
	nc.waitReadable() // the client's write has arrived, whole
	head, err := c.peekHead(true)
	require.NoError(t, err)
	require.Equal(t, headControl, head.kind)
	require.Equal(t, "split across", string(head.payload()))
	require.Nil(t, nc.pending)
	head, err = c.peekHead(true)
	require.NoError(t, err)
	require.Equal(t, headFrame, head.kind, "the subscribe frame after the ping")
}
