package taskbridge_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
)

// The fan-out's timing bugs are interleavings of a store read with appends
// and with other subscribers. gateStore makes them deterministic: a test
// pauses one chosen Read or Watch call, arranges the world around it, then
// lets it go on.

// gateStore wraps a Store; see [gateStore.pause].
type gateStore struct {
	taskbridge.Store

	mu    sync.Mutex
	gates []*gate
}

var _ taskbridge.Store = (*gateStore)(nil)

// gate is one pause point. reached is closed when a matching call stops
// there; the call goes on once release is closed.
type gate struct {
	op      string // "read" or "watch"
	late    bool   // pause after the wrapped call returned, not before it
	match   func(ctx context.Context, after int64) bool
	reached chan struct{}
	release chan struct{}
}

// Arguments of gateStore.pause.
const (
	opRead  = "read"
	opWatch = "watch"
	before  = false // pause before the wrapped call
	after   = true  // pause after it, with its result in hand
)

// pause makes the next call of op for which match is true stop before or
// after (late) the wrapped call. Watch calls are matched with a background
// context and after 0.
func (s *gateStore) pause(op string, late bool, match func(ctx context.Context, after int64) bool) *gate {
	g := &gate{op: op, late: late, match: match, reached: make(chan struct{}), release: make(chan struct{})}
	s.mu.Lock()
	s.gates = append(s.gates, g)
	s.mu.Unlock()
	return g
}

// stop waits at the first gate matching the call, if any, and removes it.
func (s *gateStore) stop(op string, late bool, ctx context.Context, after int64) {
	s.mu.Lock()
	var hit *gate
	for i, g := range s.gates {
		if g.op == op && g.late == late && g.match(ctx, after) {
			hit = g
			s.gates = append(s.gates[:i], s.gates[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
	if hit != nil {
		close(hit.reached)
		<-hit.release
	}
}

func (s *gateStore) Read(ctx context.Context, taskID string, after int64, limit int) ([]taskbridge.TaskEvent, error) {
	s.stop(opRead, before, ctx, after)
	evs, err := s.Store.Read(ctx, taskID, after, limit)
	s.stop(opRead, true, ctx, after)
	return evs, err
}

func (s *gateStore) Watch(taskID string, notify func()) func() {
	s.stop(opWatch, before, context.Background(), 0)
	stop := s.Store.Watch(taskID, notify)
	s.stop(opWatch, true, context.Background(), 0)
	return stop
}

// Reads are told apart by a name in their context: subscribers and polls
// read with their caller's context, topics with none.
type readerKey struct{}

func named(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, readerKey{}, name)
}

// by matches calls made with the named context (name "" matches the
// topic's reads, which carry no name) after cursor at.
func by(name string, at int64) func(context.Context, int64) bool {
	return func(ctx context.Context, after int64) bool {
		n, _ := ctx.Value(readerKey{}).(string)
		return n == name && after == at
	}
}

// gated returns e's task service rebuilt over a gateStore around e's store.
func gated(t *testing.T, e *env) *gateStore {
	t.Helper()
	gs := &gateStore{Store: e.store}
	e.svc = mustService(t, e, func(c *taskbridge.Config) { c.Store = gs })
	return gs
}

// nextResult is what a Next call run in another goroutine returned.
type nextResult struct {
	frames []*taskbridge.Frame
	err    error
}

func nextAsync(ctx context.Context, sub *taskbridge.Subscription) <-chan nextResult {
	ch := make(chan nextResult, 1)
	go func() {
		frames, err := sub.Next(ctx, nil)
		ch <- nextResult{frames, err}
	}()
	return ch
}

// requireNotStranded fails when Next returned nothing and nil but nothing
// is going to signal the subscription: the stream would hang.
func requireNotStranded(t *testing.T, sub *taskbridge.Subscription, r nextResult) {
	t.Helper()
	if len(r.frames) > 0 || r.err != nil {
		return
	}
	select {
	case <-sub.Ready():
	default:
		t.Fatal("Next returned no frames and nothing will signal the subscription")
	}
}

// emitTaken emits p to sub's task and waits until sub, the only live
// subscriber, has taken it.
func (e *env) emitTaken(t *testing.T, sub *taskbridge.Subscription, p taskbridge.Payload) {
	t.Helper()
	ev := e.emit(t, sub.TaskID(), p)
	frames, err := next(t, sub)
	require.NoError(t, err)
	require.Equal(t, []int64{ev.Seq}, seqs(frames))
}

func drainReady(sub *taskbridge.Subscription) {
	select {
	case <-sub.Ready():
	default:
	}
}

// A subscriber whose store read finds nothing joins the topic; if the
// topic's window moved past its cursor in between (the other members took
// the frames and they were dropped), it must read the store again rather
// than wait for an append that may never come. (It used to return nothing
// and wait forever when the missed frames included the terminal event.)
func TestJoinAfterWindowMovedOn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	id := e.started(t, alice, "c")
	gs := gated(t, e)

	a, err := e.svc.Subscribe(named(ctx, "A"), alice, id, "1", taskbridge.SubscribeOpts{})
	require.NoError(t, err)
	defer a.Close()
	frames, err := a.Next(named(ctx, "A"), nil) // joins the topic
	require.NoError(t, err)
	require.Empty(t, frames)

	b, err := e.svc.Subscribe(named(ctx, "B0"), alice, id, "1", taskbridge.SubscribeOpts{})
	require.NoError(t, err)
	defer b.Close()
	g := gs.pause(opRead, after, by("B", 1))
	res := nextAsync(named(ctx, "B"), b)
	<-g.reached // B read nothing after 1 and has not joined yet

	e.emitTaken(t, a, taskbridge.MessagePayload{Message: "2"})
	e.emitTaken(t, a, taskbridge.CompletedPayload{}) // the window drops 2

	drainReady(b)
	close(g.release)
	r := <-res
	require.NoError(t, r.err)
	requireNotStranded(t, b, r)
	require.Equal(t, []int64{2, 3}, seqs(append(r.frames, drain(t, b)...)))
}

// The same, when the subscriber joins after taking its first replay batch
// read by Subscribe.
func TestJoinAfterReplayBatchWindowMovedOn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	id := e.started(t, alice, "c")
	e.emit(t, id, taskbridge.MessagePayload{Message: "2"})

	a, err := e.svc.Subscribe(ctx, alice, id, "2", taskbridge.SubscribeOpts{})
	require.NoError(t, err)
	defer a.Close()
	frames, err := a.Next(ctx, nil) // joins the topic
	require.NoError(t, err)
	require.Empty(t, frames)

	b, err := e.svc.Subscribe(ctx, alice, id, "1", taskbridge.SubscribeOpts{}) // holds [2]
	require.NoError(t, err)
	defer b.Close()
	e.emitTaken(t, a, taskbridge.MessagePayload{Message: "3"})
	e.emitTaken(t, a, taskbridge.CompletedPayload{}) // the window drops 3

	drainReady(b)
	frames, err = b.Next(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, []int64{2}, seqs(frames))
	// A transport that waits on Ready after a batch must be woken.
	requireNotStranded(t, b, nextResult{})
	require.Equal(t, []int64{3, 4}, seqs(drain(t, b)))
}

// A topic created at cursor 0 on a task without events reads from the
// start of the log; if retention dropped the first events before that
// read, the topic starts at the oldest retained event instead of failing
// every member. (It used to fail them all with "Seqs must be dense".)
func TestTopicStartTrimmedByRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t, func(_ *taskbridge.Config, m *memstore.Config) { m.MaxEventsPerTask = 3 })
	id := e.create(t, alice, "c")
	gs := gated(t, e)

	x, err := e.svc.Subscribe(named(ctx, "X"), alice, id, "", taskbridge.SubscribeOpts{})
	require.NoError(t, err)
	defer x.Close()
	g := gs.pause(opRead, before, by("", 0)) // the new topic's first read
	frames, err := x.Next(named(ctx, "X"), nil)
	require.NoError(t, err)
	require.Empty(t, frames)
	<-g.reached

	e.emit(t, id, taskbridge.StartedPayload{})
	for range 4 {
		e.emit(t, id, taskbridge.MessagePayload{Message: "m"})
	}
	// Events 1..5 appended, 3..5 retained. Y resumes validly after 2.
	y, err := e.svc.Subscribe(named(ctx, "Y"), alice, id, "2", taskbridge.SubscribeOpts{})
	require.NoError(t, err)
	defer y.Close()
	frames, err = y.Next(named(ctx, "Y"), nil)
	require.NoError(t, err)
	require.Equal(t, []int64{3, 4, 5}, seqs(frames))

	close(g.release)
	e.emit(t, id, taskbridge.MessagePayload{Message: "6"})
	frames, err = next(t, y)
	require.NoError(t, err)
	require.Equal(t, []int64{6}, seqs(frames))

	z, err := e.svc.Subscribe(named(ctx, "Z"), alice, id, "5", taskbridge.SubscribeOpts{})
	require.NoError(t, err)
	defer z.Close()
	e.emit(t, id, taskbridge.CompletedPayload{})
	require.Equal(t, []int64{6, 7}, seqs(drain(t, z)), "a later joiner is served")
	require.Equal(t, []int64{7}, seqs(drain(t, y)))

	// X was opened before event 1 existed: events 1 and 2 are lost to it.
	_, err = next(t, x)
	require.ErrorIs(t, err, taskbridge.ErrEventsExpired)
}

// A stream opened at cursor 0 before the task had events could have
// delivered event 1, so it is held to "strictly after its last delivered
// event" like any other: when retention removes events it has not
// delivered, it ends with ErrEventsExpired. (It used to re-read from the
// oldest retained event and skip the rest silently.)
func TestCursorZeroStreamExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("before joining", func(t *testing.T) {
		t.Parallel()
		e := setup(t, func(_ *taskbridge.Config, m *memstore.Config) { m.MaxEventsPerTask = 4 })
		id := e.create(t, alice, "c")
		x, err := e.svc.Subscribe(ctx, alice, id, "", taskbridge.SubscribeOpts{})
		require.NoError(t, err)
		defer x.Close()
		e.emit(t, id, taskbridge.StartedPayload{})
		for range 9 {
			e.emit(t, id, taskbridge.MessagePayload{Message: "m"})
		}
		frames, err := x.Next(ctx, nil)
		require.ErrorIs(t, err, taskbridge.ErrEventsExpired)
		require.Empty(t, frames)
	})

	t.Run("behind the window", func(t *testing.T) {
		t.Parallel()
		e := setup(t, func(_ *taskbridge.Config, m *memstore.Config) { m.MaxEventsPerTask = 4 })
		id := e.create(t, alice, "c")
		gs := gated(t, e)
		x, err := e.svc.Subscribe(ctx, alice, id, "", taskbridge.SubscribeOpts{})
		require.NoError(t, err)
		defer x.Close()
		frames, err := x.Next(ctx, nil) // joins the topic
		require.NoError(t, err)
		require.Empty(t, frames)

		// The topic takes event 1 into its window, then falls behind
		// retention: it restarts at the oldest retained event.
		drainReady(x)
		e.emit(t, id, taskbridge.StartedPayload{})
		<-x.Ready() // the topic's fetch holds [1] and has finished
		g := gs.pause(opRead, before, by("", 1))
		e.emit(t, id, taskbridge.MessagePayload{Message: "m"})
		<-g.reached
		for range 8 {
			e.emit(t, id, taskbridge.MessagePayload{Message: "m"})
		}
		close(g.release)
		// X may take event 1 before the restart, never anything after it.
		var got []int64
		for err == nil {
			var frames []*taskbridge.Frame
			frames, err = next(t, x)
			got = append(got, seqs(frames)...)
		}
		require.ErrorIs(t, err, taskbridge.ErrEventsExpired)
		require.Subset(t, []int64{1}, got)
	})

	t.Run("resumed from the oldest retained event", func(t *testing.T) {
		t.Parallel()
		e := setup(t, func(_ *taskbridge.Config, m *memstore.Config) { m.MaxEventsPerTask = 4 })
		id := e.started(t, alice, "c")
		for range 9 {
			e.emit(t, id, taskbridge.MessagePayload{Message: "m"})
		}
		// "From the start" of a log that has lost its start is the
		// oldest retained event, without an error.
		x, err := e.svc.Subscribe(ctx, alice, id, "", taskbridge.SubscribeOpts{})
		require.NoError(t, err)
		defer x.Close()
		e.emit(t, id, taskbridge.CompletedPayload{})
		require.Equal(t, []int64{7, 8, 9, 10, 11}, seqs(drain(t, x)))
	})

	t.Run("of a log retention emptied", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		id := e.started(t, alice, "c")
		e.emit(t, id, taskbridge.MessagePayload{Message: "m"})
		require.NoError(t, e.store.TrimEvents(id, 0))
		x, err := e.svc.Subscribe(ctx, alice, id, "", taskbridge.SubscribeOpts{})
		require.NoError(t, err)
		defer x.Close()
		e.emit(t, id, taskbridge.CompletedPayload{})
		require.Equal(t, []int64{3}, seqs(drain(t, x)), "a stream of an emptied log starts after its last event")
	})
}

// A long poll that times out reads the store once more before answering
// empty: the topic it waited on may be late (a slow or failing read), but
// the store is the truth.
func TestLongPollRechecksStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	id := e.started(t, alice, "c")
	gs := gated(t, e)
	g := gs.pause(opRead, before, by("", 1)) // the topic's first read
	done := make(chan taskbridge.PollResponse, 1)
	go func() {
		resp, err := e.svc.PollEvents(named(ctx, "P"), alice, id, taskbridge.PollRequest{AfterEventID: "1", WaitTimeout: 50 * time.Millisecond})
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	<-g.reached
	e.emit(t, id, taskbridge.MessagePayload{Message: "2"})
	resp := <-done
	close(g.release)
	require.Len(t, resp.Events, 1)
	require.Equal(t, "2", resp.Events[0].EventID)
}

// An append while a new topic registers its watch is read by the topic's
// first fetch, which runs after the watch is in place.
func TestAppendWhileTopicStartsWatching(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	id := e.started(t, alice, "c")
	gs := gated(t, e)
	x, err := e.svc.Subscribe(ctx, alice, id, "1", taskbridge.SubscribeOpts{})
	require.NoError(t, err)
	defer x.Close()
	g := gs.pause(opWatch, before, func(context.Context, int64) bool { return true })
	res := nextAsync(ctx, x)
	<-g.reached
	e.emit(t, id, taskbridge.CompletedPayload{})
	close(g.release)
	r := <-res
	require.NoError(t, r.err)
	require.Equal(t, []int64{2}, seqs(append(r.frames, drain(t, x)...)))
	_, err = x.Next(ctx, nil)
	require.True(t, errors.Is(err, io.EOF))
}
