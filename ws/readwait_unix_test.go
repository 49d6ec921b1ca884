//go:build unix

package ws_test

import (
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/goroutinetest"
	"github.com/taskbridge-go/taskbridge/internal/wsframe"
	"github.com/taskbridge-go/taskbridge/ws"
)

// TestIdleReaderWaitsOutsideTheLibrary: a subscribed connection's reading
// goroutine waits for the client's next bytes in its own shallow frame, not
// inside the websocket library's read path, so that its stack stays at the
// minimum; after reading a frame, or answering a ping, it goes back to
// waiting there, and no goroutine waits inside the library's read (as one
// of the offload pool would, had it read the ping through the library).
// Not parallel: it looks at every goroutine of the process.
func TestIdleReaderWaitsOutsideTheLibrary(t *testing.T) {
	f := setup(t, ws.Config{})
	a, b := f.env.CreateTask(t, "alice"), f.env.CreateTask(t, "alice")
	c := f.rawClient(t, subscribeFrames(t, a))
	confirmedThen(t, subscribeFrames(t, b))(c)
	confirmedThen(t, nil)(c)
	require.Eventually(t, readerWaits, 10*time.Second, time.Millisecond)

	for _, op := range []byte{wsframe.OpPing, wsframe.OpPong} {
		c.write(t, wsframe.AppendClientFrame(nil, op, []byte("are you there")))
		if op == wsframe.OpPing {
			readPong(t, c, []byte("are you there"))
		}
		require.Eventually(t, readerWaits, 10*time.Second, time.Millisecond, "after an opcode %#x", op)
	}
}

// readerWaits reports whether the process's only connection reader waits
// for the client in netConn.waitReadable, outside the websocket library,
// and no goroutine waits inside the library's read.
func readerWaits() bool {
	if len(goroutinetest.Find("github.com/coder/websocket.(*Conn).Reader")) > 0 {
		return false
	}
	readers := goroutinetest.Find("ws.(*conn).readLoop")
	if len(readers) != 1 {
		return false
	}
	has := func(s string) bool {
		return slices.ContainsFunc(readers[0].Funcs, func(f string) bool { return strings.Contains(f, s) })
	}
	return has("ws.(*netConn).waitReadable") && !has("github.com/coder/websocket")
}

// TestBufferedFramesReadOffTheReader: frames that reach the server
// together (with the handshake, or in one write after it) are read as
// frames at the head of the socket are: each whole subscribe frame through
// the library on the offload pool, each ping and pong by the reader
// itself. The reading goroutine never reads through the library, and
// ends waiting in its shallow frame, not inside the library's read of the
// message after a ping. Not parallel: it looks at every goroutine of the
// process.
func TestBufferedFramesReadOffTheReader(t *testing.T) {
	f := setup(t, ws.Config{DisableHeartbeats: true})
	var mu sync.Mutex
	var reads, onReader int
	ws.SetReadHook(f.h, func() {
		buf := make([]byte, 64<<10)
		on := strings.Contains(string(buf[:runtime.Stack(buf, false)]), "ws.(*conn).readLoop(")
		mu.Lock()
		defer mu.Unlock()
		reads++
		if on {
			onReader++
		}
	})
	tasks := make([]string, 4)
	for i := range tasks {
		tasks[i] = f.env.CreateTask(t, "alice")
	}
	control := func(op byte, p string) []byte { return wsframe.AppendClientFrame(nil, op, []byte(p)) }
	join := func(bs ...[]byte) []byte { return slices.Concat(bs...) }

	c := f.rawClient(t, join(subscribeFrames(t, tasks[0]), control(wsframe.OpPing, "with the handshake"), subscribeFrames(t, tasks[1])))
	require.Equal(t, []string{"with the handshake"}, readConfirmedAndPongs(t, c, 2, 1))
	c.write(t, join(control(wsframe.OpPing, "first"), subscribeFrames(t, tasks[2], tasks[3]),
		control(wsframe.OpPong, "unsolicited"), control(wsframe.OpPing, "last")))
	require.Equal(t, []string{"first", "last"}, readConfirmedAndPongs(t, c, 2, 2))

	require.Eventually(t, readerWaits, 10*time.Second, time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, len(tasks), reads, "one library read per subscribe frame")
	require.Zero(t, onReader, "library reads on the reading goroutine")
}
