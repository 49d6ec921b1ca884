package fanout

import (
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// A topic whose subscribers keep up holds no more than the frames of the
// latest read, and one with a stalled subscriber holds at most topicWindow
// frames; the stalled one still gets everything, partly from the Source.
func TestTopicWindowKeepsOnlyWhatSubscribersNeed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newMemLog(0, "t")
	h := setup(t, l, 16)
	windowLen := func() int {
		h.mu.Lock()
		tp := h.topics["t"]
		h.mu.Unlock()
		tp.mu.Lock()
		defer tp.mu.Unlock()
		return len(tp.window)
	}

	live := subscribe(t, h, l, ctx, "t", 0, SubscribeOpts{})
	_, err := live.Next(ctx, nil) // joins the topic
	require.NoError(t, err)
	for range 3000 {
		l.appendTaken(t, live, false)
	}
	require.LessOrEqual(t, windowLen(), 16, "the window holds frames its subscriber took")

	stalled := subscribe(t, h, l, ctx, "t", 3000, SubscribeOpts{})
	_, err = stalled.Next(ctx, nil)
	require.NoError(t, err)
	l.appendN("t", 3*topicWindow)
	l.append("t", true)
	for { // the live one drains
		frames, err := live.Next(ctx, nil)
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		if len(frames) == 0 {
			<-live.Ready()
		}
	}
	require.LessOrEqual(t, windowLen(), topicWindow)
	requireSeqs(t, span(3001, 3001+3*topicWindow), seqs(drain(t, stalled)), "the stalled subscriber")
}

func TestTopicTrim(t *testing.T) {
	t.Parallel()
	frame := func(seq int64, size int) *Frame { return &Frame{Seq: seq, JSON: make([]byte, size)} }
	tp := &topic{base: 10}
	for i := range int64(10) {
		f := frame(11+i, 1<<20) // 1 MiB each: 10 MiB in all
		tp.window = append(tp.window, f)
		tp.bytes += len(f.JSON)
	}
	tp.trim(10) // nothing taken yet: only the byte cap applies
	if tp.bytes > topicWindowBytes || len(tp.window) != 8 || tp.base != 12 || tp.window[0].Seq != 13 {
		t.Fatalf("after byte cap: base %d, %d frames, %d bytes", tp.base, len(tp.window), tp.bytes)
	}
	tp.trim(15) // every subscriber took up to 15
	if tp.base != 15 || len(tp.window) != 5 || tp.window[0].Seq != 16 || tp.bytes != 5<<20 {
		t.Fatalf("after consumption: base %d, %d frames, %d bytes", tp.base, len(tp.window), tp.bytes)
	}
	tp.trim(99) // beyond the window: everything goes
	if tp.base != 20 || len(tp.window) != 0 || tp.bytes != 0 {
		t.Fatalf("after full consumption: base %d, %d frames, %d bytes", tp.base, len(tp.window), tp.bytes)
	}
}

// A published view must stay intact however the fetcher trims and appends
// afterwards: a subscriber may be reading it without a lock. (Trimming used
// to clear dropped slots in place, so a subscriber lagging past the window's
// caps could read nil frames.)
func TestTopicViewSurvivesTrim(t *testing.T) {
	t.Parallel()
	frame := func(seq int64) *Frame { return &Frame{Seq: seq, JSON: []byte("{}")} }
	tp := &topic{}
	for i := range int64(64) {
		tp.window = append(tp.window, frame(i+1))
		tp.bytes += 2
	}
	tp.publish()
	held := tp.view.Load()
	sub := &Subscription{last: 0, batch: 1024, ready: make(chan struct{}, 1)}

	// The fetcher moves on: everything taken, then more appended and
	// trimmed in steps (exercising both re-slicing and compaction).
	for range 20 {
		tp.trim(tp.base + 3)
		for range 5 {
			tp.window = append(tp.window, frame(tp.base+int64(len(tp.window))+1))
		}
		tp.publish()
	}
	for i, f := range held.frames {
		if f == nil || f.Seq != int64(i+1) {
			t.Fatalf("held view slot %d changed to %v", i, f)
		}
	}
	// A subscriber reading the current view sees dense Seqs from its base.
	sub.last = tp.view.Load().base
	got, ok := tp.frames(sub, nil)
	if !ok || len(got) != len(tp.window) {
		t.Fatalf("frames: ok=%v, %d frames, window %d", ok, len(got), len(tp.window))
	}
	for i, f := range got {
		if f.Seq != tp.base+int64(i)+1 {
			t.Fatalf("frame %d has Seq %d, want %d", i, f.Seq, tp.base+int64(i)+1)
		}
	}
	// Compaction bounds what the window's array keeps reachable.
	if c, n := cap(tp.window), len(tp.window); c > 2*n+64 {
		t.Fatalf("window keeps cap %d for %d live frames", c, n)
	}
}
