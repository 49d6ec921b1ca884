package sse_test

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/sse"
)

// logLines is a chi LoggerInterface that sends each line on the channel.
type logLines chan string

func (l logLines) Print(v ...any) { l <- fmt.Sprint(v...) }

// requestRecord is what a metrics middleware saw of one request.
type requestRecord struct {
	status, bytes int
	took          time.Duration
}

// recordRequests is a metrics middleware: it sends what it saw of each
// request on records once the handler has returned.
func recordRequests(records chan<- requestRecord) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			start := time.Now()
			next.ServeHTTP(ww, r)
			records <- requestRecord{ww.Status(), ww.BytesWritten(), time.Since(start)}
		})
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestHostMiddlewareSeesTheStream: behind chi's request logger and a
// metrics middleware, a stream served inside ServeHTTP shows its real
// status, the bytes the client received and a duration spanning the
// stream. A hijacked stream ends for them when it starts ("000 0B").
func TestHostMiddlewareSeesTheStream(t *testing.T) {
	t.Parallel()
	forEachMode(t, sse.Config{HeartbeatInterval: 30 * time.Millisecond}, func(t *testing.T, cfg sse.Config) {
		env := streamtest.New(t, streamtest.Options{})
		h := newHandler(t, env, cfg)
		logs := make(logLines, 1)
		records := make(chan requestRecord, 1)
		r := chi.NewRouter()
		r.Use(middleware.RequestLogger(&middleware.DefaultLogFormatter{Logger: logs, NoColor: true}))
		r.Use(recordRequests(records))
		r.Method(http.MethodGet, "/api/v1/tasks/{taskId}/events/stream", h)
		srv := serve(t, h, r)

		task := env.CreateTask(t, "alice")
		env.Started(t, task)
		resp := get(t, srv.Client(), streamURL(srv.URL, task), "alice", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		body := &countingReader{r: resp.Body}
		br := bufio.NewReader(body)
		require.Equal(t, "1", readEvent(t, br).EventID)
		// The stream stays open at least from here until the heartbeat.
		open := time.Now()
		readHeartbeat(t, br, task)
		held := time.Since(open)
		if cfg.Hijack {
			// The request ended for the middleware while the stream is
			// still open.
			rec := <-records
			require.Equal(t, 0, rec.status)
			require.Equal(t, 0, rec.bytes)
			require.Contains(t, <-logs, " - 000 0B in ")
		} else {
			select {
			case <-records:
				t.Fatal("the request ended while the stream was open")
			default:
			}
		}
		env.Complete(t, task)
		require.Equal(t, "2", nextEventID(t, br))
		requireEnd(t, br)
		if cfg.Hijack {
			return
		}

		rec := <-records
		require.Equal(t, http.StatusOK, rec.status)
		require.Equal(t, body.n, rec.bytes, "bytes the middleware saw vs. bytes the client received")
		require.GreaterOrEqual(t, rec.took, held)
		require.Contains(t, <-logs, fmt.Sprintf(" - 200 %dB in ", body.n))
	})
}

// TestHostTimeoutMiddlewareEndsTheStream: chi's Timeout middleware cancels
// the request's context, which ends a stream served inside ServeHTTP.
func TestHostTimeoutMiddlewareEndsTheStream(t *testing.T) {
	t.Parallel()
	metrics := &taskbridge.MemoryMetrics{}
	env := streamtest.New(t, streamtest.Options{Metrics: metrics})
	h := newHandler(t, env, sse.Config{})
	records := make(chan requestRecord, 1)
	r := chi.NewRouter()
	r.Use(recordRequests(records))
	const timeout = 100 * time.Millisecond
	r.Use(middleware.Timeout(timeout))
	r.Method(http.MethodGet, "/api/v1/tasks/{taskId}/events/stream", h)
	srv := serve(t, h, r, func(srv *httptest.Server) {
		// The Timeout middleware's 504 after the stream has started is a
		// superfluous WriteHeader, which the server logs.
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	})

	task := env.CreateTask(t, "alice")
	env.Started(t, task)
	resp := get(t, srv.Client(), streamURL(srv.URL, task), "alice", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	br := bufio.NewReader(resp.Body)
	require.Equal(t, "1", readEvent(t, br).EventID)
	requireEnd(t, br)
	rec := <-records
	require.Equal(t, http.StatusOK, rec.status)
	require.GreaterOrEqual(t, rec.took, timeout)
	require.Equal(t, int64(0), activeStreams(metrics)())
}
