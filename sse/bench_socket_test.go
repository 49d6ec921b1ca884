package sse_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/sse"
)

// BenchmarkSocketDelivery measures one SSE stream over a loopback socket:
// one op emits an event to the stream's task and reads it off the socket
// (the client reads in this process). Served inside ServeHTTP, it counts
// net/http's write path too, which BenchmarkServeHTTPDelivery leaves out;
// Hijack=true is the stream on the hijacked connection, Quiet a stream
// inside ServeHTTP whose every step is a quiet stream's (on the offload
// pool, writing around net/http's response buffer).
func BenchmarkSocketDelivery(b *testing.B) {
	for _, hijack := range []bool{false, true} {
		b.Run(fmt.Sprintf("Hijack=%v", hijack), func(b *testing.B) { benchmarkSocketDelivery(b, hijack, false) })
	}
	b.Run("Quiet", func(b *testing.B) { benchmarkSocketDelivery(b, false, true) })
}

func benchmarkSocketDelivery(b *testing.B, hijack, quiet bool) {
	env := streamtest.New(b, streamtest.Options{MaxEventsPerTask: 64})
	h, err := sse.NewHandler(env.Svc, sse.Config{Auth: streamtest.Auth, DisableHeartbeats: true, Hijack: hijack})
	require.NoError(b, err)
	if quiet {
		sse.SetQuietAfter(h, 0)
	}
	mux := http.NewServeMux()
	mux.Handle(sse.DefaultPattern, h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer func() { require.NoError(b, h.Shutdown(context.Background())) }()
	id := env.CreateTask(b, "alice")
	env.Started(b, id)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(b, err)
	defer func() { _ = conn.Close() }()
	_, err = fmt.Fprintf(conn, "GET /api/v1/tasks/%s/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice\r\nLast-Event-ID: 1\r\n\r\n", id)
	require.NoError(b, err)
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(b, err)
	require.Equal(b, http.StatusOK, resp.StatusCode)
	env.EmitEach(b, id, func() {
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if bytes.HasPrefix(line, []byte("data: ")) {
				return
			}
		}
	})
}
