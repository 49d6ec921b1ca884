//go:build unix

package ws_test

import (
	"slices"
	"strings"
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
	waiting := func() bool {
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
	require.Eventually(t, waiting, 10*time.Second, time.Millisecond)

	for _, op := range []byte{wsframe.OpPing, wsframe.OpPong} {
		c.write(t, wsframe.AppendClientFrame(nil, op, []byte("are you there")))
		if op == wsframe.OpPing {
			readPong(t, c, []byte("are you there"))
		}
		require.Eventually(t, waiting, 10*time.Second, time.Millisecond, "after an opcode %#x", op)
	}
}
