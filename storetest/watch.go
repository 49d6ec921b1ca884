package storetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
)

func testWatch(t *testing.T, h Harness) {
	t.Run("NotifiesOnAppendToWatchedTaskOnly", func(t *testing.T) {
		f := setup(t, h)
		// task-a has no event before its watcher exists: a store may wake
		// a new watcher for an append that committed just before Watch
		// (pgstore notifies after commit), which is not cross-talk.
		f.create("task-a")
		f.started("task-b")
		a, b := newSignal(), newSignal()
		defer f.s.Watch("task-a", a.notify)()
		defer f.s.Watch("task-b", b.notify)()

		for range 20 {
			f.append("task-b", taskbridge.MessagePayload{Message: "b"})
		}
		b.wait(t, "for task-b")
		require.Zero(t, a.calls.Load(), "a watcher of task-a was called for appends to task-b")

		f.append("task-a", taskbridge.StartedPayload{Message: "a"})
		a.wait(t, "for task-a")
	})

	t.Run("StopEndsCalls", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		var stopped atomic.Bool
		var late atomic.Int64
		w := newSignal()
		stop := f.s.Watch("task-1", func() {
			if stopped.Load() {
				late.Add(1)
			}
			w.notify()
		})
		barrier := newSignal()
		defer f.s.Watch("task-1", barrier.notify)()

		f.append("task-1", taskbridge.MessagePayload{Message: "1"})
		w.wait(t, "before stop")
		barrier.wait(t, "before stop")
		stop()
		stopped.Store(true)
		stop() // idempotent

		for range 5 {
			f.append("task-1", taskbridge.MessagePayload{Message: "after stop"})
		}
		barrier.wait(t, "after stop")
		require.Zero(t, late.Load(), "notify was called after stop returned")
	})

	t.Run("ConcurrentStop", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		stop := f.s.Watch("task-1", func() {})
		race(8, func(int) { stop() })
		f.append("task-1", taskbridge.MessagePayload{Message: "m"})
	})

	t.Run("WatchBeforeTaskExists", func(t *testing.T) {
		f := setup(t, h)
		w := newSignal()
		defer f.s.Watch("task-1", w.notify)()
		f.create("task-1")
		w.drain() // creating a task may or may not notify
		f.append("task-1", taskbridge.StartedPayload{})
		w.wait(t, "for a task created after Watch")
	})

	t.Run("WaiterWakesOnAppend", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		ctx, cancel := context.WithTimeout(f.ctx, waitTimeout)
		defer cancel()
		done := startWaiter(ctx, t, f.s, "task-1", 1)
		f.append("task-1", taskbridge.MessagePayload{Message: "wake up"})
		r := <-done
		require.NoError(t, r.err, "the append must wake the waiter before its deadline")
		requireSeqs(t, r.evs, 2)
	})

	t.Run("WaiterTimesOut", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		ctx, cancel := context.WithTimeout(f.ctx, 50*time.Millisecond)
		defer cancel()
		evs, err := waitEvents(ctx, f.s, "task-1", 1, nil)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Empty(t, evs)
		// The store still works after the waiter gave up.
		f.append("task-1", taskbridge.MessagePayload{Message: "later"})
		evs, err = waitEvents(f.ctx, f.s, "task-1", 1, nil)
		require.NoError(t, err)
		requireSeqs(t, evs, 2)
	})

	t.Run("ManyWatchers", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		const n = 200
		sigs := make([]*signal, n)
		for i := range sigs {
			sigs[i] = newSignal()
			defer f.s.Watch("task-1", sigs[i].notify)()
		}
		f.append("task-1", taskbridge.MessagePayload{Message: "all"})
		for _, s := range sigs {
			s.wait(t, "for one of many watchers")
		}
	})

	t.Run("ManyWaiters", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		const n = 50
		ctx, cancel := context.WithTimeout(f.ctx, waitTimeout)
		defer cancel()
		var (
			ready sync.WaitGroup
			wg    sync.WaitGroup
			errs  [n]error
			seqs  [n]int64
		)
		for i := range n {
			waiting := make(chan struct{})
			ready.Go(func() {
				select {
				case <-waiting:
				case <-ctx.Done():
				}
			})
			wg.Go(func() {
				evs, err := waitEvents(ctx, f.s, "task-1", 1, waiting)
				errs[i] = err
				if len(evs) > 0 {
					seqs[i] = evs[0].Seq
				}
			})
		}
		ready.Wait()
		f.append("task-1", taskbridge.MessagePayload{Message: "everyone"})
		wg.Wait()
		for i := range n {
			require.NoError(t, errs[i], "waiter %d", i)
			require.Equal(t, int64(2), seqs[i], "waiter %d", i)
		}
	})

	t.Run("WatchChurnWhileAppending", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		steady := newSignal()
		defer f.s.Watch("task-1", steady.notify)()
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 100 {
					f.s.Watch("task-1", func() {})()
				}
			})
		}
		var appendErr error
		wg.Go(func() {
			for range 100 {
				if _, err := f.s.Append(f.ctx, NewEvent("task-1", taskbridge.MessagePayload{Message: "m"}, BaseTime)); err != nil {
					appendErr = err
					return
				}
			}
		})
		wg.Wait()
		require.NoError(t, appendErr)
		steady.wait(t, "for a steady watcher during churn")
		requireSeqs(t, f.readAll("task-1"), seqRange(1, 101)...)
	})
}
