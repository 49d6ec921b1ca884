package taskbridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
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

// serviceOn returns a service on store, shut down when the test ends, and
// a task alice created there.
func serviceOn(t *testing.T, store taskbridge.Store) (*taskbridge.Service, string) {
	t.Helper()
	ctx := context.Background()
	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: &fakeExecutor{}, Logger: discardLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Shutdown(ctx)) })
	resp, err := svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: "c", TaskType: "demo"})
	require.NoError(t, err)
	return svc, resp.TaskID
}

// vettingStore counts how events reach a memstore: through Append, which
// checks their payloads, or through AppendVetted, which does not.
type vettingStore struct {
	*memstore.Store
	appends, vetted atomic.Int64
}

func (s *vettingStore) Append(ctx context.Context, ev taskbridge.TaskEvent) (taskbridge.TaskEvent, error) {
	s.appends.Add(1)
	return s.Store.Append(ctx, ev)
}

func (s *vettingStore) AppendVetted(ctx context.Context, ev taskbridge.TaskEvent) (taskbridge.TaskEvent, error) {
	s.vetted.Add(1)
	return s.Store.AppendVetted(ctx, ev)
}

// VettedStore declares that the wrapper's own AppendVetted is to be used.
func (s *vettingStore) VettedStore() taskbridge.EventStore { return s }

// auditStore embeds memstore and counts its appends, as a host's wrapper
// might: memstore's AppendVetted and VettedStore are promoted to it, and
// must not lead the service around its Append.
type auditStore struct {
	*memstore.Store
	appends atomic.Int64
}

func (s *auditStore) Append(ctx context.Context, ev taskbridge.TaskEvent) (taskbridge.TaskEvent, error) {
	s.appends.Add(1)
	return s.Store.Append(ctx, ev)
}

// TestEmitThroughAWrapper: a store embedding memstore gets every emitted
// event through its own Append (the runner's fault-injecting test store
// was bypassed when the service took memstore's promoted AppendVetted).
func TestEmitThroughAWrapper(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := &auditStore{Store: memstore.New(memstore.Config{})}
	svc, id := serviceOn(t, store)
	em := svc.Emitter(id)
	_, err := em.Emit(ctx, taskbridge.StartedPayload{})
	require.NoError(t, err)
	_, err = em.Emit(ctx, taskbridge.MessagePayload{Message: "m"})
	require.NoError(t, err)
	require.EqualValues(t, 2, store.appends.Load())
	got, err := svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{})
	require.NoError(t, err)
	require.Len(t, got.Events, 2)
}

// TestEmitAppendsVetted: an emitter's payloads, which EncodePayload made,
// go to a store that vouches for its payloads through AppendVetted; a
// payload appended to it otherwise is checked there, and either way a
// subscriber gets compact frames (which the fan-out writes without checking
// them again).
func TestEmitAppendsVetted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := &vettingStore{Store: memstore.New(memstore.Config{})}
	svc, id := serviceOn(t, store)
	em := svc.Emitter(id)
	_, err := em.Emit(ctx, taskbridge.StartedPayload{})
	require.NoError(t, err)
	_, err = em.Emit(ctx, taskbridge.ProgressPayload{Progress: 0.5, Message: "half way"})
	require.NoError(t, err)
	require.EqualValues(t, 2, store.vetted.Load())
	require.Zero(t, store.appends.Load())

	_, err = store.Append(ctx, taskbridge.TaskEvent{Type: taskbridge.EventTaskMessage, TaskID: id, CreatedAt: time.Now(),
		Payload: json.RawMessage("{ \"message\" :\n \"a b\" }")})
	require.NoError(t, err)
	_, err = store.Append(ctx, taskbridge.TaskEvent{Type: taskbridge.EventTaskMessage, TaskID: id, CreatedAt: time.Now(),
		Payload: json.RawMessage(`{"message":`)})
	require.ErrorIs(t, err, taskbridge.ErrInvalidEvent)

	sub, err := hooks.Subscribe(ctx, svc, alice, id, "", fanout.SubscribeOpts{Transport: "sse"})
	require.NoError(t, err)
	defer sub.Close()
	frames, err := sub.Next(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3}, seqs(frames))
	for _, f := range frames {
		var buf bytes.Buffer
		require.NoError(t, json.Compact(&buf, f.JSON))
		require.Equal(t, buf.String(), string(f.JSON))
	}
	var ev taskbridge.TaskEvent
	require.NoError(t, json.Unmarshal(frames[2].JSON, &ev))
	require.JSONEq(t, `{"message":"a b"}`, string(ev.Payload))
	validateEvents(t, ev)
}

// oddStore is a store of a type whose values cannot be compared, which
// says that it is its own VettedAppender.
type oddStore struct {
	*memstore.Store
	tags []string
}

func (s oddStore) VettedStore() taskbridge.EventStore { return s }

// TestVettedStoreNotComparable: a store whose values cannot be compared
// (== would panic) is not taken for its own VettedAppender.
func TestVettedStoreNotComparable(t *testing.T) {
	t.Parallel()
	store := oddStore{Store: memstore.New(memstore.Config{}), tags: []string{"a"}}
	svc, id := serviceOn(t, store)
	_, err := svc.Emitter(id).Emit(context.Background(), taskbridge.StartedPayload{})
	require.NoError(t, err)
}
