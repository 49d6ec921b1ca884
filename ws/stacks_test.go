//go:build unix && !race

package ws_test

import (
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/internal/goroutinetest"
	"github.com/taskbridge-go/taskbridge/internal/wsframe"
	"github.com/taskbridge-go/taskbridge/ws"
)

// TestIdleConnectionStackAllocations: a connection that subscribed to
// tasks and sent pings and pongs, then went idle, keeps its two goroutines
// on the smallest stacks (2 KiB each; more than 5.75 KiB per connection
// means one of them grew): the library's reads and the subscribe rounds
// ran on the offload pool, the control frames were answered outside the
// library. That holds whether the client's frames came one per write or
// several together (with the handshake, or in one write after it), which
// the library buffers. Before, such a connection held 8–9 KiB of stacks.
// Not parallel, and not under the race detector, which needs bigger
// stacks.
func TestIdleConnectionStackAllocations(t *testing.T) {
	ping := func(p string) []byte { return wsframe.AppendClientFrame(nil, wsframe.OpPing, []byte(p)) }
	for _, tc := range []struct {
		name  string
		tasks int
		run   func(t *testing.T, f *fixture, tasks []string) // connects, subscribes to tasks
	}{
		{"one frame per write", 2, func(t *testing.T, f *fixture, tasks []string) {
			c := f.rawClient(t, subscribeFrames(t, tasks[0]))
			confirmedThen(t, subscribeFrames(t, tasks[1]))(c)
			confirmedThen(t, ping("ping"))(c)
			readPong(t, c, []byte("ping"))
			c.write(t, wsframe.AppendClientFrame(nil, wsframe.OpPong, nil))
		}},
		{"frames together", 4, func(t *testing.T, f *fixture, tasks []string) {
			c := f.rawClient(t, slices.Concat(subscribeFrames(t, tasks[0]), ping("with the handshake"), subscribeFrames(t, tasks[1])))
			require.Equal(t, []string{"with the handshake"}, readConfirmedAndPongs(t, c, 2, 1))
			c.write(t, slices.Concat(subscribeFrames(t, tasks[2], tasks[3]), ping("after")))
			require.Equal(t, []string{"after"}, readConfirmedAndPongs(t, c, 2, 1))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t, ws.Config{DisableHeartbeats: true})
			const n = 400
			tasks := make([]string, tc.tasks*n)
			for i := range tasks {
				tasks[i] = f.env.CreateTask(t, "alice")
			}
			before := goroutinetest.StackInuse()
			goroutines := runtime.NumGoroutine()
			for i := range n {
				tc.run(t, f, tasks[i*tc.tasks:(i+1)*tc.tasks])
			}
			// Let every connection settle into its wait (the last frame
			// may be read after the last answer the client saw).
			time.Sleep(100 * time.Millisecond)
			perConn := float64(goroutinetest.StackInuse()-before) / n
			t.Logf("%.0f B of stacks per connection, %.2f goroutines", perConn, float64(runtime.NumGoroutine()-goroutines)/n)
			require.Less(t, perConn, 5.75*1024, "bytes of goroutine stacks per idle connection")
		})
	}
}

// TestBusyConnectionStackAllocations: connections whose rounds ran on
// their own goroutine while busy (no inline writes: each event is a
// round), which grows its stack, are back on the smallest stacks once a
// round finds them quiet: the connection moves on to a new goroutine.
func TestBusyConnectionStackAllocations(t *testing.T) {
	f := setup(t, ws.Config{DisableHeartbeats: true, DisableInlineWrites: true})
	ws.SetQuietAfter(f.h, 200*time.Millisecond)
	const n = 400
	tasks := make([]string, n)
	for i := range tasks {
		tasks[i] = f.env.CreateTask(t, "alice")
	}
	before := goroutinetest.StackInuse()
	clients := make([]*rawClient, n)
	for i := range n {
		clients[i] = f.rawClient(t, subscribeFrames(t, tasks[i]))
		confirmedThen(t, nil)(clients[i])
	}
	readEvents := func(c *rawClient, k int) {
		for range k {
			op, payload, err := streamtest.ReadServerFrame(c.br)
			require.NoError(t, err)
			require.Equal(t, byte(wsframe.OpText), op, "%s", payload)
		}
	}
	// Busy: events one right after the other, each read before the next.
	for i, c := range clients {
		f.env.Started(t, tasks[i])
		readEvents(c, 1)
		for k := range 4 {
			f.env.Progress(t, tasks[i], float64(k+1)/10)
			readEvents(c, 1)
		}
	}
	time.Sleep(300 * time.Millisecond)
	// Quiet: the next round moves each connection to a new goroutine.
	for i, c := range clients {
		f.env.Progress(t, tasks[i], 0.9)
		readEvents(c, 1)
	}
	time.Sleep(100 * time.Millisecond)
	perConn := float64(goroutinetest.StackInuse()-before) / n
	t.Logf("%.0f B of stacks per connection", perConn)
	require.Less(t, perConn, 5.75*1024, "bytes of goroutine stacks per connection gone quiet")
}
