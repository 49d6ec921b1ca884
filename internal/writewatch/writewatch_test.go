package writewatch

import (
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a manual clock for check.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func setup(t *testing.T, timeout time.Duration) (*Watchdog, *clock) {
	c := &clock{t: time.Unix(1_000, 0)}
	w := New(timeout)
	w.now = c.now
	t.Cleanup(w.Wait)
	return w, c
}

// A write that does not return is cut off once 7/8 of the timeout have
// passed (the check runs every timeout/8, so within the timeout), once.
func TestStuckWriteIsCutWithinTheTimeout(t *testing.T) {
	t.Parallel()
	w, c := setup(t, 800*time.Millisecond)
	cuts := 0
	x := w.Add(func() { cuts++ })
	defer x.Remove()
	x.Begin()
	c.t = c.t.Add(700*time.Millisecond - 1)
	w.check(c.t)
	require.Zero(t, cuts, "not before 7/8 of the timeout")
	require.False(t, x.Cut())
	c.t = c.t.Add(1)
	w.check(c.t)
	require.Equal(t, 1, cuts)
	require.True(t, x.Cut())
	c.t = c.t.Add(time.Hour)
	w.check(c.t)
	require.Equal(t, 1, cuts, "cut once")
	// The cut write fails (its connection was closed): End says why.
	err := x.End(net.ErrClosed)
	require.ErrorIs(t, err, ErrCut)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.ErrorIs(t, err, net.ErrClosed)
}

// End passes a write's error on unchanged when the watchdog did not cut it.
func TestEndWithoutCut(t *testing.T) {
	t.Parallel()
	w, _ := setup(t, time.Second)
	x := w.Add(func() {})
	defer x.Remove()
	x.Begin()
	require.Equal(t, net.ErrClosed, x.End(net.ErrClosed))
	x.Begin()
	require.NoError(t, x.End(nil))
}

// A client that reads slowly but keeps up: each write returns in time, so
// however long the stream lasts it is never cut. An idle stream (no write
// in progress) is never cut either.
func TestProgressingWritesAreNotCut(t *testing.T) {
	t.Parallel()
	w, c := setup(t, 800*time.Millisecond)
	cut := false
	x := w.Add(func() { cut = true })
	defer x.Remove()
	for range 100 {
		x.Begin()
		c.t = c.t.Add(600 * time.Millisecond) // a slow write...
		w.check(c.t)
		require.NoError(t, x.End(nil)) // ...that completes
		c.t = c.t.Add(time.Second)
		w.check(c.t)
	}
	require.False(t, cut)
	require.False(t, x.Cut())
}

// Only the overrunning stream is cut.
func TestOnlyTheStuckWriterIsCut(t *testing.T) {
	t.Parallel()
	w, c := setup(t, 800*time.Millisecond)
	var cutA, cutB bool
	a := w.Add(func() { cutA = true })
	defer a.Remove()
	b := w.Add(func() { cutB = true })
	defer b.Remove()
	a.Begin()
	c.t = c.t.Add(400 * time.Millisecond)
	b.Begin()
	c.t = c.t.Add(400 * time.Millisecond)
	w.check(c.t)
	require.True(t, cutA)
	require.False(t, cutB)
}

// The goroutine runs only while there are writers, and really cuts a
// stuck write on its own.
func TestGoroutineLifetime(t *testing.T) {
	t.Parallel()
	w := New(40 * time.Millisecond)
	cut := make(chan struct{})
	x := w.Add(func() { close(cut) })
	x.Begin()
	select {
	case <-cut:
	case <-time.After(10 * time.Second):
		t.Fatal("the stuck write was not cut")
	}
	x.Remove()
	x.Remove()
	w.Wait()
	y := w.Add(func() {})
	y.Remove()
	w.Wait()
}
