package ws_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/ws"
)

// FuzzSubscribeFrame sends one client frame ("$T" stands for the id of a
// finished task of the caller) and reads until the server closes. Every
// frame must end in a close with a code the protocol gives a client's
// mistake or the normal end (1000, 1008, 1009, 4410), never an internal
// error (1011), a reset or a hang. Its seed corpus runs as a test.
func FuzzSubscribeFrame(f *testing.F) {
	env := streamtest.New(f, streamtest.Options{})
	task := env.CreateTask(f, "alice")
	env.Started(f, task)
	env.Complete(f, task)
	h, err := ws.NewHandler(env.Svc, ws.Config{Auth: streamtest.Auth})
	require.NoError(f, err)
	mux := http.NewServeMux()
	mux.Handle("GET "+ws.DefaultPath, h)
	srv := httptest.NewServer(mux)
	f.Cleanup(func() {
		srv.Close()
		require.NoError(f, h.Shutdown(context.Background()))
	})
	url := wsURL(srv.URL)

	f.Add([]byte(`{"action":"subscribe","taskId":"$T","lastEventId":"1"}`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		frame = bytes.ReplaceAll(frame, []byte("$T"), []byte(task))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer alice"}}})
		require.NoError(t, err)
		defer func() { _ = c.CloseNow() }()
		c.SetReadLimit(1 << 20)
		if err := c.Write(ctx, websocket.MessageText, frame); err != nil {
			return // the server closed before reading the frame
		}
		for {
			_, _, err := c.Read(ctx)
			if err == nil {
				continue
			}
			require.NoError(t, ctx.Err(), "the server neither answered nor closed: %q", frame)
			code := websocket.CloseStatus(err)
			switch code {
			case websocket.StatusNormalClosure, websocket.StatusPolicyViolation, websocket.StatusMessageTooBig, ws.CloseEventsExpired:
			default:
				require.Failf(t, "unexpected end", "frame %q ended with close %d: %v", frame, code, err)
			}
			if code == websocket.StatusNormalClosure {
				require.False(t, errors.Is(err, context.DeadlineExceeded))
			}
			return
		}
	})
}
