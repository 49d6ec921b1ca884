package sse_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/internal/goroutinetest"
	"github.com/taskbridge-go/taskbridge/sse"
)

// openRaw opens a stream of task as alice on a plain TCP connection (no
// client goroutines) and returns the connection and its reader, past the
// response head.
func openRaw(t *testing.T, f *fixture, task string) (net.Conn, *bufio.Reader) {
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
	return c, br
}

// streamLoops returns the goroutines running hijacked streams' loops: run,
// or resume waiting to run.
func streamLoops() []goroutinetest.Goroutine {
	gs := goroutinetest.Find("sse.(*stream).run")
	for _, g := range goroutinetest.Find("sse.(*stream).resume") {
		if !slices.ContainsFunc(gs, func(o goroutinetest.Goroutine) bool { return o.ID == g.ID }) {
			gs = append(gs, g) // waiting in resume, not yet in run
		}
	}
	return gs
}

// waitingLoop returns the goroutine running the only hijacked stream, once
// it waits for work in its loop itself (a goroutine moving the stream on
// is on its way out, and the new one may not have run yet).
func waitingLoop(t *testing.T) uint64 {
	t.Helper()
	var gs []goroutinetest.Goroutine
	require.Eventually(t, func() bool {
		gs = streamLoops()
		return len(gs) == 1 && (gs[0].WaitsIn("sse.(*stream).run", "chan receive", "select") ||
			gs[0].WaitsIn("sse.(*stream).resume", "chan receive", "select"))
	}, 5*time.Second, time.Millisecond, "one goroutine runs the stream, waiting in its loop")
	return gs[0].ID
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
	_, br := openRaw(t, f, task)
	f.env.Started(t, task)
	readEvent(t, br)
	first := waitingLoop(t)
	for i := range 3 { // busy: steps on the stream's goroutine
		f.env.Progress(t, task, float64(i+1)/10)
		readEvent(t, br)
	}
	require.Equal(t, first, waitingLoop(t), "a busy stream keeps its goroutine")

	time.Sleep(quiet + 50*time.Millisecond)
	f.env.Progress(t, task, 0.5)
	readEvent(t, br)
	moved := waitingLoop(t)
	require.NotEqual(t, first, moved, "the first quiet step after busy ones moves the stream on")

	time.Sleep(quiet + 50*time.Millisecond)
	f.env.Progress(t, task, 0.6)
	readEvent(t, br)
	require.Equal(t, moved, waitingLoop(t), "a quiet step after quiet ones does not")

	// The moved stream goes on to its end, and nothing of it stays.
	f.env.Complete(t, task)
	ev := readEvent(t, br)
	require.True(t, ev.Terminal())
	require.Eventually(t, func() bool { return len(streamLoops()) == 0 }, 5*time.Second, time.Millisecond)
}

// A moved stream still notices its client leaving while it waits.
func TestMovedHijackedStreamNoticesTheClientLeaving(t *testing.T) {
	f := setup(t, sse.Config{Hijack: true, DisableInlineWrites: true, DisableHeartbeats: true}, streamtest.Options{})
	sse.SetQuietAfter(f.h, 100*time.Millisecond)
	task := f.env.CreateTask(t, "alice")
	c, br := openRaw(t, f, task)
	f.env.Started(t, task)
	readEvent(t, br)
	f.env.Progress(t, task, 0.1) // busy
	readEvent(t, br)
	before := waitingLoop(t)
	time.Sleep(150 * time.Millisecond)
	f.env.Progress(t, task, 0.2) // quiet: moves on
	readEvent(t, br)
	require.NotEqual(t, before, waitingLoop(t))
	require.NoError(t, c.Close())
	require.Eventually(t, func() bool { return len(streamLoops()) == 0 }, 5*time.Second, time.Millisecond,
		"the stream ends when its client leaves")
}
