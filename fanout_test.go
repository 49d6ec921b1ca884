package taskbridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/bridge"
	"github.com/taskbridge-go/taskbridge/internal/fanout"
	"github.com/taskbridge-go/taskbridge/memstore"
)

// The fan-out engine has its own tests (internal/fanout). These test the
// Service's side: Subscribe for Go programs, the transports' subscriptions
// through the bridge, and what the Service adds (checks, metrics).

// hooks are what the transports get from a Service.
var hooks = bridge.For[taskbridge.Service, taskbridge.AuthContext]()

func seqs(frames []*fanout.Frame) []int64 {
	out := make([]int64, len(frames))
	for i, f := range frames {
		out[i] = f.Seq
	}
	return out
}

func eventSeqs(events []taskbridge.TaskEvent) []int64 {
	out := make([]int64, len(events))
	for i, ev := range events {
		out[i] = ev.Seq
	}
	return out
}

// collect returns the events of sub until it ends with io.EOF.
func collect(t *testing.T, sub *taskbridge.Subscription) []taskbridge.TaskEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []taskbridge.TaskEvent
	for {
		ev, err := sub.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		out = append(out, ev)
	}
}

func TestSubscribe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	id := e.started(t, alice, "c")
	for i := range 3 {
		e.emit(t, id, taskbridge.ProgressPayload{Progress: float64(i * 30), Stage: "s"})
	}
	sub, err := e.svc.Subscribe(ctx, alice, id, "")
	require.NoError(t, err)
	defer sub.Close()
	require.Equal(t, id, sub.TaskID())
	// Go subscribers are not transport streams.
	require.Empty(t, e.metrics.Snapshot()[taskbridge.MetricStreamsActive])

	stored, err := e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{})
	require.NoError(t, err)
	for _, want := range stored.Events {
		got, err := sub.Next(ctx)
		require.NoError(t, err)
		require.Equal(t, want.Seq, got.Seq)
		require.Equal(t, want.EventID, got.EventID)
		require.Equal(t, want.Type, got.Type)
		require.Equal(t, id, got.TaskID)
		require.True(t, want.CreatedAt.Equal(got.CreatedAt))
		require.JSONEq(t, string(want.Payload), string(got.Payload))
		validateEvents(t, got)
	}

	// Next waits for the live events.
	got := make(chan []taskbridge.TaskEvent, 1)
	go func() { got <- collect(t, sub) }()
	e.emit(t, id, taskbridge.MessagePayload{Message: "live"})
	e.emit(t, id, taskbridge.CompletedPayload{Result: map[string]any{"ok": true}})
	require.Equal(t, []int64{5, 6}, eventSeqs(<-got))
	_, err = sub.Next(ctx)
	require.ErrorIs(t, err, io.EOF, "io.EOF again")

	require.NoError(t, sub.Close())
	require.NoError(t, sub.Close(), "twice is fine")
	_, err = sub.Next(ctx)
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
	for cursor, want := range map[string]error{"x": taskbridge.ErrInvalidCursor, "13": taskbridge.ErrInvalidCursor, "6": taskbridge.ErrEventsExpired} {
		_, err := e.svc.Subscribe(ctx, alice, id, cursor)
		require.ErrorIs(t, err, want, cursor)
	}
	_, err := e.svc.Subscribe(ctx, bob, id, "")
	require.ErrorIs(t, err, taskbridge.ErrTaskNotFound, "another user's task")

	sub, err := e.svc.Subscribe(ctx, alice, id, "9")
	require.NoError(t, err)
	defer sub.Close()
	e.emit(t, id, taskbridge.CompletedPayload{})
	require.Equal(t, []int64{10, 11, 12, 13}, eventSeqs(collect(t, sub)))
	require.EqualValues(t, 1, e.metrics.Value(taskbridge.MetricReplays))

	// Resuming at the terminal event ends at once.
	sub, err = e.svc.Subscribe(ctx, alice, id, "13")
	require.NoError(t, err)
	defer sub.Close()
	_, err = sub.Next(ctx)
	require.ErrorIs(t, err, io.EOF)
}

// Close may come from another goroutine and ends a waiting Next; so do the
// caller's context and a service shutdown.
func TestSubscriptionEnds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	id := e.started(t, alice, "c")
	next := func(ctx context.Context, sub *taskbridge.Subscription) <-chan error {
		ch := make(chan error, 1)
		go func() {
			_, err := sub.Next(ctx) // event 1
			if err == nil {
				_, err = sub.Next(ctx)
			}
			ch <- err
		}()
		return ch
	}

	sub, err := e.svc.Subscribe(ctx, alice, id, "")
	require.NoError(t, err)
	done := next(ctx, sub)
	require.NoError(t, sub.Close())
	require.ErrorIs(t, <-done, taskbridge.ErrClosed)

	sub, err = e.svc.Subscribe(ctx, alice, id, "")
	require.NoError(t, err)
	defer sub.Close()
	cctx, cancel := context.WithCancel(ctx)
	done = next(cctx, sub)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)

	done = next(ctx, sub)
	require.NoError(t, e.svc.Shutdown(ctx))
	require.ErrorIs(t, <-done, taskbridge.ErrClosed)
}

// The transports subscribe through the bridge: the same checks, counted
// in streams_active by transport.
func TestTransportSubscribe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	id := e.started(t, alice, "c")
	sse := taskbridge.Label{Name: "transport", Value: "sse"}

	_, err := hooks.Subscribe(ctx, e.svc, bob, id, "", fanout.SubscribeOpts{Transport: "sse"})
	require.ErrorIs(t, err, taskbridge.ErrTaskNotFound)
	_, err = hooks.Subscribe(ctx, e.svc, alice, id, "x", fanout.SubscribeOpts{Transport: "sse"})
	require.ErrorIs(t, err, taskbridge.ErrInvalidCursor)

	sub, err := hooks.Subscribe(ctx, e.svc, alice, id, "", fanout.SubscribeOpts{Transport: "sse"})
	require.NoError(t, err)
	require.EqualValues(t, 1, e.metrics.Value(taskbridge.MetricStreamsActive, sse))
	frames, err := sub.Next(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, []int64{1}, seqs(frames))
	var ev taskbridge.TaskEvent
	require.NoError(t, json.Unmarshal(frames[0].JSON, &ev))
	require.Equal(t, "1", ev.EventID)
	sub.Close()
	require.Zero(t, e.metrics.Value(taskbridge.MetricStreamsActive, sse))

	// Shutdown ends the transports' subscriptions with ErrClosed and waits
	// for them to be closed.
	sub, err = hooks.Subscribe(ctx, e.svc, alice, id, "1", fanout.SubscribeOpts{Transport: "sse", HeartbeatInterval: time.Hour})
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, e.svc.Shutdown(short), context.DeadlineExceeded)
	<-sub.Ready()
	_, err = sub.Next(ctx, nil)
	require.ErrorIs(t, err, taskbridge.ErrClosed)
	sub.Close()
	require.NoError(t, e.svc.Shutdown(ctx))
	_, err = hooks.Subscribe(ctx, e.svc, alice, id, "", fanout.SubscribeOpts{})
	require.ErrorIs(t, err, taskbridge.ErrClosed)
	require.Equal(t, slog.DiscardHandler, hooks.Logger(e.svc).Handler())
	require.Equal(t, e.clock.Now(), hooks.Now(e.svc))
}

func BenchmarkFanOut(b *testing.B) {
	for _, subs := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", subs), func(b *testing.B) {
			nb := newNextBench(b, memstore.Config{})
			defer nb.close()
			ctx, em := nb.ctx, nb.em
			var wg sync.WaitGroup
			total := b.N + 1
			for range subs {
				sub := nb.subscribe("1")
				wg.Go(func() {
					defer sub.Close()
					buf := make([]*fanout.Frame, 0, 512)
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
				})
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
