package fanout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestReplayThenLive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newMemLog(0, "t")
	l.appendN("t", 4)
	var g gauge
	h := setup(t, l, 256, func(c *Config) { c.StreamsActive = g.add })

	sub := subscribe(t, h, l, ctx, "t", 0, SubscribeOpts{Transport: "sse"})
	require.Equal(t, "t", sub.TaskID())
	require.EqualValues(t, 1, g.value("sse"))
	frames, err := next(t, sub)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3, 4}, seqs(frames))
	require.Equal(t, "4", frames[3].EventID)

	// Nothing new: Next returns no frames and no error.
	more, err := sub.Next(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, more)

	l.append("t", false)
	frames, err = next(t, sub)
	require.NoError(t, err)
	require.Equal(t, []int64{5}, seqs(frames))

	l.append("t", true)
	frames, err = next(t, sub)
	require.NoError(t, err)
	require.Equal(t, []int64{6}, seqs(frames))
	require.True(t, frames[0].Terminal)
	_, err = sub.Next(ctx, nil)
	require.ErrorIs(t, err, io.EOF)

	sub.Close()
	sub.Close()
	require.Zero(t, g.value("sse"))
	_, err = sub.Next(ctx, nil)
	require.ErrorIs(t, err, errClosed)
}

func TestSubscribeErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newMemLog(5, "t")
	l.appendN("t", 12) // 8..12 retained
	h := setup(t, l, 256)
	for after, want := range map[int64]error{13: errInvalid, 6: errExpired} {
		_, err := h.Subscribe(ctx, "t", l.start("t", after), SubscribeOpts{})
		require.ErrorIs(t, err, want, "after %d", after)
	}
	_, err := h.Subscribe(ctx, "nope", Start{}, SubscribeOpts{})
	require.ErrorIs(t, err, errNotFound)
	_, err = h.Subscribe(ctx, "t", Start{}, SubscribeOpts{Signal: make(chan struct{})})
	require.Error(t, err, "an unbuffered signal channel is refused")

	sub := subscribe(t, h, l, ctx, "t", 9, SubscribeOpts{})
	frames, err := next(t, sub)
	require.NoError(t, err)
	require.Equal(t, []int64{10, 11, 12}, seqs(frames))
}

func TestSubscribeAtTerminal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newMemLog(0, "t")
	l.append("t", false)
	l.append("t", true)
	h := setup(t, l, 256)
	sub := subscribe(t, h, l, ctx, "t", 1, SubscribeOpts{})
	require.Equal(t, []int64{2}, seqs(drain(t, sub)))
	// Resuming after the terminal event ends at once.
	sub = subscribe(t, h, l, ctx, "t", 2, SubscribeOpts{})
	_, err := sub.Next(ctx, nil)
	require.ErrorIs(t, err, io.EOF)
}

// TestExactlyOnce runs many subscribers against fast appenders and checks
// each sees every event once, in order, including one that falls far
// behind the live window and must catch up from the Source.
func TestExactlyOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newMemLog(0, "t")
	l.append("t", false)
	var g gauge
	h := setup(t, l, 64, func(c *Config) { c.StreamsActive = g.add })
	const perAppender = 1250
	const total = 2 + 4*perAppender // several times the live window

	const subscribers = 8
	results := make([][]int64, subscribers)
	var wg sync.WaitGroup
	for i := range subscribers {
		sub := subscribe(t, h, l, ctx, "t", 0, SubscribeOpts{Transport: "ws"})
		wg.Go(func() {
			defer sub.Close()
			results[i] = seqs(drain(t, sub))
		})
	}
	// The laggard joins the live window, then reads nothing until the
	// appenders are done.
	lag := subscribe(t, h, l, ctx, "t", 0, SubscribeOpts{})
	first, err := next(t, lag)
	require.NoError(t, err)
	require.Equal(t, []int64{1}, seqs(first))

	var appenders sync.WaitGroup
	for range 4 {
		appenders.Go(func() { l.appendN("t", perAppender) })
	}
	appenders.Wait()
	l.append("t", true)
	wg.Wait()

	for i, got := range results {
		requireSeqs(t, span(1, total), got, "subscriber ", i)
	}
	requireSeqs(t, span(2, total), seqs(drain(t, lag)), "the laggard catches up from the Source")
	require.Zero(t, g.value("ws"))
}

func TestHeartbeatDue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newMemLog(0, "t")
	l.append("t", false)
	h := setup(t, l, 256)
	sub := subscribe(t, h, l, ctx, "t", 1, SubscribeOpts{HeartbeatInterval: 10 * time.Millisecond})
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
	l := newMemLog(0, "a", "b")
	l.append("a", false)
	l.append("b", false)
	h := setup(t, l, 256)
	signal := make(chan struct{}, 1)
	subA := subscribe(t, h, l, ctx, "a", 1, SubscribeOpts{Signal: signal})
	subB := subscribe(t, h, l, ctx, "b", 1, SubscribeOpts{Signal: signal})
	for _, s := range []*Subscription{subA, subB} {
		frames, err := s.Next(ctx, nil) // join the live topic
		require.NoError(t, err)
		require.Empty(t, frames)
	}
	drainReady(subA)
	l.append("b", false)
	<-signal
	frames, err := subB.Next(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, []int64{2}, seqs(frames))
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newMemLog(0, "t")
	var g gauge
	h := setup(t, l, 256, func(c *Config) { c.StreamsActive = g.add })
	sub, err := h.Subscribe(ctx, "t", Start{}, SubscribeOpts{Transport: "sse", HeartbeatInterval: time.Hour})
	require.NoError(t, err)
	_, err = sub.Next(ctx, nil) // joins a topic
	require.NoError(t, err)

	// Shutdown waits for the transport to close the subscription.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, h.Shutdown(short), context.DeadlineExceeded)

	<-sub.Ready()
	frames, err := sub.Next(ctx, nil)
	require.Empty(t, frames)
	require.ErrorIs(t, err, errClosed)
	_, err = h.Subscribe(ctx, "t", Start{}, SubscribeOpts{})
	require.ErrorIs(t, err, errClosed)
	require.ErrorIs(t, h.Wait(ctx, "t", 0, time.Hour, readCheck(l, "t", 0)), errClosed)
	sub.Close()
	require.NoError(t, h.Shutdown(ctx))
	require.NoError(t, h.Shutdown(ctx), "twice is fine")
	require.Zero(t, g.value("sse"))
}

// The hub's goroutines (topic fetchers, heartbeat schedulers) end with the
// last subscription, without a shutdown. Not parallel: goleak looks at
// every goroutine.
func TestNoGoroutinesOutliveStreams(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	ctx := context.Background()
	l := newMemLog(0, "t")
	l.append("t", false)
	h, err := New(Config{Source: l})
	require.NoError(t, err)
	sub, err := h.Subscribe(ctx, "t", Start{}, SubscribeOpts{Transport: "sse", HeartbeatInterval: time.Hour})
	require.NoError(t, err)
	_, err = next(t, sub)
	require.NoError(t, err)
	l.append("t", false)
	frames, err := next(t, sub)
	require.NoError(t, err)
	require.Len(t, frames, 1)
	sub.Close()
	goleak.VerifyNone(t, ignore)
}

// readCheck returns the check of a long poll after cursor after: a read of
// l, as the caller of Wait reads its store, counting its calls in n.
func readCheck(l *memLog, taskID string, after int64, n ...*atomic.Int64) func() (bool, error) {
	return func() (bool, error) {
		for _, c := range n {
			c.Add(1)
		}
		frames, err := l.read(taskID, after, 1)
		return len(frames) > 0, err
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("woken by an append", func(t *testing.T) {
		t.Parallel()
		l := newMemLog(0, "t")
		l.append("t", false)
		h := setup(t, l, 256)
		g := l.pause(opWatch, late, func(context.Context, int64) bool { return true })
		done := make(chan error, 1)
		var checks atomic.Int64
		go func() { done <- h.Wait(ctx, "t", 1, time.Hour, readCheck(l, "t", 1, &checks)) }()
		<-g.reached // the waiter's topic watches the task
		close(g.release)
		require.Eventually(t, func() bool { return checks.Load() >= 1 }, 5*time.Second, time.Millisecond)
		l.append("t", false)
		require.NoError(t, <-done)
		require.Equal(t, int64(2), checks.Load(), "a check after the watch, then one for the append")
		require.Zero(t, l.reads(), "the waiter reads nothing from the Source")
	})

	t.Run("finds an append made before it watched", func(t *testing.T) {
		t.Parallel()
		l := newMemLog(0, "t")
		l.append("t", false)
		h := setup(t, l, 256)
		// The caller read the log after event 1; event 2 lands before
		// the waiter's topic watches, so no notification reaches it.
		l.append("t", false)
		var checks atomic.Int64
		require.NoError(t, h.Wait(ctx, "t", 1, time.Hour, readCheck(l, "t", 1, &checks)))
		require.Equal(t, int64(1), checks.Load())
	})

	t.Run("reads once before it waits", func(t *testing.T) {
		t.Parallel()
		for _, shared := range []bool{false, true} {
			l := newMemLog(0, "t")
			l.append("t", false)
			h := setup(t, l, 256)
			if shared {
				sub, err := h.Subscribe(ctx, "t", Start{After: 1}, SubscribeOpts{})
				require.NoError(t, err)
				defer sub.Close()
				_, err = sub.Next(ctx, nil)
				require.NoError(t, err)
			}
			var checks atomic.Int64
			require.NoError(t, h.Wait(ctx, "t", 1, 30*time.Millisecond, readCheck(l, "t", 1, &checks)))
			require.Equal(t, int64(1), checks.Load(), "shared=%v: joining the topic is no reason to read again", shared)
		}
	})

	t.Run("a signal without events goes on waiting", func(t *testing.T) {
		t.Parallel()
		l := newMemLog(0, "t")
		l.append("t", false)
		h := setup(t, l, 256)
		var checks atomic.Int64
		done := make(chan error, 1)
		go func() { done <- h.Wait(ctx, "t", 1, time.Hour, readCheck(l, "t", 1, &checks)) }()
		require.Eventually(t, func() bool { return checks.Load() >= 1 }, 5*time.Second, time.Millisecond)
		l.notify("t") // spurious: nothing was appended
		require.Eventually(t, func() bool { return checks.Load() >= 2 }, 5*time.Second, time.Millisecond)
		select {
		case err := <-done:
			t.Fatalf("Wait ended on a signal without events: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		l.append("t", false)
		require.NoError(t, <-done)
	})

	t.Run("in a shared topic", func(t *testing.T) {
		t.Parallel()
		l := newMemLog(0, "t")
		l.append("t", false)
		h := setup(t, l, 256)
		sub, err := h.Subscribe(ctx, "t", Start{After: 1}, SubscribeOpts{})
		require.NoError(t, err)
		defer sub.Close()
		_, err = sub.Next(ctx, nil) // joins the topic, solo
		require.NoError(t, err)
		var checks atomic.Int64
		done := make(chan error, 1)
		go func() { done <- h.Wait(ctx, "t", 1, time.Hour, readCheck(l, "t", 1, &checks)) }()
		require.Eventually(t, func() bool { return checks.Load() >= 1 }, 5*time.Second, time.Millisecond)
		l.append("t", false)
		require.NoError(t, <-done)
		frames, err := next(t, sub)
		require.NoError(t, err)
		require.Equal(t, []int64{2}, seqs(frames), "the stream still gets the event")
	})

	t.Run("times out", func(t *testing.T) {
		t.Parallel()
		l := newMemLog(0, "t")
		h := setup(t, l, 256)
		require.NoError(t, h.Wait(ctx, "t", 0, 10*time.Millisecond, readCheck(l, "t", 0)))
	})

	t.Run("ends with its context", func(t *testing.T) {
		t.Parallel()
		l := newMemLog(0, "t")
		h := setup(t, l, 256)
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		require.ErrorIs(t, h.Wait(ctx, "t", 0, time.Hour, readCheck(l, "t", 0)), context.Canceled)
	})

	t.Run("returns the check's error", func(t *testing.T) {
		t.Parallel()
		l := newMemLog(2, "t")
		l.appendN("t", 5) // 4..5 retained
		h := setup(t, l, 256)
		require.ErrorIs(t, h.Wait(ctx, "t", 1, time.Hour, readCheck(l, "t", 1)), errExpired)
	})

	t.Run("rides out a transient read failure", func(t *testing.T) {
		t.Parallel()
		l := newMemLog(0, "t")
		h := setup(t, l, 256)
		var checks atomic.Int64
		err := h.Wait(ctx, "t", 0, time.Hour, func() (bool, error) {
			// No append and no signal: only the backoff calls again.
			if checks.Add(1) <= 2 {
				return false, errors.New("store briefly unavailable")
			}
			return true, nil
		})
		require.NoError(t, err)
		require.Equal(t, int64(3), checks.Load())
	})

	t.Run("times out through a lasting read failure", func(t *testing.T) {
		t.Parallel()
		l := newMemLog(0, "t")
		h := setup(t, l, 256)
		var checks atomic.Int64
		err := h.Wait(ctx, "t", 0, 50*time.Millisecond, func() (bool, error) {
			checks.Add(1)
			return false, errors.New("store down")
		})
		require.NoError(t, err, "the caller's last read reports a lasting failure")
		require.GreaterOrEqual(t, checks.Load(), int64(2), "retried with backoff")
		require.Less(t, checks.Load(), int64(10), "backoff, not a spin")
	})

	t.Run("returns a deleted task's error", func(t *testing.T) {
		t.Parallel()
		l := newMemLog(0, "t")
		h := setup(t, l, 256)
		var checks atomic.Int64
		done := make(chan error, 1)
		go func() { done <- h.Wait(ctx, "t", 0, time.Hour, readCheck(l, "t", 0, &checks)) }()
		require.Eventually(t, func() bool { return checks.Load() >= 1 }, 5*time.Second, time.Millisecond)
		l.delete("t")
		require.ErrorIs(t, <-done, errNotFound)
	})

	t.Run("returns a shared topic's permanent error", func(t *testing.T) {
		t.Parallel()
		l := newMemLog(0, "t")
		h := setup(t, l, 256)
		sub, err := h.Subscribe(ctx, "t", Start{}, SubscribeOpts{})
		require.NoError(t, err)
		defer sub.Close()
		_, err = sub.Next(ctx, nil)
		require.NoError(t, err)
		var checks atomic.Int64
		done := make(chan error, 1)
		go func() {
			done <- h.Wait(ctx, "t", 0, time.Hour, func() (bool, error) {
				// A caller whose store lags behind the deletion: only
				// the topic's read reports it.
				checks.Add(1)
				return false, nil
			})
		}()
		require.Eventually(t, func() bool { return checks.Load() >= 1 }, 5*time.Second, time.Millisecond)
		l.delete("t")
		require.ErrorIs(t, <-done, errNotFound)
	})
}

// joined returns a hub over a task with one event (changed by mod before
// use) and a subscriber that has joined the task's topic after it.
func joined(t *testing.T, mod ...func(*Hub)) (*memLog, *Hub, *Subscription) {
	t.Helper()
	ctx := context.Background()
	l := newMemLog(0, "t")
	l.append("t", false)
	h := setup(t, l, 256)
	for _, m := range mod {
		m(h)
	}
	a := subscribe(t, h, l, ctx, "t", 1, SubscribeOpts{})
	frames, err := a.Next(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, frames)
	return l, h, a
}

// A deleted task fails every member of its topic with ErrNotFound.
func TestTaskDeleted(t *testing.T) {
	t.Parallel()
	l, _, a := joined(t)
	l.delete("t")
	_, err := next(t, a)
	require.ErrorIs(t, err, errNotFound)
}

// A topic whose log went backwards (its cursor is beyond the last event)
// fails its members instead of retrying forever.
func TestTopicInvalidCursorIsPermanent(t *testing.T) {
	t.Parallel()
	l, _, a := joined(t)
	l.failReads(func(after int64) error {
		if after == 1 {
			return fmt.Errorf("%w: the log was reset", errInvalid)
		}
		return nil
	})
	l.append("t", false)
	_, err := next(t, a)
	require.ErrorIs(t, err, errInvalid)
}

// A topic retries failed reads, and its members get the events once the
// Source recovers.
func TestTopicRetriesFailedReads(t *testing.T) {
	t.Parallel()
	l, _, a := joined(t)
	var mu sync.Mutex
	failures := 3
	l.failReads(func(int64) error {
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 {
			failures--
			return errors.New("connection reset")
		}
		return nil
	})
	l.append("t", true)
	require.Equal(t, []int64{2}, seqs(drain(t, a)))
}

// A topic that dies while it waits to retry a failed read stops waiting:
// its goroutine does not outlive its last member.
func TestTopicRetryEndsWithTopic(t *testing.T) {
	t.Parallel()
	l, h, a := joined(t, func(h *Hub) { h.retryMin = time.Hour })
	failed := make(chan struct{})
	var mu sync.Mutex
	reads := 0
	l.failReads(func(int64) error {
		mu.Lock()
		defer mu.Unlock()
		if reads++; reads == 2 {
			close(failed) // the fetcher's read failed: it waits to retry
		}
		return errors.New("connection reset")
	})
	l.append("t", false)
	// A, the topic's one member, reads the Source itself; its failed read
	// hands the topic to the fetcher, which retries.
	frames, err := a.Next(context.Background(), nil)
	require.NoError(t, err)
	require.Empty(t, frames)
	<-failed
	a.Close()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the topic's fetcher still waits to retry")
	}
}

func TestHold(t *testing.T) {
	t.Parallel()
	l := newMemLog(0, "t")
	l.append("t", true)
	h := setup(t, l, 256)

	t.Run("waits its timeout", func(t *testing.T) {
		start := time.Now()
		require.NoError(t, h.Hold(context.Background(), "t", 150*time.Millisecond))
		require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
	})
	t.Run("ends with ctx", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		require.ErrorIs(t, h.Hold(ctx, "t", time.Hour), context.Canceled)
	})
	t.Run("joins no topic", func(t *testing.T) {
		done := make(chan error, 1)
		ctx, cancel := context.WithCancel(context.Background())
		go func() { done <- h.Hold(ctx, "t", time.Hour) }()
		waitSubs(h, 1)
		h.mu.Lock()
		require.Empty(t, h.topics)
		h.mu.Unlock()
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	})
}

func TestHoldEndsAtShutdown(t *testing.T) {
	t.Parallel()
	l := newMemLog(0, "t")
	h, err := New(Config{Source: l, Logger: slog.New(slog.DiscardHandler), ErrClosed: errClosed})
	require.NoError(t, err)
	held := make(chan error, 1)
	go func() { held <- h.Hold(context.Background(), "t", time.Hour) }()
	waitSubs(h, 1) // the hold is registered: Shutdown has to end it
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, h.Shutdown(ctx))
	require.ErrorIs(t, <-held, errClosed)
	require.ErrorIs(t, h.Hold(context.Background(), "t", time.Hour), errClosed)
}

// waitSubs waits until h has n subscriptions (holds and waits included).
func waitSubs(h *Hub, n int) {
	for {
		h.mu.Lock()
		got := len(h.subs)
		h.mu.Unlock()
		if got == n {
			return
		}
		runtime.Gosched()
	}
}

// The heartbeat scheduler's decision, tick by tick with made-up times: a
// delivery (lastActive set to 0) restarts the idle time at the tick that sees
// it, and a member is due four ticks (one interval, less half a tick of
// slack) after that, not before, and only once until it sends.
func TestHeartbeatCheck(t *testing.T) {
	l := newMemLog(0, "t")
	h := setup(t, l, 256)
	const interval = 40 * time.Millisecond
	g := &hbGroup{h: h, interval: interval, members: map[*Subscription]struct{}{}}
	sub := h.newSubscription("t", 0, SubscribeOpts{HeartbeatInterval: interval})
	g.members[sub] = struct{}{}
	tick := int64(g.tick())
	require.Equal(t, int64(10*time.Millisecond), tick)
	start := int64(1_000_000_000)
	check := func(at int64) bool {
		g.mu.Lock()
		g.check(at)
		g.mu.Unlock()
		return sub.hbDue.Load()
	}
	require.False(t, check(start), "a new subscription is active: its idle time starts at this tick")
	require.Equal(t, start, sub.lastActive.Load())
	for i := int64(1); i <= 3; i++ {
		require.False(t, check(start+i*tick), "idle for %d ticks", i)
	}
	require.False(t, check(start+4*tick-tick/2-1), "a tick early by more than half a tick")
	require.True(t, check(start+4*tick-tick/2), "a late tick before, an early one now: due")
	require.True(t, sub.HeartbeatDue())
	require.False(t, sub.HeartbeatDue())

	// The heartbeat counts as activity: the next one is four ticks after
	// the tick that sees it.
	hb := start + 4*tick
	require.False(t, check(hb))
	require.False(t, check(hb+3*tick))
	require.True(t, check(hb+4*tick))
	sub.ClearHeartbeat() // frames went out instead

	// Frames in every tick keep the member from being due.
	at := hb + 5*tick
	for range 20 {
		sub.markActive()
		require.False(t, check(at))
		at += tick
	}
	require.False(t, check(at+2*tick), "idle for three ticks after the last frame's tick")
	require.True(t, check(at+3*tick))
}
