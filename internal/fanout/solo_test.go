package fanout

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fixedLog is a Source over one task whose frames are made in advance, so
// that reading them allocates nothing: what a delivery allocates is then
// the engine's own. It hands out its own frames, which Source.Read allows
// only because its tests read each event once, with one subscriber, and
// release nothing.
type fixedLog struct {
	frames []*Frame // frames[i].Seq == i+1

	mu     sync.Mutex
	last   int64 // appended so far
	notify func()
}

func newFixedLog(n int) *fixedLog {
	l := &fixedLog{}
	for i := range n {
		id := strconv.Itoa(i + 1)
		l.frames = append(l.frames, &Frame{Seq: int64(i + 1), EventID: id, JSON: []byte(`{"eventId":"` + id + `"}`)})
	}
	return l
}

func (l *fixedLog) Read(_ context.Context, _ string, after int64, limit int) ([]*Frame, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if after < 0 || after > l.last {
		return nil, errInvalid
	}
	return l.frames[after:min(l.last, after+int64(limit))], nil
}

func (l *fixedLog) Watch(_ string, notify func()) func() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.notify = notify
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.notify = nil
	}
}

func (l *fixedLog) append() {
	l.mu.Lock()
	l.last++
	notify := l.notify
	l.mu.Unlock()
	if notify != nil {
		notify()
	}
}

// A task with one subscriber (the usual shape: one app watching its task)
// is delivered without a fetcher goroutine, a window or a copy: the watch
// callback signals the subscriber, whose Next reads the Source into the
// caller's buffer. A delivery allocates nothing.
func TestSoloDeliveryAllocatesNothing(t *testing.T) {
	const runs = 200
	l := newFixedLog(runs + 10)
	h := setup(t, l, 256)
	ctx := context.Background()
	sub, err := h.Subscribe(ctx, "t", Start{}, SubscribeOpts{})
	require.NoError(t, err)
	defer sub.Close()
	buf := make([]*Frame, 0, 16)
	frames, err := sub.Next(ctx, buf)
	require.NoError(t, err)
	require.Empty(t, frames)
	require.Same(t, sub, sub.t.solo.Load(), "the topic is solo")

	want := int64(0)
	allocs := testing.AllocsPerRun(runs, func() {
		l.append()
		want++
		for {
			frames, err := sub.Next(ctx, buf[:0])
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) > 0 {
				if len(frames) != 1 || frames[0].Seq != want {
					t.Fatalf("got %d frames from %d, want event %d", len(frames), frames[0].Seq, want)
				}
				return
			}
			<-sub.Ready()
		}
	})
	require.Zero(t, allocs, "allocations per delivery")
	sub.t.mu.Lock()
	defer sub.t.mu.Unlock()
	require.False(t, sub.t.fetching, "no fetcher ran")
	require.Nil(t, sub.t.window)
}

// A topic switches between solo and shared as members join and leave, and
// every member gets every event exactly once across the switches.
func TestSoloSharedSwitches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newMemLog(0, "t")
	l.append("t", false)
	h := setup(t, l, 256)
	a := subscribe(t, h, l, ctx, "t", 1, SubscribeOpts{})
	frames, err := a.Next(ctx, nil) // joins: solo
	require.NoError(t, err)
	require.Empty(t, frames)
	require.Same(t, a, a.t.solo.Load())

	l.append("t", false) // 2, read by A itself
	b := subscribe(t, h, l, ctx, "t", 1, SubscribeOpts{})
	require.Equal(t, []int64{2}, seqs(mustNext(t, b)))
	require.Equal(t, []int64{}, seqs(mustNextOrWait(t, b, false)))
	require.Nil(t, a.t.solo.Load(), "two members: shared")

	l.append("t", false) // 3, through the window
	require.Equal(t, []int64{2, 3}, seqs(collect(t, a, 3)))
	require.Equal(t, []int64{3}, seqs(collect(t, b, 3)))

	b.Close()
	require.Same(t, a, a.t.solo.Load(), "one member left: solo again")
	l.append("t", true) // 4, read by A itself
	require.Equal(t, []int64{4}, seqs(drain(t, a)))
}

func mustNext(t *testing.T, sub *Subscription) []*Frame {
	t.Helper()
	frames, err := sub.Next(context.Background(), nil)
	require.NoError(t, err)
	return frames
}

// mustNextOrWait calls Next once; with wait, it first waits on Ready.
func mustNextOrWait(t *testing.T, sub *Subscription, wait bool) []*Frame {
	t.Helper()
	if wait {
		<-sub.Ready()
	}
	frames := mustNext(t, sub)
	if frames == nil {
		frames = []*Frame{}
	}
	return frames
}

// collect takes frames from sub until it has taken the one with Seq upTo.
func collect(t *testing.T, sub *Subscription, upTo int64) []*Frame {
	t.Helper()
	var out []*Frame
	for len(out) == 0 || out[len(out)-1].Seq < upTo {
		frames := mustNext(t, sub)
		if len(frames) == 0 {
			<-sub.Ready()
			continue
		}
		out = append(out, frames...)
	}
	return out
}

// countedLog counts the reads of a memLog.
type countedLog struct {
	*memLog
	reads atomic.Int64
}

func (l *countedLog) Read(ctx context.Context, taskID string, after int64, limit int) ([]*Frame, error) {
	l.reads.Add(1)
	return l.memLog.Read(ctx, taskID, after, limit)
}

// TestSoloReadsOnlyWhenStale: a solo member reads the Source in the Next
// that joins the topic and in the first Next after each append, never in a
// Next that finds nothing new: neither the one woken by the switch to solo
// nor the one a transport makes right after sending (more may follow).
// Transports make those Nexts on the goroutine that holds the connection,
// whose stack a Source read grows for the stream's life (sse's offload).
func TestSoloReadsOnlyWhenStale(t *testing.T) {
	t.Parallel()
	l := &countedLog{memLog: newMemLog(0, "t")}
	h := setup(t, l, 4)
	sub := subscribe(t, h, l.memLog, context.Background(), "t", 0, SubscribeOpts{})
	ctx := context.Background()

	// The first Next replays nothing, joins the topic as its solo member
	// and reads again for what came in between.
	frames, err := sub.Next(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, frames)
	require.Equal(t, sub, sub.t.solo.Load(), "one member: solo")
	reads := l.reads.Load()

	// The switch to solo signalled the member; the Next that signal wakes
	// finds nothing and reads nothing.
	<-sub.Ready()
	frames, err = sub.Next(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, frames)
	require.Equal(t, reads, l.reads.Load(), "a Next with nothing appended read the Source")

	for i := range 3 {
		l.append("t", false)
		<-sub.Ready()
		frames, err = sub.Next(ctx, nil)
		require.NoError(t, err)
		requireSeqs(t, []int64{int64(i + 1)}, seqs(frames))
		require.Equal(t, reads+1, l.reads.Load(), "an append is read once")
		reads++

		// A transport asks again at once after sending.
		frames, err = sub.Next(ctx, nil)
		require.NoError(t, err)
		require.Empty(t, frames)
		require.Equal(t, reads, l.reads.Load(), "the Next after a delivery read the Source")
	}

	// A full batch is followed by a read: more may be waiting.
	l.appendN("t", 6)
	<-sub.Ready()
	frames, err = sub.Next(ctx, nil)
	require.NoError(t, err)
	requireSeqs(t, span(4, 7), seqs(frames))
	frames, err = sub.Next(ctx, nil)
	require.NoError(t, err)
	requireSeqs(t, span(8, 9), seqs(frames))
	require.Equal(t, reads+2, l.reads.Load())
}

// More is false only for a solo member that has read everything appended:
// an append (which leaves it stale), a second member, the end of the
// stream and a replay in progress all make it true.
func TestMore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newMemLog(0, "t")
	l.append("t", false)
	h := setup(t, l, 256)
	a := subscribe(t, h, l, ctx, "t", 0, SubscribeOpts{})
	require.True(t, a.More(), "the first batch is pending")
	require.Equal(t, []int64{1}, seqs(mustNext(t, a)))
	require.Same(t, a, a.t.solo.Load())
	require.False(t, a.More(), "a solo member that read everything")

	l.append("t", false)
	require.True(t, a.More(), "appended to: stale")
	require.Equal(t, []int64{2}, seqs(collect(t, a, 2)))
	require.False(t, a.More())

	shareTopic(t, h, l, "t", 2)
	require.Nil(t, a.t.solo.Load(), "shared")
	require.False(t, a.More(), "a shared topic's member at the end of the window")
	l.append("t", false) // 3, through the fetcher and the window
	require.Eventually(t, a.More, 5*time.Second, time.Millisecond, "the window holds event 3")
	require.Equal(t, []int64{3}, seqs(mustNext(t, a)))
	require.False(t, a.More())

	h1 := setup(t, l, 1) // batches of one: a replay takes several reads
	b := subscribe(t, h1, l, ctx, "t", 0, SubscribeOpts{})
	require.True(t, b.More(), "pending first batch")
	require.Equal(t, []int64{1}, seqs(mustNext(t, b)))
	require.Nil(t, b.t, "still replaying")
	require.True(t, b.More(), "replaying: not in a topic yet")

	l.append("t", true)
	require.Equal(t, []int64{4}, seqs(collect(t, a, 4)))
	require.True(t, a.More(), "after the terminal event Next returns io.EOF")
}
