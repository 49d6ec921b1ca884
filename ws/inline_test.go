package ws_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/internal/wsframe"
	"github.com/taskbridge-go/taskbridge/ws"
)

// inlineSetup serves a handler whose inline deliveries are counted (the
// hook is set before it serves).
func inlineSetup(t *testing.T, cfg ws.Config) (*fixture, *streamtest.Deliveries) {
	t.Helper()
	metrics := &taskbridge.MemoryMetrics{}
	env := streamtest.New(t, streamtest.Options{Metrics: metrics})
	cfg.DisableHeartbeats = true
	h := newHandler(t, env, cfg)
	d := &streamtest.Deliveries{}
	ws.SetDeliverHook(h, d.Hook)
	mux := http.NewServeMux()
	mux.Handle("GET "+ws.DefaultPath, h)
	srv := streamtest.SmallBufferServer(t, mux)
	t.Cleanup(func() { require.NoError(t, h.Shutdown(context.Background())) })
	return &fixture{env: env, h: h, srv: srv, metrics: metrics}, d
}

// untilInline emits small events to task, each read by next (which checks
// its id), until one is written inline: the connection's goroutine has
// parked. It returns the Seq of the last event.
func untilInline(t *testing.T, f *fixture, d *streamtest.Deliveries, task string, seq int, next func(want int)) int {
	t.Helper()
	for d.Sent.Load() == 0 {
		require.Less(t, seq, 1000, "no event was delivered inline")
		seq++
		f.env.Emit(t, task, taskbridge.MessagePayload{Message: "m"})
		next(seq)
	}
	return seq
}

// A subscription that is its task's only subscriber gets each new event
// written by the appending goroutine (memstore reads inline), before the
// append returns; the client gets every event once, in order, then the
// close.
func TestInlineWritesOnTheAppender(t *testing.T) {
	t.Parallel()
	f, d := inlineSetup(t, ws.Config{})
	task := f.env.CreateTask(t, "alice")
	f.env.Started(t, task)
	c := f.subscribed(t, task)
	require.Equal(t, "1", readEvent(t, c).EventID)
	seq := untilInline(t, f, d, task, 1, func(want int) {
		require.Equal(t, strconv.Itoa(want), readEvent(t, c).EventID)
	})
	for range 3 {
		seq++
		before := d.Sent.Load()
		f.env.Emit(t, task, taskbridge.MessagePayload{Message: "m"})
		require.Equal(t, before+1, d.Sent.Load(), "event %d went out before Emit returned", seq)
		require.Equal(t, strconv.Itoa(seq), readEvent(t, c).EventID)
	}
	f.env.Complete(t, task)
	require.Equal(t, strconv.Itoa(seq+1), readEvent(t, c).EventID)
	requireClose(t, c, websocket.StatusNormalClosure)
	require.Zero(t, d.Kept.Load())
}

// When the socket takes only part of an inline delivery (the client
// stopped reading), the rest of the frame is owed: it goes out before any
// other bytes, the library's pong and the close frame included, and the
// events appended meanwhile follow in order.
func TestInlineRemainderGoesFirst(t *testing.T) {
	t.Parallel()
	f, d := inlineSetup(t, ws.Config{})
	task := f.env.CreateTask(t, "alice")
	f.env.Started(t, task)
	c := f.rawClient(t, subscribeFrames(t, task))
	readText := func() taskbridge.TaskEvent {
		op, payload, err := streamtest.ReadServerFrame(c.br)
		require.NoError(t, err)
		require.Equal(t, byte(wsframe.OpText), op)
		var ev taskbridge.TaskEvent
		require.NoError(t, json.Unmarshal(payload, &ev))
		return ev
	}
	readText() // the confirmation
	require.Equal(t, "1", readText().EventID)
	seq := untilInline(t, f, d, task, 1, func(want int) {
		require.Equal(t, strconv.Itoa(want), readText().EventID)
	})

	// The client stops reading; 100 events of 16 KB overflow the socket
	// buffers. A ping sent meanwhile is answered after what is owed.
	big := strings.Repeat("x", 16<<10)
	for i := range 100 {
		f.env.Emit(t, task, taskbridge.MessagePayload{Message: big})
		if i == 50 {
			c.write(t, wsframe.AppendClientFrame(nil, wsframe.OpPing, []byte("p")))
		}
	}
	require.Positive(t, d.Kept.Load(), "no inline delivery found the socket full")
	f.env.Complete(t, task)

	var ids []string
	pongs := 0
	for {
		op, payload, err := streamtest.ReadServerFrame(c.br)
		require.NoError(t, err)
		if op == wsframe.OpClose {
			break
		}
		if op == wsframe.OpPong {
			require.Equal(t, "p", string(payload))
			pongs++
			continue
		}
		require.Equal(t, byte(wsframe.OpText), op)
		var ev taskbridge.TaskEvent
		require.NoError(t, json.Unmarshal(payload, &ev))
		ids = append(ids, ev.EventID)
	}
	var want []string
	for i := seq + 1; i <= seq+101; i++ {
		want = append(want, strconv.Itoa(i))
	}
	require.Equal(t, want, ids)
	require.Equal(t, 1, pongs)
}

// Several tasks on one socket, appended to concurrently: inline deliveries
// of different subscriptions contend for the connection (the losers' frames
// are kept for its goroutine). Every task's events arrive once and in
// order. Every 100 events each appender waits until the client has read
// them all, so that the connection's goroutine parks and the next append
// finds it idle: appends that outrun the connection throughout (a loaded
// machine, the race detector) would otherwise leave it busy for every one
// of them, and nothing would go inline.
func TestInlineMultiplexedConcurrentAppends(t *testing.T) {
	t.Parallel()
	f, d := inlineSetup(t, ws.Config{})
	const tasks, events = 4, 300
	c := f.dial(t, "alice")
	c.SetReadLimit(1 << 20)
	ids := make([]string, tasks)
	for i := range ids {
		ids[i] = f.env.CreateTask(t, "alice")
		f.env.Started(t, ids[i])
		subscribe(t, c, ids[i], nil)
		readConfirm(t, c, ids[i], nil)
		require.Equal(t, "1", readEvent(t, c).EventID)
	}
	var wg sync.WaitGroup
	read := make([]atomic.Int64, tasks) // events read of each task, after the first
	for i, task := range ids {
		wg.Go(func() {
			em := f.env.Svc.Emitter(task)
			ctx := context.Background()
			for n := range events {
				if n > 0 && n%100 == 0 {
					for deadline := time.Now().Add(10 * time.Second); read[i].Load() < int64(n) && time.Now().Before(deadline); {
						time.Sleep(time.Millisecond)
					}
					time.Sleep(time.Millisecond)
				}
				if _, err := em.Emit(ctx, taskbridge.MessagePayload{Message: "m"}); err != nil {
					t.Errorf("emit: %v", err)
					return
				}
			}
			if _, err := em.Emit(ctx, taskbridge.CompletedPayload{Result: map[string]any{"ok": true}}); err != nil {
				t.Errorf("complete: %v", err)
			}
		})
	}
	last := map[string]int{}
	index := map[string]int{}
	for i, task := range ids {
		last[task] = 1
		index[task] = i
	}
	for done := 0; done < tasks; {
		ev := readEvent(t, c)
		n, err := strconv.Atoi(ev.EventID)
		require.NoError(t, err)
		require.Equal(t, last[ev.TaskID]+1, n, "task %s: event %d after %d", ev.TaskID, n, last[ev.TaskID])
		last[ev.TaskID] = n
		read[index[ev.TaskID]].Store(int64(n - 1))
		if ev.Type == taskbridge.EventTaskCompleted {
			done++
		}
	}
	wg.Wait()
	requireClose(t, c, websocket.StatusNormalClosure)
	for _, task := range ids {
		require.Equal(t, events+2, last[task])
	}
	require.Positive(t, d.Sent.Load()+d.Kept.Load(), "no event was delivered inline")
}

// With DisableInlineWrites every event goes out from the connection's
// goroutine.
func TestDisableInlineWrites(t *testing.T) {
	t.Parallel()
	f, d := inlineSetup(t, ws.Config{DisableInlineWrites: true})
	task := f.env.CreateTask(t, "alice")
	f.env.Started(t, task)
	c := f.subscribed(t, task)
	require.Equal(t, "1", readEvent(t, c).EventID)
	for i := 2; i <= 20; i++ {
		f.env.Emit(t, task, taskbridge.MessagePayload{Message: "m"})
		require.Equal(t, strconv.Itoa(i), readEvent(t, c).EventID)
	}
	f.env.Complete(t, task)
	require.Equal(t, "21", readEvent(t, c).EventID)
	requireClose(t, c, websocket.StatusNormalClosure)
	require.Zero(t, d.Sent.Load()+d.Kept.Load())
}
