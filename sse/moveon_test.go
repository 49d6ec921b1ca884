package sse_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/sse"
)

// openRaw opens a stream of task as alice on a plain TCP connection (no
// client goroutines) and returns its reader, past the response head.
func openRaw(t *testing.T, f *fixture, task string) *bufio.Reader {
	t.Helper()
	c, err := net.Dial("tcp", f.srv.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(time.Minute)))
	_, err = fmt.Fprintf(c, "GET /api/v1/tasks/%s/events/stream HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer alice\r\n\r\n", task)
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return br
}

// streamGoroutines returns the ids of the goroutines running hijacked
// streams' loops (run, or resume waiting to run) and whether each waits
// for work there, not inside a call it makes (a step on the offload pool).
func streamGoroutines() (ids []string, waiting []bool) {
	buf := make([]byte, 1<<20)
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if !strings.Contains(g, "sse.(*stream).run") && !strings.Contains(g, "sse.(*stream).resume") {
			continue
		}
		lines := strings.Split(g, "\n")
		id, _, _ := strings.Cut(strings.TrimPrefix(lines[0], "goroutine "), " ")
		ids = append(ids, id)
		inLoop := false
		for _, l := range lines[1:] {
			if !strings.HasPrefix(l, "\t") && !strings.HasPrefix(l, "runtime.") {
				inLoop = strings.Contains(l, "sse.(*stream).run(") || strings.Contains(l, "sse.(*stream).resume(")
				break
			}
		}
		waiting = append(waiting, inLoop && (strings.Contains(lines[0], "[chan receive") || strings.Contains(lines[0], "[select")))
	}
	return ids, waiting
}

// TestQuietHijackedStreamMovesOn: a hijacked stream whose steps ran on its
// own goroutine while it was busy moves on to a new goroutine (on the
// smallest stack) at its first quiet step; one that stays busy, or stays
// quiet, keeps its goroutine. Not parallel: it looks at every goroutine
// of the process.
func TestQuietHijackedStreamMovesOn(t *testing.T) {
	f := setup(t, sse.Config{Hijack: true, DisableInlineWrites: true, DisableHeartbeats: true}, streamtest.Options{})
	const quiet = 500 * time.Millisecond
	sse.SetQuietAfter(f.h, quiet)
	task := f.env.CreateTask(t, "alice")
	br := openRaw(t, f, task)
	serving := func() string {
		t.Helper()
		var ids []string
		require.Eventually(t, func() bool {
			var waiting []bool
			ids, waiting = streamGoroutines()
			return len(ids) == 1 && waiting[0]
		}, 5*time.Second, time.Millisecond, "one goroutine runs the stream, waiting: %v", ids)
		return ids[0]
	}
	f.env.Started(t, task)
	readEvent(t, br)
	first := serving()
	for i := range 3 { // busy: steps on the stream's goroutine
		f.env.Progress(t, task, float64(i+1)/10)
		readEvent(t, br)
	}
	require.Equal(t, first, serving(), "a busy stream keeps its goroutine")

	time.Sleep(quiet + 50*time.Millisecond)
	f.env.Progress(t, task, 0.5)
	readEvent(t, br)
	moved := serving()
	require.NotEqual(t, first, moved, "the first quiet step after busy ones moves the stream on")

	time.Sleep(quiet + 50*time.Millisecond)
	f.env.Progress(t, task, 0.6)
	readEvent(t, br)
	require.Equal(t, moved, serving(), "a quiet step after quiet ones does not")

	// The moved stream goes on to its end, and nothing of it stays.
	f.env.Complete(t, task)
	ev := readEvent(t, br)
	require.True(t, ev.Terminal())
	require.Eventually(t, func() bool { ids, _ := streamGoroutines(); return len(ids) == 0 }, 5*time.Second, time.Millisecond)
}

// A moved stream still notices its client leaving while it waits.
func TestMovedHijackedStreamNoticesTheClientLeaving(t *testing.T) {
	f := setup(t, sse.Config{Hijack: true, DisableInlineWrites: true, DisableHeartbeats: true}, streamtest.Options{})
	sse.SetQuietAfter(f.h, 100*time.Millisecond)
	task := f.env.CreateTask(t, "alice")
	c, err := net.Dial("tcp", f.srv.Listener.Addr().String())
	require.NoError(t, err)
	_, err = fmt.Fprintf(c, "GET /api/v1/tasks/%s/events/stream HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer alice\r\n\r\n", task)
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	f.env.Started(t, task)
	readEvent(t, br)
	f.env.Progress(t, task, 0.1) // busy
	readEvent(t, br)
	before, _ := streamGoroutines()
	time.Sleep(150 * time.Millisecond)
	f.env.Progress(t, task, 0.2) // quiet: moves on
	readEvent(t, br)
	require.Eventually(t, func() bool {
		ids, waiting := streamGoroutines()
		return len(ids) == 1 && waiting[0] && !slices.Equal(ids, before)
	}, 5*time.Second, time.Millisecond)
	require.NoError(t, c.Close())
	require.Eventually(t, func() bool { ids, _ := streamGoroutines(); return len(ids) == 0 }, 5*time.Second, time.Millisecond,
		"the stream ends when its client leaves")
}
