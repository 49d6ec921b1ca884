package sse_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/sse"
)

// BenchmarkIdleStreams measures what an idle SSE stream costs the server:
// heap, goroutine stacks and goroutines per stream (net/http's included),
// each stream on its own task, inside ServeHTTP (the default) and on a
// hijacked connection. The clients run in a separate process.
func BenchmarkIdleStreams(b *testing.B) {
	b.Run("in-handler", func(b *testing.B) { benchmarkIdleStreams(b, false) })
	b.Run("hijacked", func(b *testing.B) { benchmarkIdleStreams(b, true) })
}

func benchmarkIdleStreams(b *testing.B, hijack bool) {
	streamtest.MeasureIdle(b, "sse", 2000, func(svc *taskbridge.Service) (http.Handler, func(context.Context) error) {
		h, err := sse.NewHandler(svc, sse.Config{Auth: streamtest.Auth, Hijack: hijack})
		require.NoError(b, err)
		mux := http.NewServeMux()
		mux.Handle(sse.DefaultPattern, h)
		return mux, h.Shutdown
	})
}

// BenchmarkFanout measures deliveries per second from one task to M SSE
// subscribers over loopback (clients in this process).
func BenchmarkFanout(b *testing.B) {
	for _, m := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", m), func(b *testing.B) {
			env := streamtest.New(b, streamtest.Options{})
			h, err := sse.NewHandler(env.Svc, sse.Config{Auth: streamtest.Auth})
			require.NoError(b, err)
			mux := http.NewServeMux()
			mux.Handle(sse.DefaultPattern, h)
			srv := httptest.NewServer(mux)
			defer srv.Close()
			defer func() { require.NoError(b, h.Shutdown(context.Background())) }()

			f := streamtest.NewFanout(b, env, m)
			for i := range m {
				conn, err := net.Dial("tcp", srv.Listener.Addr().String())
				require.NoError(b, err)
				b.Cleanup(func() { _ = conn.Close() })
				// Connection: close, so that the server closes the
				// connection when the stream ends after the terminal event
				// (a stream inside ServeHTTP would otherwise keep it alive
				// and this raw reader would never see the end).
				_, err = fmt.Fprintf(conn, "GET /api/v1/tasks/%s/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice\r\nConnection: close\r\n\r\n", f.Task())
				require.NoError(b, err)
				br := bufio.NewReaderSize(conn, 64<<10)
				resp, err := http.ReadResponse(br, nil)
				require.NoError(b, err)
				require.Equal(b, http.StatusOK, resp.StatusCode)
				f.Client(i, func() (bool, error) {
					line, err := br.ReadSlice('\n')
					return bytes.HasPrefix(line, []byte("id: ")), err
				})
			}
			f.Run()
		})
	}
}

// BenchmarkManyTasks measures the shape of issue 14 over real sockets:
// 1,000 SSE streams, each on its own task, and events appended round-robin
// over the tasks, so every event is one write to one stream. One op is one
// event delivered (clients in this process, over loopback).
func BenchmarkManyTasks(b *testing.B) {
	const tasks = 1000
	env := streamtest.New(b, streamtest.Options{})
	h, err := sse.NewHandler(env.Svc, sse.Config{Auth: streamtest.Auth})
	require.NoError(b, err)
	mux := http.NewServeMux()
	mux.Handle(sse.DefaultPattern, h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer func() { require.NoError(b, h.Shutdown(context.Background())) }()

	ids := make([]string, tasks)
	var delivered atomic.Int64
	var want atomic.Int64
	want.Store(1 << 62)
	reached := make(chan struct{})
	var once sync.Once
	for i := range ids {
		ids[i] = env.CreateTask(b, "alice")
		env.Started(b, ids[i])
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		require.NoError(b, err)
		b.Cleanup(func() { _ = conn.Close() })
		_, err = fmt.Fprintf(conn, "GET /api/v1/tasks/%s/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice\r\nLast-Event-ID: 1\r\nConnection: close\r\n\r\n", ids[i])
		require.NoError(b, err)
		br := bufio.NewReaderSize(conn, 4096)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(b, err)
		require.Equal(b, http.StatusOK, resp.StatusCode)
		go func() {
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if bytes.HasPrefix(line, []byte("id: ")) && delivered.Add(1) >= want.Load() {
					once.Do(func() { close(reached) })
				}
			}
		}()
	}
	b.ReportAllocs()
	b.ResetTimer()
	want.Store(int64(b.N))
	if delivered.Load() >= int64(b.N) {
		once.Do(func() { close(reached) })
	}
	for i := range b.N {
		env.Progress(b, ids[i%tasks], 0.5)
	}
	<-reached
	b.StopTimer()
}
