package ws_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
	"github.com/taskbridge-go/taskbridge/internal/wsframe"
	"github.com/taskbridge-go/taskbridge/ws"
)

// readPong reads the next server frame and requires a pong carrying
// payload.
func readPong(t *testing.T, c *rawClient, payload []byte) {
	t.Helper()
	op, got, err := streamtest.ReadServerFrame(c.br)
	require.NoError(t, err)
	require.Equal(t, byte(wsframe.OpPong), op, "frame %q", got)
	require.Equal(t, payload, got)
}

// TestClientControlFrames: every ping a client sends is answered with a
// pong carrying its payload, whatever its size (up to the 125 bytes a
// control frame may carry) and however it arrives (alone, split over two
// writes, in one write with other frames); a client's pong gets no answer.
// Deliveries go on around them.
func TestClientControlFrames(t *testing.T) {
	t.Parallel()
	f := setup(t, ws.Config{DisableHeartbeats: true})
	a, b := f.env.CreateTask(t, "alice"), f.env.CreateTask(t, "alice")
	c := f.rawClient(t, subscribeFrames(t, a))
	confirmedThen(t, nil)(c)
	ping := func(p []byte) []byte { return wsframe.AppendClientFrame(nil, wsframe.OpPing, p) }

	for _, n := range []int{0, 1, 4, 5, wsframe.MaxControlPayload} {
		p := bytes.Repeat([]byte{byte('a' + n%26)}, n)
		c.write(t, ping(p))
		readPong(t, c, p)
	}

	// Split: the frame's first bytes, then the rest.
	p := []byte("split ping")
	frame := ping(p)
	c.write(t, frame[:3])
	time.Sleep(20 * time.Millisecond)
	c.write(t, frame[3:])
	readPong(t, c, p)

	// A pong, then pings around a subscribe frame, in one write.
	burst := wsframe.AppendClientFrame(nil, wsframe.OpPong, []byte("unsolicited"))
	burst = append(burst, ping([]byte("first"))...)
	burst = append(burst, subscribeFrames(t, b)...)
	burst = append(burst, ping([]byte("second"))...)
	c.write(t, burst)
	var pongs []string
	confirmed := false
	for len(pongs) < 2 || !confirmed {
		op, payload, err := streamtest.ReadServerFrame(c.br)
		require.NoError(t, err)
		switch op {
		case wsframe.OpPong:
			pongs = append(pongs, string(payload))
		case wsframe.OpText:
			require.False(t, confirmed, "a second text frame: %s", payload)
			protocoltest.ValidateSubscriptionConfirmed(t, payload)
			var m struct{ TaskID string }
			require.NoError(t, json.Unmarshal(payload, &m))
			require.Equal(t, b, m.TaskID)
			confirmed = true
		default:
			require.Failf(t, "unexpected frame", "opcode %#x: %q", op, payload)
		}
	}
	require.Equal(t, []string{"first", "second"}, pongs)

	// The next frame is the next event: nothing answered the pong.
	c.write(t, wsframe.AppendClientFrame(nil, wsframe.OpPong, nil))
	started := f.env.Started(t, a)
	op, payload, err := streamtest.ReadServerFrame(c.br)
	require.NoError(t, err)
	require.Equal(t, byte(wsframe.OpText), op, "frame %q", payload)
	var ev taskbridge.TaskEvent
	require.NoError(t, json.Unmarshal(payload, &ev), "%s", payload)
	require.Equal(t, started.EventID, ev.EventID)
}
