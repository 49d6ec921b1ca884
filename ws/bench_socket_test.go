package ws_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/ws"
)

// BenchmarkSocketDelivery measures one WebSocket subscription over a
// loopback socket: one op emits an event to the subscribed task and reads
// its frame off the socket (the client, raw frames, runs in this process).
// It is sse's benchmark of the same name for this transport: with a task's
// only subscriber on a plain socket, the appending goroutine writes the
// frame itself (an inline write); with Inline=false the connection's
// goroutine does, in a round of its own per event.
func BenchmarkSocketDelivery(b *testing.B) {
	for _, inline := range []bool{true, false} {
		b.Run(fmt.Sprint("Inline=", inline), func(b *testing.B) { benchSocketDelivery(b, !inline) })
	}
}

func benchSocketDelivery(b *testing.B, disableInline bool) {
	env := streamtest.New(b, streamtest.Options{MaxEventsPerTask: 64})
	h, err := ws.NewHandler(env.Svc, ws.Config{Auth: streamtest.Auth, DisableHeartbeats: true, DisableInlineWrites: disableInline})
	require.NoError(b, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer func() { require.NoError(b, h.Shutdown(context.Background())) }()
	id := env.CreateTask(b, "alice")
	env.Started(b, id)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(b, err)
	defer func() { _ = conn.Close() }()
	_, err = conn.Write(streamtest.HandshakeRequest("x", "/", streamtest.Bearer("alice")))
	require.NoError(b, err)
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(b, err)
	require.Equal(b, http.StatusSwitchingProtocols, resp.StatusCode)
	after := "1"
	sub, err := json.Marshal(taskbridge.SubscribeFrame{Action: taskbridge.FrameSubscribe, TaskID: id, LastEventID: &after})
	require.NoError(b, err)
	_, err = conn.Write(streamtest.ClientFrame(1, sub))
	require.NoError(b, err)
	_, data, err := streamtest.ReadServerFrame(br)
	require.NoError(b, err)
	require.Contains(b, string(data), "SUBSCRIPTION_CONFIRMED")

	env.EmitEach(b, id, func() {
		_, data, err := streamtest.ReadServerFrame(br)
		if err != nil || !bytes.Contains(data, []byte(`"TASK_PROGRESS"`)) {
			b.Fatalf("frame %s: %v", data, err)
		}
	})
}
