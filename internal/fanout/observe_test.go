package fanout

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// observed records what an Observer is told.
type observed struct {
	mu         sync.Mutex
	delivered  []int64
	replayed   []bool
	heartbeats int
	ends       []End
}

func (o *observed) observer() *Observer {
	return &Observer{
		Deliver: func(_ *Subscription, f *Frame, replayed bool) {
			o.mu.Lock()
			o.delivered = append(o.delivered, f.Seq)
			o.replayed = append(o.replayed, replayed)
			o.mu.Unlock()
		},
		Heartbeat: func(*Subscription) { o.mu.Lock(); o.heartbeats++; o.mu.Unlock() },
		End:       func(_ *Subscription, e End) { o.mu.Lock(); o.ends = append(o.ends, e); o.mu.Unlock() },
	}
}

// TestObserverSeesReplayLiveAndEnd: history read by the subscription is
// reported as replayed, frames of the live window as live, and Close
// reports the end once with the counts.
func TestObserverSeesReplayLiveAndEnd(t *testing.T) {
	t.Parallel()
	l := newMemLog(0, "t")
	o := &observed{}
	h := setup(t, l, 2, func(c *Config) { c.Observer = o.observer() })
	l.appendN("t", 3)
	sub := subscribe(t, h, l, context.Background(), "t", 0, SubscribeOpts{Transport: "sse"})
	require.NotZero(t, sub.ID())
	require.Equal(t, "sse", sub.Transport())
	var got []*Frame
	for len(got) < 3 {
		frames, err := next(t, sub)
		require.NoError(t, err)
		got = append(got, frames...)
	}
	requireSeqs(t, span(1, 3), seqs(got))
	l.append("t", true)
	<-sub.Ready()
	frames, err := next(t, sub)
	require.NoError(t, err)
	requireSeqs(t, []int64{4}, seqs(frames))
	sub.Close()
	sub.Close()

	o.mu.Lock()
	defer o.mu.Unlock()
	require.Equal(t, span(1, 4), o.delivered)
	require.Equal(t, []bool{true, true, true, false}, o.replayed)
	require.Len(t, o.ends, 1)
	require.Equal(t, EndTerminal, o.ends[0].Reason)
	require.EqualValues(t, 4, o.ends[0].Delivered)
	require.EqualValues(t, 3, o.ends[0].Replayed)
	require.Positive(t, o.ends[0].Lifetime)
}

// TestObserverEndReasons: the reason set by the transport wins; otherwise
// it is derived from what Next returned.
func TestObserverEndReasons(t *testing.T) {
	t.Parallel()
	timeout := &os.PathError{Op: "write", Err: os.ErrDeadlineExceeded}
	for _, tc := range []struct {
		name string
		act  func(l *memLog, h *Hub, sub *Subscription)
		want string
		err  bool
	}{
		{"client gone", func(*memLog, *Hub, *Subscription) {}, EndClientGone, false},
		{"slow consumer", func(_ *memLog, _ *Hub, sub *Subscription) { sub.SetEnd(WriteEnd(timeout), timeout) }, EndSlowConsumer, true},
		{"shutdown", func(_ *memLog, h *Hub, sub *Subscription) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_ = h.Shutdown(ctx)
			_, err := sub.Next(context.Background(), nil)
			require.ErrorIs(t, err, errClosed)
		}, EndShutdown, false},
		{"expired", func(l *memLog, _ *Hub, sub *Subscription) {
			// Still replaying (the first batch was full): the next read is
			// the subscription's own, and retention overtook it.
			l.failReads(func(int64) error { return errExpired })
			_, err := sub.Next(context.Background(), nil)
			require.ErrorIs(t, err, errExpired)
		}, EndExpired, true},
		{"deleted", func(l *memLog, _ *Hub, sub *Subscription) {
			l.delete("t")
			_, err := sub.Next(context.Background(), nil)
			require.ErrorIs(t, err, errNotFound)
		}, EndError, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := newMemLog(0, "t")
			o := &observed{}
			h := setup(t, l, 1, func(c *Config) { c.Observer = o.observer() })
			l.appendN("t", 2)
			sub := subscribe(t, h, l, context.Background(), "t", 0, SubscribeOpts{Transport: "ws"})
			frames, err := sub.Next(context.Background(), nil)
			require.NoError(t, err)
			require.Len(t, frames, 1)
			tc.act(l, h, sub)
			sub.Close()
			o.mu.Lock()
			defer o.mu.Unlock()
			require.Len(t, o.ends, 1)
			require.Equal(t, tc.want, o.ends[0].Reason)
			require.Equal(t, tc.err, o.ends[0].Err != nil)
		})
	}
}

// A stream's end is reported before it stops being counted: a reader of
// the gauge that sees it drop finds the end recorded (the SSE and WS
// slow-consumer tests wait for the gauge, then read the counter).
func TestEndIsReportedBeforeTheGaugeDrops(t *testing.T) {
	t.Parallel()
	l := newMemLog(0, "t")
	var mu sync.Mutex
	var events []string
	h := setup(t, l, 256, func(c *Config) {
		c.Observer = &Observer{End: func(*Subscription, End) {
			mu.Lock()
			events = append(events, "end")
			mu.Unlock()
		}}
		c.StreamsActive = func(_ string, delta int64) {
			mu.Lock()
			if delta < 0 {
				events = append(events, "gauge-1")
			}
			mu.Unlock()
		}
	})
	sub := subscribe(t, h, l, context.Background(), "t", 0, SubscribeOpts{Transport: "sse"})
	sub.Close()
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"end", "gauge-1"}, events)
}

func TestWriteEnd(t *testing.T) {
	t.Parallel()
	require.Equal(t, EndSlowConsumer, WriteEnd(&os.PathError{Op: "write", Err: os.ErrDeadlineExceeded}))
	require.Equal(t, EndClientGone, WriteEnd(errors.New("broken pipe")))
}

// TestUnobservedSubscriptionsAreNotReported: a subscription without a
// Transport (a long poll's wait) tells the observer nothing.
func TestUnobservedSubscriptionsAreNotReported(t *testing.T) {
	t.Parallel()
	l := newMemLog(0, "t")
	o := &observed{}
	h := setup(t, l, 8, func(c *Config) { c.Observer = o.observer() })
	l.appendN("t", 2)
	sub := subscribe(t, h, l, context.Background(), "t", 0, SubscribeOpts{})
	frames, err := next(t, sub)
	require.NoError(t, err)
	require.Len(t, frames, 2)
	sub.Close()
	o.mu.Lock()
	defer o.mu.Unlock()
	require.Empty(t, o.delivered)
	require.Empty(t, o.ends)
}

// TestDeliveryDoesNotAllocate: handing frames out allocates nothing,
// whether or not an observer is set.
func TestDeliveryDoesNotAllocate(t *testing.T) {
	frames := make([]*Frame, 64)
	for i := range frames {
		frames[i] = &Frame{Seq: int64(i + 1), EventID: "x", CreatedAt: 1}
	}
	dst := make([]*Frame, 0, len(frames))
	noop := &Observer{Deliver: func(*Subscription, *Frame, bool) {}}
	for _, obs := range []*Observer{nil, {}, noop} {
		sub := &Subscription{obs: obs}
		allocs := testing.AllocsPerRun(100, func() {
			sub.last, sub.done = 0, false
			dst = sub.take(dst[:0], frames, false)
		})
		require.Zero(t, allocs)
	}
}

// BenchmarkDelivery measures handing 64 frames out without an observer,
// with an empty one (Diagnostics unset) and with a Deliver hook.
func BenchmarkDelivery(b *testing.B) {
	frames := make([]*Frame, 64)
	for i := range frames {
		frames[i] = &Frame{Seq: int64(i + 1), EventID: "x", CreatedAt: 1}
	}
	dst := make([]*Frame, 0, len(frames))
	for _, bc := range []struct {
		name string
		obs  *Observer
	}{
		{"unobserved", nil},
		{"no-hooks", &Observer{}},
		{"deliver-hook", &Observer{Deliver: func(*Subscription, *Frame, bool) {}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			sub := &Subscription{obs: bc.obs}
			b.ReportAllocs()
			for b.Loop() {
				sub.last, sub.done = 0, false
				dst = sub.take(dst[:0], frames, false)
			}
		})
	}
}
