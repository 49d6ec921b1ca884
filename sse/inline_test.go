package sse_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/sse"
)

// inlineSetup returns a test environment and a handler configured to
// hijack, whose inline deliveries are counted.
func inlineSetup(t *testing.T, mod ...func(*sse.Config)) (*streamtest.Env, *sse.Handler, *streamtest.Deliveries) {
	t.Helper()
	env := streamtest.New(t, streamtest.Options{})
	cfg := sse.Config{Hijack: true, DisableHeartbeats: true}
	for _, m := range mod {
		m(&cfg)
	}
	h := newHandler(t, env, cfg)
	d := &streamtest.Deliveries{}
	sse.SetDeliverHook(h, d.Hook)
	return env, h, d
}

// openStarted serves h, starts a task of alice's and opens its stream,
// which has delivered event 1.
func openStarted(t *testing.T, env *streamtest.Env, h *sse.Handler) (string, *bufio.Reader) {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(sse.DefaultPattern, h)
	srv := serve(t, h, mux)
	task := env.CreateTask(t, "alice")
	env.Started(t, task)
	br := bufio.NewReader(get(t, srv.Client(), streamURL(srv.URL, task), "alice", nil).Body)
	require.Equal(t, "1", readEvent(t, br).EventID)
	return task, br
}

// readIDs reads SSE frames from br until the connection ends and returns
// their ids.
func readIDs(t *testing.T, br *bufio.Reader) []string {
	t.Helper()
	var ids []string
	for {
		f, err := streamtest.ReadSSE(br)
		if err != nil {
			return ids
		}
		if f.HasID {
			ids = append(ids, f.ID)
		}
	}
}

func seqIDs(from, to int) []string {
	var ids []string
	for i := from; i <= to; i++ {
		ids = append(ids, strconv.Itoa(i))
	}
	return ids
}

// A hijacked stream whose task has no other subscriber gets each new event
// written by the appending goroutine (memstore reads inline), before the
// append returns; every event arrives once, in order, and the terminal
// event ends the stream.
func TestHijackedStreamWritesOnTheAppender(t *testing.T) {
	t.Parallel()
	env, h, d := inlineSetup(t)
	task, br := openStarted(t, env, h)

	// The stream's goroutine parks once it has written event 1; until it
	// has, an append wakes it instead. Each event is read before the next.
	seq := 1
	for d.Sent.Load() == 0 {
		require.Less(t, seq, 1000, "no event was delivered inline")
		seq++
		before := d.Sent.Load()
		env.Emit(t, task, taskbridge.MessagePayload{Message: "m"})
		if d.Sent.Load() > before {
			// Written before Emit returned: the client can read it now.
			require.Equal(t, strconv.Itoa(seq), readEvent(t, br).EventID)
			break
		}
		require.Equal(t, strconv.Itoa(seq), readEvent(t, br).EventID)
	}
	for range 3 {
		seq++
		before := d.Sent.Load()
		env.Emit(t, task, taskbridge.MessagePayload{Message: "m"})
		require.Equal(t, before+1, d.Sent.Load(), "event %d went out before Emit returned", seq)
		require.Equal(t, strconv.Itoa(seq), readEvent(t, br).EventID)
	}
	env.Complete(t, task)
	require.Equal(t, strconv.Itoa(seq+1), readEvent(t, br).EventID)
	requireEnd(t, br)
	require.Zero(t, d.Kept.Load())
}

// When the socket takes only part of an inline delivery (the client stopped
// reading), the rest goes out from the stream's goroutine before anything
// else, and the events appended meanwhile follow: the client, reading
// again, gets every event once and in order.
func TestHijackedStreamInlineRemainder(t *testing.T) {
	t.Parallel()
	env, h, d := inlineSetup(t)
	srv := streamtest.SmallBufferServer(t, h)
	t.Cleanup(func() { require.NoError(t, h.Shutdown(context.Background())) })
	task := env.CreateTask(t, "alice")
	env.Started(t, task)
	// A client receive buffer as small as dialStalled's can stall loopback
	// TCP for seconds once the client reads again (window updates smaller
	// than the MSS wait for zero-window probes): keep the default.
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	_, err = conn.Write([]byte("GET /api/v1/tasks/" + task + "/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice\r\n\r\n"))
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(60*time.Second)))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "1", readEvent(t, br).EventID)

	// Small events until one is delivered inline: the stream is parked.
	seq := 1
	for d.Sent.Load() == 0 {
		require.Less(t, seq, 1000, "no event was delivered inline")
		seq++
		env.Emit(t, task, taskbridge.MessagePayload{Message: "m"})
		require.Equal(t, strconv.Itoa(seq), readEvent(t, br).EventID)
	}
	// The client stops reading; 100 events of 16 KB overflow the socket
	// buffers (16 KB to send, the default to receive).
	big := strings.Repeat("x", 16<<10)
	for range 100 {
		env.Emit(t, task, taskbridge.MessagePayload{Message: big})
	}
	require.Positive(t, d.Kept.Load(), "no inline delivery found the socket full")
	env.Complete(t, task)
	require.Equal(t, seqIDs(seq+1, seq+101), readIDs(t, br))
}

// noHijack hides the ResponseWriter's Hijacker (as some middleware does)
// but keeps Flush: a stream configured to hijack stays inside ServeHTTP.
type noHijack struct{ w http.ResponseWriter }

func (n noHijack) Header() http.Header         { return n.w.Header() }
func (n noHijack) Write(p []byte) (int, error) { return n.w.Write(p) }
func (n noHijack) WriteHeader(code int)        { n.w.WriteHeader(code) }
func (n noHijack) Flush()                      { n.w.(http.Flusher).Flush() }

// A stream that asked to hijack but could not has no socket to write to
// without blocking: inline deliveries keep every event for the stream's
// goroutine, which writes them in order.
func TestHijackRefusedKeepsInlineEventsInOrder(t *testing.T) {
	t.Parallel()
	env, h, d := inlineSetup(t)
	srv := serve(t, h, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(noHijack{w}, r)
	}))
	task := env.CreateTask(t, "alice")
	env.Started(t, task)
	br := bufio.NewReader(get(t, srv.Client(), streamURL(srv.URL, task), "alice", nil).Body)
	require.Equal(t, "1", readEvent(t, br).EventID)
	for range 50 {
		env.Emit(t, task, taskbridge.MessagePayload{Message: "m"})
	}
	env.Complete(t, task)
	require.Equal(t, seqIDs(2, 52), readIDs(t, br))
	require.Positive(t, d.Kept.Load(), "no event was handed over inline")
	require.Zero(t, d.Sent.Load())
}

// With DisableInlineWrites every event goes out from the stream's
// goroutine.
func TestDisableInlineWrites(t *testing.T) {
	t.Parallel()
	env, h, d := inlineSetup(t, func(c *sse.Config) { c.DisableInlineWrites = true })
	task, br := openStarted(t, env, h)
	for i := 2; i <= 20; i++ {
		env.Emit(t, task, taskbridge.MessagePayload{Message: "m"})
		require.Equal(t, strconv.Itoa(i), readEvent(t, br).EventID)
	}
	env.Complete(t, task)
	require.Equal(t, "21", readEvent(t, br).EventID)
	requireEnd(t, br)
	require.Zero(t, d.Sent.Load()+d.Kept.Load())
}
