//go:build unix

package rawwrite

import (
	"io"
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/sockettest"
)

// Try writes what the socket takes at once and never waits: all of a small
// write, a prefix once the buffers fill, nothing when they are full or the
// connection is closed. What it wrote arrives intact and in order.
func TestTry(t *testing.T) {
	client, server := sockettest.Pair(t)
	require.NoError(t, server.(*net.TCPConn).SetWriteBuffer(16<<10))
	rc := Conn(server)
	require.NotNil(t, rc)

	require.Equal(t, 5, Try(rc, []byte("hello")))
	got := make([]byte, 5)
	_, err := io.ReadFull(client, got)
	require.NoError(t, err)
	require.Equal(t, "hello", string(got))
	require.Empty(t, Drain(rc, []byte("hi")), "Drain leaves nothing when the socket takes it all")
	_, err = io.ReadFull(client, got[:2])
	require.NoError(t, err)

	// The client does not read: the buffers fill up.
	chunk := make([]byte, 64<<10)
	var sent int
	partial := false
	for range 1000 {
		for i := range chunk {
			chunk[i] = byte(sent + i)
		}
		n := Try(rc, chunk)
		sent += n
		if n < len(chunk) {
			partial = true
			break
		}
	}
	require.True(t, partial, "the socket took 64 MB without filling up")
	require.Zero(t, Try(rc, chunk), "a full socket takes nothing")
	// Drain keeps what a full socket did not take, at the start of b.
	require.Equal(t, "xyz", string(Drain(rc, []byte("xyz"))))
	recv := make([]byte, sent)
	_, err = io.ReadFull(client, recv)
	require.NoError(t, err)
	for i, b := range recv {
		if b != byte(i) {
			t.Fatalf("byte %d is %d, want %d", i, b, byte(i))
		}
	}

	require.NoError(t, server.Close())
	require.Zero(t, Try(rc, []byte("x")), "a closed connection takes nothing")
}

// Conn returns nil for a connection that is not a socket.
func TestConnNotASocket(t *testing.T) {
	a, b := net.Pipe()
	defer func() { _ = a.Close(); _ = b.Close() }()
	require.Nil(t, Conn(a))
}

// An inline delivery's write allocates nothing (it used to allocate its
// callback and the count it returned).
func TestTryAllocations(t *testing.T) {
	client, server := sockettest.Pair(t)
	rc := Conn(server)
	msg := []byte("data: {}\n\n")
	got := make([]byte, len(msg))
	allocs := testing.AllocsPerRun(1000, func() {
		if Try(rc, msg) != len(msg) {
			t.Fatal("short write")
		}
		if _, err := io.ReadFull(client, got); err != nil {
			t.Fatal(err)
		}
	})
	if raceEnabled {
		require.LessOrEqual(t, allocs, 2.0) // .ci/run also runs this test without the race detector
		return
	}
	require.Zero(t, allocs)
}
