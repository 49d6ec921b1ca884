//go:build unix && !race

package sse_test

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/internal/goroutinetest"
	"github.com/taskbridge-go/taskbridge/sse"
)

// TestBusyHijackedStreamStackAllocations: hijacked streams whose steps ran
// on their own goroutine while busy (no inline writes: each event is a
// step), which grows its stack, give that stack back once a step finds
// them quiet: the stream moves on to a new goroutine. 400 such streams
// held 8.1-8.4 KiB of stacks each before, 4.2-6.2 KiB now: the runtime
// starts a new goroutine with the average stack size it has seen, which in
// a test process run alone is 4 KiB for some of them (4.4-4.5 KiB with
// GODEBUG=adaptivestackstart=0). Not parallel, and not under the race
// detector, which needs bigger stacks.
func TestBusyHijackedStreamStackAllocations(t *testing.T) {
	f := setup(t, sse.Config{Hijack: true, DisableInlineWrites: true, DisableHeartbeats: true}, streamtest.Options{})
	sse.SetQuietAfter(f.h, 200*time.Millisecond)
	const n = 400
	tasks := make([]string, n)
	for i := range tasks {
		tasks[i] = f.env.CreateTask(t, "alice")
	}
	before := goroutinetest.StackInuse()
	streams := make([]*bufio.Reader, n)
	for i := range streams {
		_, streams[i] = openRaw(t, f, tasks[i])
	}
	// Busy: events one right after the other, each read before the next.
	for i, br := range streams {
		f.env.Started(t, tasks[i])
		skipEvent(t, br)
		for k := range 4 {
			f.env.Progress(t, tasks[i], float64(k+1)/10)
			skipEvent(t, br)
		}
	}
	time.Sleep(300 * time.Millisecond)
	// Quiet: the next step moves each stream to a new goroutine.
	for i, br := range streams {
		f.env.Progress(t, tasks[i], 0.9)
		skipEvent(t, br)
	}
	time.Sleep(100 * time.Millisecond)
	perStream := float64(goroutinetest.StackInuse()-before) / n
	t.Logf("%.0f B of stacks per stream", perStream)
	require.Less(t, perStream, 7.25*1024, "bytes of goroutine stacks per stream gone quiet")
}

// skipEvent reads the next event frame without checking it against the
// protocol's schemas (as readEvent does, at a cost that would dominate the
// test).
func skipEvent(t *testing.T, br *bufio.Reader) {
	t.Helper()
	id := false
	for {
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		if line == "\n" && id {
			return
		}
		id = id || strings.HasPrefix(line, "id: ")
	}
}
