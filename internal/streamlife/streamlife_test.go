package streamlife_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/streamlife"
)

func setup(t *testing.T) *streamlife.Group {
	t.Helper()
	g := streamlife.New()
	t.Cleanup(g.Close)
	return g
}

func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestEnterAndLeaveCount(t *testing.T) {
	t.Parallel()
	g := setup(t)
	a, ok := g.Enter()
	require.True(t, ok)
	b, ok := g.Enter()
	require.True(t, ok)
	require.Equal(t, 2, g.Active())
	a.Leave()
	a.Leave() // a second Leave does nothing
	require.Equal(t, 1, g.Active())
	b.Leave()
	require.Equal(t, 0, g.Active())
	require.False(t, isClosed(g.Done()))
}

func TestCloseRefusesNewStreamsAndIsIdempotent(t *testing.T) {
	t.Parallel()
	g := setup(t)
	g.Close()
	g.Close()
	require.True(t, isClosed(g.Done()))
	require.ErrorIs(t, g.Context().Err(), context.Canceled)
	s, ok := g.Enter()
	require.False(t, ok)
	require.Nil(t, s)
	require.Equal(t, 0, g.Active())
	require.NoError(t, g.Shutdown(cancelled()), "nothing to wait for")
}

func TestShutdownWithoutStreamsReturnsAtOnce(t *testing.T) {
	t.Parallel()
	g := setup(t)
	// Even with an ended context: there is nothing to wait for.
	require.NoError(t, g.Shutdown(cancelled()))
	require.NoError(t, g.Shutdown(context.Background()))
}

func TestShutdownWaitsForLeave(t *testing.T) {
	t.Parallel()
	g := setup(t)
	s, ok := g.Enter()
	require.True(t, ok)

	// An open stream without an abort function keeps Shutdown waiting
	// until its context ends.
	require.ErrorIs(t, g.Shutdown(cancelled()), context.Canceled)
	require.Equal(t, 1, g.Active())

	errc := make(chan error, 1)
	go func() { errc <- g.Shutdown(context.Background()) }()
	<-g.Done() // the stream is told to end
	s.Leave()
	require.NoError(t, <-errc)
	require.NoError(t, g.Shutdown(context.Background()), "Shutdown after shutdown")
}

func TestShutdownAbortsStreamsWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	g := setup(t)

	// A stream that ends only when aborted, from its own goroutine and not
	// at once: Shutdown must wait for its Leave.
	var aborts atomic.Int32
	var left atomic.Bool
	abortable, ok := g.Enter()
	require.True(t, ok)
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-release
		left.Store(true)
		abortable.Leave()
	}()
	abortable.OnAbort(func() {
		if aborts.Add(1) == 1 {
			close(release)
		}
	})
	// A stream inside a server's ServeHTTP: not abortable, not waited for
	// once the context has ended.
	inHandler, ok := g.Enter()
	require.True(t, ok)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	// Two concurrent Shutdowns: each returns the context's error once the
	// aborted stream has left; it is aborted once.
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- g.Shutdown(ctx) }()
	}
	for range 2 {
		require.ErrorIs(t, <-errs, context.DeadlineExceeded)
		require.True(t, left.Load(), "Shutdown returned before the aborted stream left")
	}
	wg.Wait()
	require.Equal(t, int32(1), aborts.Load())
	require.Equal(t, 1, g.Active())

	inHandler.Leave()
	require.NoError(t, g.Shutdown(context.Background()))
}

func TestOnAbortAfterTheDeadlineAbortsAtOnce(t *testing.T) {
	t.Parallel()
	g := setup(t)
	late, ok := g.Enter() // entered, not yet abortable (still in ServeHTTP)
	require.True(t, ok)
	require.ErrorIs(t, g.Shutdown(cancelled()), context.Canceled)

	aborted := false
	late.OnAbort(func() { aborted = true })
	require.True(t, aborted)
	late.Leave()
	require.NoError(t, g.Shutdown(context.Background()))
}

func TestStreamsThatLeftAreNotAborted(t *testing.T) {
	t.Parallel()
	g := setup(t)
	var aborted []string
	streams := map[string]*streamlife.Stream{}
	for _, name := range []string{"a", "b", "c"} {
		s, ok := g.Enter()
		require.True(t, ok)
		s.OnAbort(func() { aborted = append(aborted, name) })
		streams[name] = s
	}
	// Leave from the middle, the head and the tail of the list.
	streams["b"].Leave()
	stay, ok := g.Enter()
	require.True(t, ok)
	stay.OnAbort(func() {
		aborted = append(aborted, "stay")
		stay.Leave()
	})
	streams["a"].Leave()
	streams["c"].Leave()

	require.ErrorIs(t, g.Shutdown(cancelled()), context.Canceled)
	require.Equal(t, []string{"stay"}, aborted)
	require.Equal(t, 0, g.Active())
}

// wakeCounter counts its wakes.
type wakeCounter struct{ n atomic.Int32 }

func (w *wakeCounter) Wake() { w.n.Add(1) }

// TestOnCloseWakesOnce: Close wakes every stream that registered OnClose
// and has not left, once; a stream registering after Close is woken at
// once. A stream with only a wake is not waited for by an aborting
// Shutdown, and its abort-free Leave does not disturb the aborted ones.
func TestOnCloseWakesOnce(t *testing.T) {
	t.Parallel()
	g := setup(t)
	var a, b, left, late wakeCounter
	sa, _ := g.Enter()
	sa.OnClose(&a)
	sb, _ := g.Enter()
	sb.OnAbort(func() {})
	sb.OnClose(&b)
	sl, _ := g.Enter()
	sl.OnClose(&left)
	sl.Leave()

	g.Close()
	g.Close()
	require.Equal(t, []int32{1, 1, 0}, []int32{a.n.Load(), b.n.Load(), left.n.Load()})

	// Entering fails once closed, so "late" is a stream that entered
	// before Close and registers its wake only now.
	g2 := setup(t)
	sc, ok := g2.Enter()
	require.True(t, ok)
	g2.Close()
	sc.OnClose(&late)
	require.Equal(t, int32(1), late.n.Load(), "woken at once when already closed")
	sc.Leave()

	// Shutdown runs out of time: it aborts sb and waits only for it.
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	go func() { done <- g.Shutdown(ctx) }()
	time.Sleep(20 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v before the aborted stream left", err)
	default:
	}
	sb.Leave()
	require.ErrorIs(t, <-done, context.DeadlineExceeded)
	sa.Leave()
	require.NoError(t, g.Shutdown(context.Background()))
}

// releases counts calls of Release.
type releases int

func (r *releases) Release() { *r++ }

func TestReleaseIfIdleReleasesOnlyWithoutStreams(t *testing.T) {
	t.Parallel()
	g := setup(t)
	var r releases
	a, _ := g.Enter()
	b, _ := g.Enter()
	g.ReleaseIfIdle(&r)
	require.Zero(t, int(r), "two streams active")
	a.Leave()
	g.ReleaseIfIdle(&r)
	require.Zero(t, int(r), "one stream active")
	b.Leave()
	g.ReleaseIfIdle(&r)
	require.Equal(t, 1, int(r), "no stream left")
}
