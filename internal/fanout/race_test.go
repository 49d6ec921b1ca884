package fanout

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// Deterministic reproductions of the fan-out's timing bugs, found by a
// randomized stress run (see TestFanOutStress in package taskbridge): each
// pauses a Source call at the point where the bug struck.

// A subscriber whose read finds nothing joins the topic; if the topic's
// window moved past its cursor in between (the other members took the
// frames and they were dropped), it must read the Source again rather than
// wait for an append that may never come. (It used to return nothing and
// wait forever when the missed frames included the terminal event.)
func TestJoinAfterWindowMovedOn(t *testing.T) {
	t.Parallel()
	l := newMemLog(0, "t")
	l.append("t", false)
	h := setup(t, l, 256)

	a := subscribe(t, h, l, named("A"), "t", 1, SubscribeOpts{})
	frames, err := a.Next(named("A"), nil) // joins the topic
	require.NoError(t, err)
	require.Empty(t, frames)

	b := subscribe(t, h, l, named("B0"), "t", 1, SubscribeOpts{})
	g := l.pause(opRead, late, by("B", 1))
	res := nextAsync(named("B"), b)
	<-g.reached // B read nothing after 1 and has not joined yet

	l.appendTaken(t, a, false)
	l.appendTaken(t, a, true) // the window drops 2

	drainReady(b)
	close(g.release)
	r := <-res
	require.NoError(t, r.err)
	requireNotStranded(t, b, r)
	require.Equal(t, []int64{2, 3}, seqs(append(r.frames, drain(t, b)...)))
}

// The same, when the subscriber joins after taking the first batch read
// by Subscribe.
func TestJoinAfterFirstBatchWindowMovedOn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newMemLog(0, "t")
	l.appendN("t", 2)
	h := setup(t, l, 256)

	a := subscribe(t, h, l, ctx, "t", 2, SubscribeOpts{})
	frames, err := a.Next(ctx, nil) // joins the topic
	require.NoError(t, err)
	require.Empty(t, frames)

	b := subscribe(t, h, l, ctx, "t", 1, SubscribeOpts{}) // holds [2]
	l.appendTaken(t, a, false)
	l.appendTaken(t, a, true) // the window drops 3

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
// every member. (It used to fail them all, and every later joiner, with
// "Seqs must be dense".)
func TestTopicStartTrimmedByRetention(t *testing.T) {
	t.Parallel()
	l := newMemLog(3, "t")
	h := setup(t, l, 256)

	x := subscribe(t, h, l, named("X"), "t", 0, SubscribeOpts{})
	frames, err := x.Next(named("X"), nil)
	require.NoError(t, err)
	require.Empty(t, frames)
	g := l.pause(opRead, before, by("", 0)) // the topic's first fetch
	shareTopic(t, h, l, "t", 0)
	<-g.reached

	l.appendN("t", 5) // 3..5 retained
	y := subscribe(t, h, l, named("Y"), "t", 2, SubscribeOpts{})
	frames, err = y.Next(named("Y"), nil)
	require.NoError(t, err)
	require.Equal(t, []int64{3, 4, 5}, seqs(frames))

	close(g.release)
	l.append("t", false)
	frames, err = next(t, y)
	require.NoError(t, err)
	require.Equal(t, []int64{6}, seqs(frames))

	z := subscribe(t, h, l, named("Z"), "t", 5, SubscribeOpts{})
	l.append("t", true)
	require.Equal(t, []int64{6, 7}, seqs(drain(t, z)), "a later joiner is served")
	require.Equal(t, []int64{7}, seqs(drain(t, y)))

	// X was opened before event 1 existed: events 1 and 2 are lost to it.
	_, err = next(t, x)
	require.ErrorIs(t, err, errExpired)
}

// A stream opened at cursor 0 before the task had events could have
// delivered event 1, so it is held to "strictly after its last delivered
// event" like any other: when retention removes events it has not
// delivered, it ends with ErrExpired. (It used to re-read from the oldest
// retained event and skip the rest silently.)
func TestCursorZeroStreamExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("before joining", func(t *testing.T) {
		t.Parallel()
		l := newMemLog(4, "t")
		h := setup(t, l, 256)
		x := subscribe(t, h, l, ctx, "t", 0, SubscribeOpts{})
		l.appendN("t", 10)
		frames, err := x.Next(ctx, nil)
		require.ErrorIs(t, err, errExpired)
		require.Empty(t, frames)
	})

	t.Run("behind the window", func(t *testing.T) {
		t.Parallel()
		l := newMemLog(4, "t")
		h := setup(t, l, 256)
		x := subscribe(t, h, l, ctx, "t", 0, SubscribeOpts{})
		frames, err := x.Next(ctx, nil) // joins the topic
		require.NoError(t, err)
		require.Empty(t, frames)
		shareTopic(t, h, l, "t", 0)

		// The topic takes event 1 into its window, then falls behind
		// retention: it restarts at the oldest retained event.
		drainReady(x)
		l.append("t", false)
		<-x.Ready() // the topic's fetch holds [1] and has finished
		g := l.pause(opRead, before, by("", 1))
		l.append("t", false)
		<-g.reached
		l.appendN("t", 8)
		close(g.release)
		// X may take event 1 before the restart, never anything after it.
		var got []int64
		for err == nil {
			frames, err = next(t, x)
			got = append(got, seqs(frames)...)
		}
		require.ErrorIs(t, err, errExpired)
		require.Subset(t, []int64{1}, got)
	})

	t.Run("resumed from the oldest retained event", func(t *testing.T) {
		t.Parallel()
		l := newMemLog(4, "t")
		l.appendN("t", 10)
		h := setup(t, l, 256)
		// "From the start" of a log that has lost its start is the oldest
		// retained event, without an error.
		x := subscribe(t, h, l, ctx, "t", 0, SubscribeOpts{})
		l.append("t", true)
		require.Equal(t, []int64{7, 8, 9, 10, 11}, seqs(drain(t, x)))
	})

	t.Run("of a log retention emptied", func(t *testing.T) {
		t.Parallel()
		l := newMemLog(0, "t")
		l.appendN("t", 2)
		l.tasks["t"].frames = nil // trimmed to nothing
		h := setup(t, l, 256)
		x := subscribe(t, h, l, ctx, "t", 0, SubscribeOpts{})
		l.append("t", true)
		require.Equal(t, []int64{3}, seqs(drain(t, x)), "the stream starts after the log's last event")
	})
}

// An append while a new topic registers its watch is read by the topic's
// first fetch, which runs after the watch is in place.
func TestAppendWhileTopicStartsWatching(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newMemLog(0, "t")
	l.append("t", false)
	h := setup(t, l, 256)
	x := subscribe(t, h, l, ctx, "t", 1, SubscribeOpts{})
	g := l.pause(opWatch, before, func(context.Context, int64) bool { return true })
	res := nextAsync(ctx, x)
	<-g.reached
	l.append("t", true)
	close(g.release)
	r := <-res
	require.NoError(t, r.err)
	require.Equal(t, []int64{2}, seqs(append(r.frames, drain(t, x)...)))
}

// A fetch that read across a membership change must not put what it read
// into the restarted window. Here the topic's fetch is held before its read
// after 3 while the topic goes solo (B leaves; A, the lagging member, is
// at 2) and shared again (C joins), with a window restarted at 2; the held
// fetch then reads 4. (It used to append it at the window's end, 2, and
// fail every member with "Seqs must be dense"; found by TestFanOutStress
// with seed 1661782346785465883.)
func TestFetchAcrossSoloSwitch(t *testing.T) {
	t.Parallel()
	l := newMemLog(0, "t")
	l.appendN("t", 2)
	h := setup(t, l, 256)
	a := subscribe(t, h, l, named("A"), "t", 2, SubscribeOpts{})
	frames, err := a.Next(named("A"), nil) // joins: solo
	require.NoError(t, err)
	require.Empty(t, frames)
	b := subscribe(t, h, l, named("B"), "t", 2, SubscribeOpts{})
	frames, err = b.Next(named("B"), nil) // joins: shared
	require.NoError(t, err)
	require.Empty(t, frames)

	l.append("t", false) // 3, into the window; A does not take it
	require.Equal(t, []int64{3}, seqs(collect(t, b, 3)))
	g := l.pause(opRead, before, by("", 3))
	l.append("t", false) // 4
	<-g.reached          // the fetch is about to read after 3

	b.Close() // A is alone: solo
	c := subscribe(t, h, l, named("C"), "t", 2, SubscribeOpts{})
	require.Equal(t, []int64{3, 4}, seqs(mustNext(t, c))) // joins: shared, window from 2
	close(g.release)                                      // the held fetch reads 4 now

	l.append("t", true)
	require.Equal(t, []int64{3, 4, 5}, seqs(drain(t, a)))
	require.Equal(t, []int64{5}, seqs(drain(t, c)))
}
