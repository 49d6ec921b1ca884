package fanout

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// One goroutine appending to many tasks in a row, with one P (the timing
// bug behind a p99 of 150-210 ms at 50,000 events/s): each subscriber's
// goroutine runs within a few wakeBurst appends after its own, as the
// appender yields every wakeBurst wake-ups. Without the yield, no
// subscriber ran before the appender's last append, and the ones the run
// queue overflowed to the global queue later still (Config.DisableWakePacing
// shows it).
//
// Members whose Deliver keeps the frames for their goroutine (an SSE
// stream inside ServeHTTP, prepared inline) are woken by the delivery and
// paced the same way ("kept"); before they were, p99 at 50,000 events/s
// doubled.
func TestWakeBurstsYield(t *testing.T) {
	const tasks = 8 * wakeBurst
	for _, c := range []struct{ shared, kept, unpaced bool }{
		{false, false, false}, {true, false, false}, {false, true, false}, {true, true, false}, {false, false, true},
	} {
		shared := c.shared
		t.Run(fmt.Sprintf("shared=%v,kept=%v,unpaced=%v", c.shared, c.kept, c.unpaced), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
			names := make([]string, tasks)
			for i := range names {
				names[i] = fmt.Sprintf("t%d", i)
			}
			l := newMemLog(0, names...)
			h := setup(t, l, 0, func(cfg *Config) {
				cfg.DisableWakePacing = c.unpaced
				cfg.InlineReads = c.kept
			})
			ctx := context.Background()
			var appended, waiting atomic.Int64
			lag := make([]int64, tasks) // appends made after task i's, when its subscriber took it
			var wg sync.WaitGroup
			for i, name := range names {
				var opts SubscribeOpts
				var kept []*Frame // what Deliver kept, under sub's lock
				if c.kept {
					opts.Deliver = func(frames []*Frame) bool {
						kept = append(kept, frames...)
						return false
					}
				}
				sub := subscribe(t, h, l, ctx, name, 0, opts)
				if shared {
					// A second, idle member: the topic's fetcher wakes sub.
					subscribe(t, h, l, ctx, name, 0, SubscribeOpts{})
				}
				wg.Go(func() {
					counted := false
					for {
						sub.Lock()
						frames, err := sub.Next(ctx, kept)
						kept = nil
						sub.Unlock()
						if err != nil {
							t.Error(err)
							return
						}
						if len(frames) > 0 {
							lag[i] = appended.Load() - int64(i) - 1
							return
						}
						if !counted {
							waiting.Add(1)
							counted = true
						}
						<-sub.Ready()
					}
				})
			}
			for waiting.Load() < tasks {
				runtime.Gosched()
			}
			for _, name := range names {
				l.append(name, false)
				appended.Add(1)
			}
			wg.Wait()
			worst := int64(0)
			for _, d := range lag {
				worst = max(worst, d)
			}
			// Up to wakeBurst wake-ups pass between two yields; the
			// appender, put on the global run queue by its yield, may run
			// again before the last few it woke (a P takes from that queue
			// every 61st turn), and a shared topic's subscriber waits for
			// its fetcher goroutine too.
			if c.unpaced {
				// The bug: the subscribers woken first wait for the whole
				// burst, and then behind the ones woken last.
				require.GreaterOrEqual(t, worst, int64(tasks/2), "appends made after a subscriber's own before it ran, unpaced")
				return
			}
			require.LessOrEqual(t, worst, int64(3*wakeBurst), "appends made after a subscriber's own before it ran")
		})
	}
}
