//go:build unix

package ws

import (
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/sockettest"
	"github.com/taskbridge-go/taskbridge/internal/wsframe"
)

// TestReaderMeetsAClosedSocketWithBytesBuffered: when the connection is
// closed under the reader while client bytes wait in its buffers (the
// server ended the connection right after a burst of frames), the reader's
// look at them reports the closed socket as an error that ends reading.
// The first version of the buffered look dereferenced the missing head and
// panicked.
func TestReaderMeetsAClosedSocketWithBytesBuffered(t *testing.T) {
	_, server := sockettest.Pair(t)
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
	client, server := sockettest.Pair(t)
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
