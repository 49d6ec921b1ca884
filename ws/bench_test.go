package ws_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/ws"
)

// BenchmarkIdleConnections measures what an idle subscribed WebSocket costs
// the server: heap, goroutine stacks and goroutines per connection, each
// connection on its own task. The clients run in a separate process.
func BenchmarkIdleConnections(b *testing.B) {
	streamtest.MeasureIdle(b, "ws", 2000, func(svc *taskbridge.Service) (http.Handler, func(context.Context) error) {
		h, err := ws.NewHandler(svc, ws.Config{Auth: streamtest.Auth})
		require.NoError(b, err)
		return h, h.Shutdown
	})
}

// BenchmarkFanout measures deliveries per second from one task to M
// WebSocket subscribers over loopback (clients in this process).
func BenchmarkFanout(b *testing.B) {
	for _, m := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", m), func(b *testing.B) {
			env := streamtest.New(b, streamtest.Options{})
			h, err := ws.NewHandler(env.Svc, ws.Config{Auth: streamtest.Auth})
			require.NoError(b, err)
			srv := httptest.NewServer(h)
			defer srv.Close()
			defer func() { require.NoError(b, h.Shutdown(context.Background())) }()

			f := streamtest.NewFanout(b, env, m)
			sub, _ := json.Marshal(taskbridge.SubscribeFrame{Action: "subscribe", TaskID: f.Task()})
			for i := range m {
				c, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"),
					&websocket.DialOptions{HTTPHeader: streamtest.Bearer("alice")})
				require.NoError(b, err)
				b.Cleanup(func() { _ = c.CloseNow() })
				require.NoError(b, c.Write(context.Background(), websocket.MessageText, sub))
				f.Client(i, func() (bool, error) {
					_, data, err := c.Read(context.Background())
					return !bytes.Contains(data, []byte("SUBSCRIPTION_CONFIRMED")), err
				})
			}
			f.Run()
		})
	}
}
