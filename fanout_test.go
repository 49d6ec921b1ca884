package taskbridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
)

func seqs(frames []*taskbridge.Frame) []int64 {
	out := make([]int64, len(frames))
	for i, f := range frames {
		out[i] = f.Event.Seq
	}
	return out
}

// requireSeqs compares sequences without dumping thousands of numbers.
func requireSeqs(t *testing.T, want, got []int64, msgAndArgs ...any) {
	t.Helper()
	for i := range min(len(want), len(got)) {
		if want[i] != got[i] {
			t.Fatalf("%s: at index %d want %d, got %d", fmt.Sprint(msgAndArgs...), i, want[i], got[i])
		}
	}
	if len(want) != len(got) {
		t.Fatalf("%s: want %d events, got %d", fmt.Sprint(msgAndArgs...), len(want), len(got))
	}
}

// next calls Next until it returns at least one frame or an error.
func next(t *testing.T, sub *taskbridge.Subscription) ([]*taskbridge.Frame, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		frames, err := sub.Next(ctx, nil)
		if len(frames) > 0 || err != nil {
			return frames, err
		}
		select {
		case <-sub.Ready():
		case <-ctx.Done():
			t.Fatal("no frames arrived")
		}
	}
}

func TestSubscribeReplayThenLive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	id := e.started(t, alice, "c")
	for i := range 3 {
		e.emit(t, id, taskbridge.ProgressPayload{Progress: float64(i * 30), Stage: "s"})
	}

	sub, err := e.svc.Subscribe(ctx, alice, id, "", taskbridge.SubscribeOpts{Transport: "sse"})
	require.NoError(t, err)
	require.Equal(t, id, sub.TaskID())
	require.EqualValues(t, 1, e.metrics.Value(taskbridge.MetricStreamsActive, taskbridge.Label{Name: "transport", Value: "sse"}))

	frames, err := next(t, sub)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3, 4}, seqs(frames))
	for _, f := range frames {
		var decoded taskbridge.TaskEvent
		require.NoError(t, json.Unmarshal(f.JSON, &decoded))
		require.Equal(t, f.Event.EventID, decoded.EventID)
		require.Equal(t, f.Event.Type, decoded.Type)
		require.JSONEq(t, string(f.Event.Payload), string(decoded.Payload))
		require.True(t, f.Event.CreatedAt.Equal(decoded.CreatedAt))
		validateEvents(t, decoded)
	}

	// Nothing new: Next returns no frames and no error.
	more, err := sub.Next(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, more)

	e.emit(t, id, taskbridge.MessagePayload{Message: "live"})
	frames, err = next(t, sub)
	require.NoError(t, err)
	require.Equal(t, []int64{5}, seqs(frames))

	e.emit(t, id, taskbridge.CompletedPayload{Result: map[string]any{"ok": true}})
	frames, err = next(t, sub)
	require.NoError(t, err)
	require.Equal(t, []int64{6}, seqs(frames))
	require.True(t, frames[0].Event.Terminal())
	_, err = sub.Next(ctx, nil)
	require.ErrorIs(t, err, io.EOF)

	sub.Close()
	sub.Close()
	require.Zero(t, e.metrics.Value(taskbridge.MetricStreamsActive, taskbridge.Label{Name: "transport", Value: "sse"}))
	_, err = sub.Next(ctx, nil)
	require.ErrorIs(t, err, taskbridge.ErrClosed)
}

func TestSubscribeCursors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t, func(_ *taskbridge.Config, m *memstore.Config) { m.MaxEventsPerTask = 5 })
	id := e.started(t, alice, "c")
	for range 11 {
		e.emit(t, id, taskbridge.MessagePayload{Message: "m"})
	}
	// 12 events, 8..12 retained.
	_, err := e.svc.Subscribe(ctx, alice, id, "x", taskbridge.SubscribeOpts{})
	require.ErrorIs(t, err, taskbridge.ErrInvalidCursor)
	_, err = e.svc.Subscribe(ctx, alice, id, "13", taskbridge.SubscribeOpts{})
	require.ErrorIs(t, err, taskbridge.ErrInvalidCursor)
	_, err = e.svc.Subscribe(ctx, alice, id, "6", taskbridge.SubscribeOpts{})
	require.ErrorIs(t, err, taskbridge.ErrEventsExpired)

	sub, err := e.svc.Subscribe(ctx, alice, id, "9", taskbridge.SubscribeOpts{})
	require.NoError(t, err)
	defer sub.Close()
	frames, err := next(t, sub)
	require.NoError(t, err)
	require.Equal(t, []int64{10, 11, 12}, seqs(frames))
	require.EqualValues(t, 1, e.metrics.Value(taskbridge.MetricReplays))
}

func TestSubscribeTerminal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	id := e.started(t, alice, "c")
	e.emit(t, id, taskbridge.CompletedPayload{Result: nil})

	sub, err := e.svc.Subscribe(ctx, alice, id, "1", taskbridge.SubscribeOpts{})
	require.NoError(t, err)
	frames := drain(t, sub)
	require.Equal(t, []int64{2}, seqs(frames))
	sub.Close()

	// Resuming after the terminal event ends at once.
	sub, err = e.svc.Subscribe(ctx, alice, id, "2", taskbridge.SubscribeOpts{})
	require.NoError(t, err)
	defer sub.Close()
	_, err = sub.Next(ctx, nil)
	require.ErrorIs(t, err, io.EOF)
}

// TestFanOutExactlyOnce runs many subscribers against a fast appender and
// checks each sees every event once, in order, including one that falls far
// behind the live window and must catch up from the store.
func TestFanOutExactlyOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t, func(c *taskbridge.Config, _ *memstore.Config) { c.ReplayBatch = 64 })
	id := e.started(t, alice, "c")
	const perAppender = 1250
	const total = 2 + 4*perAppender // several times the live window

	const subscribers = 8
	results := make([][]int64, subscribers)
	var wg sync.WaitGroup
	for i := range subscribers {
		sub, err := e.svc.Subscribe(ctx, alice, id, "", taskbridge.SubscribeOpts{Transport: "ws"})
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sub.Close()
			for _, f := range drain(t, sub) {
				results[i] = append(results[i], f.Event.Seq)
			}
		}()
	}

	// The laggard joins the live window, then reads nothing until the
	// appender is done.
	lag, err := e.svc.Subscribe(ctx, alice, id, "", taskbridge.SubscribeOpts{})
	require.NoError(t, err)
	defer lag.Close()
	first, err := next(t, lag)
	require.NoError(t, err)
	require.Equal(t, []int64{1}, seqs(first))

	var appenders sync.WaitGroup
	for w := range 4 {
		appenders.Add(1)
		go func() {
			defer appenders.Done()
			for i := range perAppender {
				if _, err := e.svc.Emitter(id).Emit(ctx, taskbridge.MessagePayload{Message: fmt.Sprintf("%d-%d", w, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	appenders.Wait()
	e.emit(t, id, taskbridge.CompletedPayload{Result: total})
	wg.Wait()

	want := make([]int64, total)
	for i := range want {
		want[i] = int64(i + 1)
	}
	for i, got := range results {
		requireSeqs(t, want, got, "subscriber ", i)
	}
	rest := drain(t, lag)
	requireSeqs(t, want[1:], seqs(rest), "the laggard catches up from the store")
	require.Zero(t, e.metrics.Value(taskbridge.MetricStreamsActive, taskbridge.Label{Name: "transport", Value: "ws"}))
}

func TestHeartbeatDue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	id := e.started(t, alice, "c")
	sub, err := e.svc.Subscribe(ctx, alice, id, "1", taskbridge.SubscribeOpts{HeartbeatInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	defer sub.Close()
	require.False(t, sub.HeartbeatDue())
	timeout := time.After(10 * time.Second)
	for beats := 0; beats < 3; {
		select {
		case <-sub.Ready():
		case <-timeout:
			t.Fatalf("only %d heartbeats", beats)
		}
		frames, err := sub.Next(ctx, nil)
		require.NoError(t, err)
		require.Empty(t, frames)
		if sub.HeartbeatDue() {
			beats++
			require.False(t, sub.HeartbeatDue(), "HeartbeatDue clears the flag")
		}
	}
}

func TestSharedSignal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	a := e.started(t, alice, "a")
	b := e.started(t, alice, "b")
	signal := make(chan struct{}, 1)
	subA, err := e.svc.Subscribe(ctx, alice, a, "1", taskbridge.SubscribeOpts{Signal: signal})
	require.NoError(t, err)
	defer subA.Close()
	subB, err := e.svc.Subscribe(ctx, alice, b, "1", taskbridge.SubscribeOpts{Signal: signal})
	require.NoError(t, err)
	defer subB.Close()
	for _, s := range []*taskbridge.Subscription{subA, subB} {
		frames, err := s.Next(ctx, nil) // join the live topic
		require.NoError(t, err)
		require.Empty(t, frames)
	}
	select { // drain a signal left by joining
	case <-signal:
	default:
	}
	e.emit(t, b, taskbridge.MessagePayload{Message: "to b"})
	<-signal
	frames, err := subB.Next(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, []int64{2}, seqs(frames))

	_, err = e.svc.Subscribe(ctx, alice, a, "", taskbridge.SubscribeOpts{Signal: make(chan struct{})})
	require.Error(t, err, "an unbuffered signal channel is refused")
}

func TestShutdownEndsSubscriptions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	id := e.started(t, alice, "c")
	sub, err := e.svc.Subscribe(ctx, alice, id, "", taskbridge.SubscribeOpts{Transport: "sse", HeartbeatInterval: time.Hour})
	require.NoError(t, err)

	// Shutdown waits for the transport to close the subscription.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, e.svc.Shutdown(short), context.DeadlineExceeded)

	<-sub.Ready()
	frames, err := sub.Next(ctx, nil)
	require.Empty(t, frames)
	require.ErrorIs(t, err, taskbridge.ErrClosed)
	sub.Close()
	require.NoError(t, e.svc.Shutdown(ctx))
	require.Zero(t, e.metrics.Value(taskbridge.MetricStreamsActive, taskbridge.Label{Name: "transport", Value: "sse"}))
}

func TestAppendEventJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 4, 12, 0, 10, 500_000_000, time.FixedZone("CEST", 2*3600))
	cases := []taskbridge.TaskEvent{
		{Type: taskbridge.EventTaskProgress, TaskID: "task_123", EventID: "3", CreatedAt: at, Payload: json.RawMessage(`{"progress":60}`)},
		{Type: taskbridge.EventTaskMessage, TaskID: "t", EventID: "1", CreatedAt: at, Payload: json.RawMessage("{\n  \"message\": \"a b\"\n}")},
		{Type: taskbridge.EventTaskMessage, TaskID: `we"ird`, EventID: "1", CreatedAt: at, Payload: json.RawMessage(`{"message":"<&>"}`)},
		{Type: taskbridge.EventTaskCompleted, TaskID: "t", EventID: "2", CreatedAt: at, Payload: json.RawMessage(`not json`)},
	}
	for _, ev := range cases {
		got := taskbridge.AppendEventJSON(nil, ev)
		require.True(t, json.Valid(got), string(got))
		require.NotContains(t, string(got), "\n")
		var back map[string]any
		require.NoError(t, json.Unmarshal(got, &back))
		require.Equal(t, ev.TaskID, back["taskId"])
		require.Equal(t, "2026-05-04T10:00:10.5Z", back["createdAt"], "createdAt is UTC")
		if json.Valid(ev.Payload) {
			want, err := json.Marshal(ev)
			require.NoError(t, err)
			var wantMap map[string]any
			require.NoError(t, json.Unmarshal(want, &wantMap))
			wantMap["createdAt"] = back["createdAt"]
			require.Equal(t, wantMap, back)
		} else {
			require.Equal(t, map[string]any{}, back["payload"])
		}
	}
}

func BenchmarkFanOut(b *testing.B) {
	for _, subs := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", subs), func(b *testing.B) {
			nb := newNextBench(b, memstore.Config{})
			defer nb.close()
			ctx, svc, em, taskID := nb.ctx, nb.svc, nb.em, nb.task
			var wg sync.WaitGroup
			total := b.N + 1
			for range subs {
				sub, err := svc.Subscribe(ctx, alice, taskID, "1", taskbridge.SubscribeOpts{})
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer sub.Close()
					buf := make([]*taskbridge.Frame, 0, 512)
					for got := 0; got < total; {
						frames, err := sub.Next(ctx, buf[:0])
						got += len(frames)
						if errors.Is(err, io.EOF) {
							return
						}
						if len(frames) == 0 {
							<-sub.Ready()
						}
					}
				}()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := em.Emit(ctx, taskbridge.MessagePayload{Message: "hello"}); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := em.Emit(ctx, taskbridge.CompletedPayload{}); err != nil {
				b.Fatal(err)
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N*subs)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// TestNoGoroutinesOutliveStreams checks that the hub's goroutines (topic
// fetchers, heartbeat schedulers) end with the last subscription, without a
// service shutdown. It is not parallel: goleak looks at every goroutine.
func TestNoGoroutinesOutliveStreams(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	ctx := context.Background()
	store := memstore.New(memstore.Config{})
	defer store.Close()
	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: &fakeExecutor{}, Logger: discardLogger()})
	require.NoError(t, err)
	resp, err := svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: "c", TaskType: "t"})
	require.NoError(t, err)
	em := svc.Emitter(resp.TaskID)
	_, err = em.Emit(ctx, taskbridge.StartedPayload{})
	require.NoError(t, err)

	sub, err := svc.Subscribe(ctx, alice, resp.TaskID, "", taskbridge.SubscribeOpts{Transport: "sse", HeartbeatInterval: time.Hour})
	require.NoError(t, err)
	_, err = next(t, sub)
	require.NoError(t, err)
	_, err = em.Emit(ctx, taskbridge.MessagePayload{Message: "live"})
	require.NoError(t, err)
	frames, err := next(t, sub)
	require.NoError(t, err)
	require.Len(t, frames, 1)
	sub.Close()
	goleak.VerifyNone(t, ignore)
}
