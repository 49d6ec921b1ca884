package sse_test

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
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

// writeCounter is host middleware's ResponseWriter that counts the writes
// that go through net/http's response buffer (Write) and around it
// (ReadFrom).
type writeCounter struct {
	http.ResponseWriter
	writes, readFroms atomic.Int64
}

func (w *writeCounter) Write(b []byte) (int, error) {
	w.writes.Add(1)
	return w.ResponseWriter.Write(b)
}

func (w *writeCounter) ReadFrom(r io.Reader) (int64, error) {
	w.readFroms.Add(1)
	return w.ResponseWriter.(io.ReaderFrom).ReadFrom(r)
}

func (w *writeCounter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TestQuietWritesGoAroundTheResponseBuffer checks which of a stream's writes
// inside ServeHTTP go around net/http's response buffer, so that an idle
// stream never touches it: a quiet stream's batches and every heartbeat; a
// busy stream's batches go through it.
func TestQuietWritesGoAroundTheResponseBuffer(t *testing.T) {
	t.Parallel()
	for _, quiet := range []bool{true, false} {
		t.Run(fmt.Sprint("quiet=", quiet), func(t *testing.T) {
			t.Parallel()
			env := streamtest.New(t, streamtest.Options{})
			h := newHandler(t, env, sse.Config{HeartbeatInterval: 20 * time.Millisecond, Retry: time.Second})
			if quiet {
				sse.SetQuietAfter(h, 0) // every step is a quiet stream's
			} else {
				sse.SetQuietAfter(h, time.Hour) // only the first step is
			}
			counters := make(chan *writeCounter, 1)
			srv := serve(t, h, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				wc := &writeCounter{ResponseWriter: w}
				counters <- wc
				h.ServeHTTP(wc, r)
			}))
			task := env.CreateTask(t, "alice")
			env.Started(t, task)
			resp := get(t, srv.Client(), streamURL(srv.URL, task), "alice", nil)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			wc := <-counters
			br := bufio.NewReader(resp.Body)
			fr, err := streamtest.ReadSSE(br)
			require.NoError(t, err)
			require.Equal(t, "1000", fr.Retry)
			readEvent(t, br)
			require.Zero(t, wc.writes.Load(), "the first step's batch (head and replay) is quiet")
			readHeartbeat(t, br, task)
			require.Zero(t, wc.writes.Load(), "heartbeats are quiet")
			around := wc.readFroms.Load()
			require.GreaterOrEqual(t, around, int64(2))

			ev := env.Progress(t, task, 0.5)
			require.Equal(t, ev.EventID, nextEventID(t, br))
			if quiet {
				require.Zero(t, wc.writes.Load(), "a quiet stream's batch")
				require.Greater(t, wc.readFroms.Load(), around, "a quiet stream's batch")
			} else {
				require.Positive(t, wc.writes.Load(), "a busy stream's batch")
			}
			done := env.Complete(t, task)
			require.Equal(t, done.EventID, nextEventID(t, br))
			requireEnd(t, br)
		})
	}
}

// TestBusyStreamsWaitOnTheirSubscriptionAlone: a stream that sends from its
// own goroutine waits for its subscription alone, with the end of the
// request registered to wake it, so that a client leaving is still noticed
// at once; once it has been quiet for quietAfter it waits in a select
// again, with nothing registered (a stream that has never been busy never
// registers anything).
func TestBusyStreamsWaitOnTheirSubscriptionAlone(t *testing.T) {
	t.Parallel()
	forEachMode(t, sse.Config{DisableInlineWrites: true}, func(t *testing.T, cfg sse.Config) {
		const quietAfter = 300 * time.Millisecond
		metrics := &taskbridge.MemoryMetrics{}
		env := streamtest.New(t, streamtest.Options{Metrics: metrics})
		h := newHandler(t, env, cfg)
		sse.SetQuietAfter(h, quietAfter)
		var busy atomic.Bool
		var waits atomic.Int64
		sse.SetWaitHook(h, func(b bool) {
			busy.Store(b)
			waits.Add(1)
		})
		mux := http.NewServeMux()
		mux.Handle(sse.DefaultPattern, h)
		f := &fixture{env: env, h: h, srv: serve(t, h, mux)}
		task := env.CreateTask(t, "alice")
		resp, cancel := f.openCancelable(t, task)
		br := bufio.NewReader(resp.Body)
		require.Eventually(t, func() bool { return waits.Load() > 0 }, 10*time.Second, time.Millisecond)
		require.False(t, busy.Load(), "a stream that has sent only its head")
		require.Equal(t, env.Started(t, task).EventID, nextEventID(t, br))

		// becomeBusy delivers events until the stream waits as a busy one.
		becomeBusy := func() {
			t.Helper()
			for range 50 {
				n := waits.Load()
				ev := env.Emit(t, task, taskbridge.MessagePayload{Message: "m"})
				require.Equal(t, ev.EventID, nextEventID(t, br))
				require.Eventually(t, func() bool { return waits.Load() > n }, 10*time.Second, time.Millisecond)
				if busy.Load() {
					return
				}
			}
			t.Fatal("the stream never waited as a busy one")
		}
		becomeBusy()

		// Quiet for longer than quietAfter (the input here is time
		// itself): the next step is a quiet one and unregisters.
		time.Sleep(2 * quietAfter)
		n := waits.Load()
		ev := env.Emit(t, task, taskbridge.MessagePayload{Message: "after a pause"})
		require.Equal(t, ev.EventID, nextEventID(t, br))
		require.Eventually(t, func() bool { return waits.Load() > n }, 10*time.Second, time.Millisecond)
		require.False(t, busy.Load(), "after a quiet step")

		// Busy again, then the client leaves: the stream ends without
		// waiting for an event or a heartbeat.
		becomeBusy()
		cancel()
		require.Eventually(t, func() bool { return activeStreams(metrics)() == 0 }, 5*time.Second, time.Millisecond)
	})
}
