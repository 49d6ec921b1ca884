package fanout

import (
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// inlineRecorder is a SubscribeOpts.Deliver that records what it gets and
// answers sent (false: the transport kept part of it for its goroutine).
type inlineRecorder struct {
	sent  bool
	seqs  []int64
	calls int
}

func (r *inlineRecorder) deliver(frames []*Frame) bool {
	r.calls++
	r.seqs = append(r.seqs, seqs(frames)...)
	return r.sent
}

// inlineSetup returns a hub over l that reads inline, and a subscription to
// "t" from after with rec as its Deliver, joined to its (solo) topic.
func inlineSetup(t *testing.T, l *memLog, batch int, after int64, rec *inlineRecorder) *Subscription {
	t.Helper()
	h := setup(t, l, batch, func(c *Config) { c.InlineReads = true })
	sub := subscribe(t, h, l, context.Background(), "t", after, SubscribeOpts{Transport: "sse", Deliver: rec.deliver})
	sub.Lock()
	frames, err := sub.Next(context.Background(), nil)
	sub.Unlock()
	require.NoError(t, err)
	requireSeqs(t, span(after+1, l.start("t", 0).LastSeq), seqs(frames))
	require.Same(t, sub, sub.t.solo.Load(), "the topic is solo")
	drainReady(sub)
	return sub
}

// available returns the Seqs Next hands out now, under the lock.
func available(t *testing.T, sub *Subscription) []int64 {
	t.Helper()
	sub.Lock()
	defer sub.Unlock()
	var out []*Frame
	for {
		n := len(out)
		var err error
		out, err = sub.Next(context.Background(), out)
		require.NoError(t, err)
		if len(out) == n {
			return seqs(out)
		}
	}
}

func requireNoSignal(t *testing.T, sub *Subscription) {
	t.Helper()
	select {
	case <-sub.Ready():
		t.Fatal("Ready fired")
	default:
	}
}

func requireSignal(t *testing.T, sub *Subscription) {
	t.Helper()
	select {
	case <-sub.Ready():
	default:
		t.Fatal("Ready did not fire")
	}
}

// With a Source that reads inline, each append to a task with one
// subscriber is handed to its Deliver on the appending goroutine, once and
// in order, without waking the subscriber; the terminal event wakes it for
// the end.
func TestInlineDelivery(t *testing.T) {
	t.Parallel()
	l := newMemLog(0, "t")
	l.appendN("t", 2)
	rec := &inlineRecorder{sent: true}
	sub := inlineSetup(t, l, 256, 1, rec)

	for want := int64(3); want <= 5; want++ {
		l.append("t", false)
		require.Equal(t, span(3, want), rec.seqs, "delivered before the append returned")
		requireNoSignal(t, sub)
	}
	require.Equal(t, 3, rec.calls)
	frames, err := sub.Next(context.Background(), nil)
	require.NoError(t, err)
	require.Empty(t, frames, "Next has nothing left to deliver")

	l.append("t", true)
	require.Equal(t, span(3, 6), rec.seqs)
	requireSignal(t, sub)
	sub.Lock()
	_, err = sub.Next(context.Background(), nil)
	sub.Unlock()
	require.ErrorIs(t, err, io.EOF)
}

// A Deliver that could not send everything is answered by a signal, so
// the transport's goroutine writes the rest; later appends still go to
// Deliver, which orders them after what it kept.
func TestInlineDeliveryNotSent(t *testing.T) {
	t.Parallel()
	l := newMemLog(0, "t")
	rec := &inlineRecorder{sent: false}
	sub := inlineSetup(t, l, 256, 0, rec)
	l.append("t", false)
	requireSignal(t, sub)
	l.append("t", false)
	require.Equal(t, []int64{1, 2}, rec.seqs)
	sub.Lock()
	frames, err := sub.Next(context.Background(), nil)
	sub.Unlock()
	require.NoError(t, err)
	require.Empty(t, frames, "the frames were Deliver's")
}

// While the transport holds the subscription's lock (it is in Next or
// writing), an append only signals it, and its next Next reads the event.
func TestInlineDeliveryWhileBusy(t *testing.T) {
	t.Parallel()
	l := newMemLog(0, "t")
	rec := &inlineRecorder{sent: true}
	sub := inlineSetup(t, l, 256, 0, rec)
	sub.Lock()
	l.append("t", false)
	l.append("t", false)
	requireSignal(t, sub)
	require.Zero(t, rec.calls)
	frames, err := sub.Next(context.Background(), nil)
	sub.Unlock()
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2}, seqs(frames))

	l.append("t", false)
	require.Equal(t, []int64{3}, rec.seqs, "inline again once the lock is free")
}

// An inline read that fills a batch (the subscriber was busy while events
// piled up) or fails leaves the events to the transport's own Next, which
// reads them in batches or retries; nothing is lost or repeated.
func TestInlineDeliveryFallsBack(t *testing.T) {
	t.Parallel()
	t.Run("full batch", func(t *testing.T) {
		t.Parallel()
		l := newMemLog(0, "t")
		rec := &inlineRecorder{sent: true}
		sub := inlineSetup(t, l, 2, 0, rec)
		sub.Lock()
		l.appendN("t", 2)
		sub.Unlock()
		drainReady(sub)
		l.append("t", false) // 3 new events: more than a batch
		require.Zero(t, rec.calls)
		requireSignal(t, sub)
		requireSeqs(t, span(1, 3), available(t, sub))
		l.append("t", false)
		require.Equal(t, []int64{4}, rec.seqs)
	})
	t.Run("read error", func(t *testing.T) {
		t.Parallel()
		l := newMemLog(0, "t")
		rec := &inlineRecorder{sent: true}
		sub := inlineSetup(t, l, 256, 0, rec)
		l.failReads(func(int64) error { return errors.New("store down") })
		l.append("t", false)
		require.Zero(t, rec.calls)
		requireSignal(t, sub)
		l.failReads(nil)
		requireSeqs(t, []int64{1}, available(t, sub))
	})
}

// A solo topic delivers inline only when the Source reads inline.
func TestInlineDeliverySoloNeedsInlineReads(t *testing.T) {
	t.Parallel()
	l := newMemLog(0, "t")
	h := setup(t, l, 256)
	rec := &inlineRecorder{sent: true}
	sub := subscribe(t, h, l, context.Background(), "t", 0, SubscribeOpts{Deliver: rec.deliver})
	_, err := sub.Next(context.Background(), nil)
	require.NoError(t, err)
	l.append("t", false)
	require.Zero(t, rec.calls)
	requireSignal(t, sub)
	requireSeqs(t, []int64{1}, available(t, sub))
}

// The fetcher of a shared topic delivers inline to the members with a
// Deliver, whatever the Source, and signals the others; every member gets
// every event once. A member that is busy when the fetcher comes round is
// signalled and takes the frames from the window itself.
func TestInlineDeliveryShared(t *testing.T) {
	t.Parallel()
	for _, inlineReads := range []bool{false, true} {
		t.Run(map[bool]string{false: "source reads elsewhere", true: "source reads inline"}[inlineReads], func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			l := newMemLog(0, "t")
			h := setup(t, l, 256, func(c *Config) { c.InlineReads = inlineReads })
			rec := &inlineRecorder{sent: true}
			sub := subscribe(t, h, l, ctx, "t", 0, SubscribeOpts{Deliver: rec.deliver})
			other := subscribe(t, h, l, ctx, "t", 0, SubscribeOpts{})
			for _, s := range []*Subscription{sub, other} {
				s.Lock()
				_, err := s.Next(ctx, nil)
				s.Unlock()
				require.NoError(t, err)
			}
			require.Nil(t, sub.t.solo.Load(), "two members: shared")
			delivered := func() []int64 {
				sub.Lock()
				defer sub.Unlock()
				return append([]int64(nil), rec.seqs...)
			}

			l.append("t", false)
			got, err := next(t, other)
			require.NoError(t, err)
			requireSeqs(t, []int64{1}, seqs(got))
			require.Eventually(t, func() bool { return len(delivered()) == 1 }, 10*time.Second, time.Millisecond)
			requireSeqs(t, []int64{1}, delivered())

			// Busy: the fetcher signals it instead.
			sub.Lock()
			drainReady(sub)
			l.append("t", false)
			got, err = next(t, other)
			require.NoError(t, err)
			requireSeqs(t, []int64{2}, seqs(got))
			got, err = next(t, sub) // waits for the signal
			sub.Unlock()
			require.NoError(t, err)
			requireSeqs(t, []int64{2}, seqs(got))
			requireSeqs(t, []int64{1}, delivered())

			l.append("t", true)
			requireSeqs(t, []int64{3}, seqs(drain(t, other)))
			require.Eventually(t, func() bool { return len(delivered()) == 2 }, 10*time.Second, time.Millisecond)
			requireSeqs(t, []int64{1, 3}, delivered())
			sub.Lock()
			_, err = sub.Next(ctx, nil)
			sub.Unlock()
			require.ErrorIs(t, err, io.EOF)
		})
	}
}

// inlineSolo returns a hub over l reading inline and a subscription to its
// task whose Deliver checks that each call brings the next event; it is
// joined to its (solo) topic.
func inlineSolo(tb testing.TB, l *fixedLog) (*Subscription, *int64) {
	var got int64
	h, err := New(Config{Source: l, InlineReads: true})
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, h.Shutdown(context.Background())) })
	sub, err := h.Subscribe(context.Background(), "t", Start{}, SubscribeOpts{Deliver: func(frames []*Frame) bool {
		for _, f := range frames {
			if f.Seq != got+1 {
				panic("inline delivery out of order")
			}
			got = f.Seq
		}
		return true
	}})
	require.NoError(tb, err)
	tb.Cleanup(sub.Close)
	sub.Lock()
	_, err = sub.Next(context.Background(), make([]*Frame, 0, 16))
	sub.Unlock()
	require.NoError(tb, err)
	return sub, &got
}

// An inline delivery allocates nothing beyond the Source's read.
func TestInlineDeliveryAllocatesNothing(t *testing.T) {
	const runs = 200
	l := newFixedLog(runs + 10)
	_, got := inlineSolo(t, l)
	allocs := testing.AllocsPerRun(runs, func() { l.append() })
	require.Zero(t, allocs, "allocations per delivery")
	require.Equal(t, int64(runs+1), *got)
}

// BenchmarkInlineDelivery is an append to a task with one subscriber that
// takes it inline: the watch callback's read and hand-off, on the
// appending goroutine (the Deliver here only checks the order).
func BenchmarkInlineDelivery(b *testing.B) {
	l := newFixedLog(b.N)
	_, got := inlineSolo(b, l)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		l.append()
	}
	b.StopTimer()
	require.Equal(b, int64(b.N), *got)
}

// BenchmarkInlineDeliveryShared is an append to a task with 1,000
// subscribers that take it inline: the fetcher's read and its hand-off to
// every member (the Deliver here only counts), per append. Each member
// has a consumer goroutine, as in the transports, for the deliveries the
// fetcher signals instead.
func BenchmarkInlineDeliveryShared(b *testing.B) {
	const members = 1000
	l := newFixedLog(b.N)
	h, err := New(Config{Source: l, InlineReads: true})
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, h.Shutdown(context.Background())) })
	var delivered atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	b.Cleanup(func() { close(stop); wg.Wait() })
	for range members {
		sub, err := h.Subscribe(context.Background(), "t", Start{}, SubscribeOpts{Deliver: func(frames []*Frame) bool {
			delivered.Add(int64(len(frames)))
			return true
		}})
		require.NoError(b, err)
		b.Cleanup(sub.Close)
		wg.Go(func() {
			var buf []*Frame
			for {
				sub.Lock()
				frames, err := sub.Next(context.Background(), buf[:0])
				sub.Unlock()
				if err != nil {
					return
				}
				delivered.Add(int64(len(frames)))
				buf = frames
				select {
				case <-sub.Ready():
				case <-stop:
					return
				}
			}
		})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		l.append()
		for delivered.Load() < int64(members*(i+1)) {
			runtime.Gosched()
		}
	}
	b.StopTimer()
	require.Equal(b, int64(members*b.N), delivered.Load())
}
