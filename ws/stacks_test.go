//go:build unix && !race

package ws_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/wsframe"
	"github.com/taskbridge-go/taskbridge/ws"
)

// stackInuse returns the bytes of goroutine stacks after two collections,
// which give back what stacks can shrink.
func stackInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.StackInuse
}

// TestIdleConnectionStackAllocations: a connection that subscribed to two
// tasks one after the other and sent a ping and a pong, then went idle,
// keeps its two goroutines on the smallest stacks (2 KiB each; more than
// 5.75 KiB per connection means one of them grew): the
// library's reads and the subscribe rounds ran on the offload pool, the
// control frames were answered outside the library. Before, such a
// connection held 8–9 KiB of stacks. Not parallel, and not under the race
// detector, which needs bigger stacks.
func TestIdleConnectionStackAllocations(t *testing.T) {
	f := setup(t, ws.Config{DisableHeartbeats: true})
	const n = 400
	tasks := make([]string, 2*n)
	for i := range tasks {
		tasks[i] = f.env.CreateTask(t, "alice")
	}
	before := stackInuse()
	goroutines := runtime.NumGoroutine()
	for i := range n {
		c := f.rawClient(t, subscribeFrames(t, tasks[2*i]))
		confirmedThen(t, subscribeFrames(t, tasks[2*i+1]))(c)
		confirmedThen(t, wsframe.AppendClientFrame(nil, wsframe.OpPing, []byte("ping")))(c)
		readPong(t, c, []byte("ping"))
		c.write(t, wsframe.AppendClientFrame(nil, wsframe.OpPong, nil))
	}
	// Let every connection settle into its wait (the pong is read after
	// the last answer the client saw).
	time.Sleep(100 * time.Millisecond)
	perConn := float64(stackInuse()-before) / n
	t.Logf("%.0f B of stacks per connection, %.2f goroutines", perConn, float64(runtime.NumGoroutine()-goroutines)/n)
	require.Less(t, perConn, 5.75*1024, "bytes of goroutine stacks per idle connection")
}
