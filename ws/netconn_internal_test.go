package ws

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
)

// After the library has written a close frame, no data message may follow
// it on the wire.
func TestNoMessagesAfterCloseFrame(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	nc := &netConn{Conn: server, writeTimeout: time.Second}
	br := bufio.NewReader(client)

	go func() { _ = nc.writeMessages([][]byte{[]byte(`{"a":1}`), []byte(`{}`)}) }()
	for _, want := range []string{`{"a":1}`, `{}`} {
		op, payload, err := streamtest.ReadServerFrame(br)
		require.NoError(t, err)
		require.Equal(t, byte(1), op)
		require.Equal(t, want, string(payload))
	}

	closeFrame := []byte{0x88, 0x02, 0x03, 0xe8} // 1000, as the library writes it
	go func() { _, _ = nc.Write(closeFrame) }()
	got := make([]byte, len(closeFrame))
	_, err := io.ReadFull(br, got)
	require.NoError(t, err)
	require.Equal(t, closeFrame, got)

	require.ErrorIs(t, nc.writeMessages([][]byte{[]byte(`{}`)}), net.ErrClosed)
	require.NoError(t, nc.writeMessages(nil))
}
