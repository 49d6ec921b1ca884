package fanout

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// poisoned turns PoisonReleased on for the test (which must not run in
// parallel with others that release frames) and off again after it.
func poisoned(t *testing.T, on bool) {
	t.Helper()
	PoisonReleased(on)
	t.Cleanup(func() { PoisonReleased(false) })
}

func TestNewFrame(t *testing.T) {
	f := NewFrame(100)
	require.Empty(t, f.JSON)
	require.GreaterOrEqual(t, cap(f.JSON), 100)
	one := f.Single()
	require.Len(t, one, 1)
	require.Same(t, f, one[0])
	require.False(t, f.own, "a new frame is nobody's until a subscription reads it")
}

// Release spoils (with PoisonReleased) or resets the frames a subscription
// read for itself, once, and leaves a shared topic's frames alone: another
// member still reads them.
func TestReleaseTakesOnlyOwnFrames(t *testing.T) {
	poisoned(t, true)
	ctx := context.Background()
	l := newMemLog(0, "solo", "shared")
	h := setup(t, l, 256)

	solo := subscribe(t, h, l, ctx, "solo", 0, SubscribeOpts{})
	l.append("solo", false)
	frames := collect(t, solo, 1)
	require.True(t, frames[0].own, "read by the subscription for itself")
	json := frames[0].JSON
	Release(frames)
	require.Equal(t, int64(-1), frames[0].Seq, "spoiled")
	require.Equal(t, bytes.Repeat([]byte("#"), len(json)), json)
	Release(frames) // a second release of the same frame does nothing
	l.mu.Lock()
	stored := l.tasks["solo"].frames[0]
	l.mu.Unlock()
	require.Equal(t, int64(1), stored.Seq, "the Source's frame is not the one released")

	l.append("shared", false)
	a := subscribe(t, h, l, ctx, "shared", 1, SubscribeOpts{})
	mustNextOrWait(t, a, false)
	shareTopic(t, h, l, "shared", 1)
	b := subscribe(t, h, l, ctx, "shared", 1, SubscribeOpts{})
	mustNextOrWait(t, b, false)
	l.append("shared", false)
	fa := collect(t, a, 2)
	require.False(t, fa[0].own, "a window's frame")
	Release(fa)
	fb := collect(t, b, 2)
	require.Same(t, fa[0], fb[0], "both members got the window's frame")
	require.Equal(t, int64(2), fb[0].Seq)
	require.NotContains(t, string(fb[0].JSON), "#")
}

// Without poison, a released frame is reset for NewFrame to reuse, its
// buffer kept unless it is larger than maxPooledJSON.
func TestReleaseResetsForReuse(t *testing.T) {
	poisoned(t, false)
	f := NewFrame(64)
	f.Seq, f.EventID, f.Terminal, f.CreatedAt = 7, "7", true, 1
	f.JSON = append(f.JSON, `{"eventId":"7"}`...)
	f.own = true
	Release(f.Single())
	require.Equal(t, Frame{JSON: f.JSON, one: f.one}, *f)
	require.Empty(t, f.JSON)
	require.GreaterOrEqual(t, cap(f.JSON), 64)
}
