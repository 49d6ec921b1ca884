package sse_test

import (
	"bufio"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/sse"
)

// TestEveryStepOffloaded serves a whole stream (replay, heartbeats, live
// events, the end) with every step on a short-lived goroutine, as a quiet
// stream's steps are.
func TestEveryStepOffloaded(t *testing.T) {
	t.Parallel()
	forEachMode(t, sse.Config{HeartbeatInterval: 20 * time.Millisecond, Retry: time.Second}, func(t *testing.T, cfg sse.Config) {
		env := streamtest.New(t, streamtest.Options{})
		h := newHandler(t, env, cfg)
		sse.SetQuietAfter(h, 0)
		srv := serve(t, h, h)
		task := env.CreateTask(t, "alice")
		want := []taskbridge.TaskEvent{env.Started(t, task), env.Progress(t, task, 0.5)}

		resp := get(t, srv.Client(), streamURL(srv.URL, task), "alice", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		br := bufio.NewReader(resp.Body)
		fr, err := streamtest.ReadSSE(br)
		require.NoError(t, err)
		require.Equal(t, "1000", fr.Retry)
		for _, w := range want {
			require.Equal(t, w.EventID, readEvent(t, br).EventID)
		}
		readHeartbeat(t, br, task)
		live := env.Progress(t, task, 0.75)
		require.Equal(t, live.EventID, nextEventID(t, br))
		done := env.Complete(t, task)
		require.Equal(t, done.EventID, nextEventID(t, br))
		requireEnd(t, br)
	})
}

// logWriter sends each write to the channel, dropping what does not fit.
type logWriter chan string

func (w logWriter) Write(p []byte) (int, error) {
	select {
	case w <- string(p):
	default:
	}
	return len(p), nil
}

// panickyAuth is streamtest.Auth, but panics for "Bearer mallory".
var panickyAuth = taskbridge.AuthFunc(func(r *http.Request) (taskbridge.AuthContext, error) {
	if r.Header.Get("Authorization") == "Bearer mallory" {
		panic("resolver exploded")
	}
	return streamtest.Auth.ResolveAuth(r)
})

// TestPanicReachesTheServer: a panic in the host's authentication, which
// runs on a goroutine of the handler's offload pool, is raised again in
// ServeHTTP, where net/http recovers and logs it instead of the process
// crashing.
func TestPanicReachesTheServer(t *testing.T) {
	t.Parallel()
	env := streamtest.New(t, streamtest.Options{})
	h := newHandler(t, env, sse.Config{Auth: panickyAuth})
	logs := make(logWriter, 4)
	srv := serve(t, h, h, func(srv *httptest.Server) { srv.Config.ErrorLog = log.New(logs, "", 0) })
	task := env.CreateTask(t, "alice")

	req, err := http.NewRequest(http.MethodGet, streamURL(srv.URL, task), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer mallory")
	resp, err := srv.Client().Do(req)
	if err == nil {
		_ = resp.Body.Close()
	}
	require.Error(t, err, "net/http drops the connection of a panicking handler")
	require.Contains(t, <-logs, "resolver exploded")

	// The handler still serves.
	env.Started(t, task)
	br := bufio.NewReader(get(t, srv.Client(), streamURL(srv.URL, task), "alice", nil).Body)
	require.Equal(t, "1", readEvent(t, br).EventID)
}

// The goroutines the handler keeps for opening streams and for quiet
// streams' steps wait only while it has streams: after a refused request,
// a panicking one and a stream that ended, none is left.
func TestOffloadPoolReleased(t *testing.T) {
	t.Parallel()
	env := streamtest.New(t, streamtest.Options{})
	h := newHandler(t, env, sse.Config{Auth: panickyAuth})
	sse.SetQuietAfter(h, 0) // every step offloaded
	logs := make(logWriter, 4)
	srv := serve(t, h, h, func(srv *httptest.Server) { srv.Config.ErrorLog = log.New(logs, "", 0) })
	task := env.CreateTask(t, "alice")
	idle := func() bool { return sse.OffloadWaiting(h) == 0 }

	resp := get(t, srv.Client(), streamURL(srv.URL, task), "bob", nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "bob may not see alice's task")
	_ = resp.Body.Close()
	require.Eventually(t, idle, 10*time.Second, time.Millisecond, "after a refused request")

	req, err := http.NewRequest(http.MethodGet, streamURL(srv.URL, task), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer mallory")
	if resp, err := srv.Client().Do(req); err == nil {
		_ = resp.Body.Close()
	}
	<-logs
	require.Eventually(t, idle, 10*time.Second, time.Millisecond, "after a panicking request")

	env.Started(t, task)
	resp = get(t, srv.Client(), streamURL(srv.URL, task), "alice", nil)
	br := bufio.NewReader(resp.Body)
	require.Equal(t, "1", readEvent(t, br).EventID)
	env.Emit(t, task, taskbridge.MessagePayload{Message: "m"})
	require.Equal(t, "2", readEvent(t, br).EventID)
	require.Eventually(t, func() bool { return sse.OffloadWaiting(h) > 0 }, 10*time.Second, time.Millisecond,
		"the stream's steps leave a goroutine waiting")
	_ = resp.Body.Close() // the client leaves
	require.Eventually(t, idle, 10*time.Second, time.Millisecond, "after the stream ended")
}
