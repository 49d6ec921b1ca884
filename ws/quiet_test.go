package ws_test

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/internal/goroutinetest"
	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
	"github.com/taskbridge-go/taskbridge/ws"
)

// TestEveryRoundOffloaded serves whole connections (replay, heartbeats, a
// ping, live events, a second subscription, the normal close) with every
// round on a goroutine of the handler's offload pool, as a quiet
// connection's rounds are.
func TestEveryRoundOffloaded(t *testing.T) {
	t.Parallel()
	f := setup(t, ws.Config{HeartbeatInterval: 20 * time.Millisecond})
	ws.SetQuietAfter(f.h, 0)
	a, b := f.env.CreateTask(t, "alice"), f.env.CreateTask(t, "alice")
	started := f.env.Started(t, a)

	c := f.subscribed(t, a)
	require.Equal(t, started.EventID, readEvent(t, c).EventID)
	protocoltest.ValidateHeartbeat(t, read(t, c))
	pong := make(chan error, 1)
	go func() { pong <- c.Ping(testCtx(t)) }()
	// Reading lets the pong through, which may come after the next
	// heartbeats.
	for answered := false; !answered; {
		select {
		case err := <-pong:
			require.NoError(t, err)
			answered = true
		default:
			protocoltest.ValidateHeartbeat(t, read(t, c))
		}
	}

	subscribe(t, c, b, nil)
	readConfirm(t, c, b, nil)
	f.env.Progress(t, a, 0.5)
	f.env.Complete(t, a)
	f.env.Complete(t, b)
	ends := 0
	for ends < 2 {
		msg := read(t, c)
		if strings.Contains(string(msg), `"TASK_COMPLETED"`) {
			ends++
		}
	}
	requireClose(t, c, websocket.StatusNormalClosure)
	require.Eventually(t, func() bool { return f.active() == 0 }, 5*time.Second, time.Millisecond)
}

// The goroutines the handler keeps for quiet connections' rounds wait only
// while it has connections.
func TestOffloadPoolReleased(t *testing.T) {
	t.Parallel()
	f := setup(t, ws.Config{})
	ws.SetQuietAfter(f.h, 0)
	task := f.env.CreateTask(t, "alice")
	c := f.subscribed(t, task)
	f.env.Started(t, task)
	readEvent(t, c)
	require.Eventually(t, func() bool { return ws.OffloadWaiting(f.h) > 0 }, 10*time.Second, time.Millisecond,
		"the connection's rounds leave a goroutine waiting")
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
	require.Eventually(t, func() bool { return ws.OffloadWaiting(f.h) == 0 && f.active() == 0 }, 10*time.Second, time.Millisecond,
		"after the connection closed")
}

// stackPolicy is taskbridge.OwnerOnly that records, on each access check,
// whether it runs on a goroutine of the connection itself (inside run) or
// on one of the offload pool.
type stackPolicy struct {
	taskbridge.OwnerOnly
	mu     sync.Mutex
	onConn []bool
}

func (p *stackPolicy) CanAccess(ctx context.Context, auth taskbridge.AuthContext, task taskbridge.Task) error {
	on := onConnection()
	p.mu.Lock()
	p.onConn = append(p.onConn, on)
	p.mu.Unlock()
	return p.OwnerOnly.CanAccess(ctx, auth, task)
}

func (p *stackPolicy) seen() []bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]bool(nil), p.onConn...)
}

// onConnection reports whether the caller runs on a connection's own
// goroutine (inside serve) rather than on one of the offload pool.
func onConnection() bool {
	buf := make([]byte, 64<<10)
	return strings.Contains(string(buf[:runtime.Stack(buf, false)]), "ws.(*conn).serve(")
}

// TestQuietRoundsRunOffTheConnection checks where rounds run: subscribe
// frames are always handled on the offload pool, busy connection or not
// (a client subscribing to one task after another would otherwise grow
// the connection's stack for good); the rounds that write events run on
// the connection's own goroutine while it is busy, on the pool once it
// has been quiet for quietAfter.
func TestQuietRoundsRunOffTheConnection(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		quietAfter time.Duration
		busy       bool // event rounds run on the connection's goroutine
	}{
		{"busy after the first confirmation", time.Hour, true},
		{"always quiet", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			policy := &stackPolicy{}
			// Without inline writes, every event goes out in a round.
			f := setupWith(t, ws.Config{DisableInlineWrites: true, DisableHeartbeats: true},
				streamtest.Options{Ownership: policy})
			ws.SetQuietAfter(f.h, tc.quietAfter)
			var mu sync.Mutex
			var rounds []bool
			ws.SetRoundHook(f.h, func() {
				on := onConnection()
				mu.Lock()
				rounds = append(rounds, on)
				mu.Unlock()
			})
			tasks := []string{f.env.CreateTask(t, "alice"), f.env.CreateTask(t, "alice")}
			c := f.dial(t, "alice")
			for _, task := range tasks {
				subscribe(t, c, task, nil)
				readConfirm(t, c, task, nil)
			}
			require.Equal(t, []bool{false, false}, policy.seen(), "subscribe frames handled on the connection's goroutine")

			mu.Lock()
			subscribed := len(rounds)
			mu.Unlock()
			started := f.env.Started(t, tasks[0])
			require.Equal(t, started.EventID, readEvent(t, c).EventID)
			for i := range 3 {
				f.env.Progress(t, tasks[0], float64(i+1)/4)
				readEvent(t, c)
			}
			mu.Lock()
			events := slices.Clone(rounds[subscribed:])
			mu.Unlock()
			require.NotEmpty(t, events)
			for i, on := range events {
				require.Equal(t, tc.busy, on, "event round %d of %v on the connection's goroutine", i, events)
			}
		})
	}
}

// TestQuietConnectionMovesOn: a connection whose rounds ran on its own
// goroutine while it was busy moves on to a new goroutine (on the smallest
// stack) at its first quiet round; a connection that stays busy, or stays
// quiet, keeps its goroutine. Not parallel: it looks at every goroutine of
// the process.
func TestQuietConnectionMovesOn(t *testing.T) {
	f := setup(t, ws.Config{DisableHeartbeats: true, DisableInlineWrites: true})
	const quiet = 500 * time.Millisecond
	ws.SetQuietAfter(f.h, quiet)
	task := f.env.CreateTask(t, "alice")
	c := f.subscribed(t, task)
	// serving returns the goroutine serving the connection, once it is the
	// only one and waits for work in serve itself (a goroutine moving on
	// to another is on its way out, and the new one may not have run yet).
	serving := func() uint64 {
		t.Helper()
		var gs []goroutinetest.Goroutine
		require.Eventually(t, func() bool {
			gs = goroutinetest.Find("ws.(*conn).serve")
			return len(gs) == 1 && gs[0].WaitsIn("ws.(*conn).serve", "chan receive")
		}, 5*time.Second, time.Millisecond, "one goroutine serves the connection, waiting in serve")
		return gs[0].ID
	}
	f.env.Started(t, task)
	readEvent(t, c)
	first := serving()
	for i := range 3 { // busy: rounds on the connection's goroutine
		f.env.Progress(t, task, float64(i+1)/10)
		readEvent(t, c)
	}
	require.Equal(t, first, serving(), "a busy connection keeps its goroutine")

	time.Sleep(quiet + 50*time.Millisecond)
	f.env.Progress(t, task, 0.5)
	readEvent(t, c)
	moved := serving()
	require.NotEqual(t, first, moved, "the first quiet round after busy ones moves the connection on")

	time.Sleep(quiet + 50*time.Millisecond)
	f.env.Progress(t, task, 0.6)
	readEvent(t, c)
	require.Equal(t, moved, serving(), "a quiet round after quiet ones does not")

	f.env.Complete(t, task)
	readEvent(t, c)
	requireClose(t, c, websocket.StatusNormalClosure)
	require.Eventually(t, func() bool { return f.active() == 0 && len(goroutinetest.Find("ws.(*conn).serve")) == 0 }, 5*time.Second, time.Millisecond)
}
