package storetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
)

// controlSignal is a control watcher that records the task ids it was
// called with and signals without blocking.
type controlSignal struct {
	mu  sync.Mutex
	ids map[string]int
	ch  chan struct{}
}

func newControlSignal() *controlSignal {
	return &controlSignal{ids: map[string]int{}, ch: make(chan struct{}, 1)}
}

func (c *controlSignal) notify(taskID string) {
	c.mu.Lock()
	c.ids[taskID]++
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
}

func (c *controlSignal) seen(taskID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids[taskID] > 0 || c.ids[""] > 0
}

// wait waits for a call with taskID, or with "" (anything may have
// changed), which a feed may send instead.
func (c *controlSignal) wait(t *testing.T, taskID, what string) {
	t.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for !c.seen(taskID) {
		select {
		case <-c.ch:
		case <-timeout.C:
			t.Fatalf("storetest: no control notification for %s %s within %v", taskID, what, waitTimeout)
		}
	}
}

// forget clears the calls recorded so far.
func (c *controlSignal) forget() {
	c.mu.Lock()
	c.ids = map[string]int{}
	c.mu.Unlock()
}

// controlSetup skips the test when the store has no control feed.
func controlSetup(t *testing.T, h Harness) (*fixture, taskbridge.ControlFeed) {
	t.Helper()
	f := setup(t, h)
	cf, ok := f.s.(taskbridge.ControlFeed)
	if !ok {
		t.Skipf("storetest: %T does not implement taskbridge.ControlFeed", f.s)
	}
	return f, cf
}

// testControlFeed checks the [taskbridge.ControlFeed] contract.
func testControlFeed(t *testing.T, h Harness) {
	t.Run("FirstCancelRequest", func(t *testing.T) {
		f, cf := controlSetup(t, h)
		f.started("task-1")
		c := newControlSignal()
		defer cf.WatchControl(c.notify)()
		_, first, err := f.s.RequestCancel(f.ctx, "task-1", "stop", f.tick())
		require.NoError(t, err)
		require.True(t, first)
		c.wait(t, "task-1", "after the first cancel request")

		f.create("task-2") // a cancel request of an ACCEPTED task counts too
		_, _, err = f.s.RequestCancel(f.ctx, "task-2", "", f.tick())
		require.NoError(t, err)
		c.wait(t, "task-2", "after the first cancel request of an ACCEPTED task")
	})

	t.Run("AcceptedAction", func(t *testing.T) {
		f, cf := controlSetup(t, h)
		f.started("task-1")
		f.open("task-1", "s-1", nil)
		c := newControlSignal()
		defer cf.WatchControl(c.notify)()
		f.accept("task-1", "s-1", "a-1", f.tick(), taskbridge.ActionAccepted)
		c.wait(t, "task-1", "after an accepted action")
	})

	t.Run("EveryWatcherOfEveryTask", func(t *testing.T) {
		f, cf := controlSetup(t, h)
		const n = 20
		sigs := make([]*controlSignal, n)
		for i := range sigs {
			sigs[i] = newControlSignal()
			defer cf.WatchControl(sigs[i].notify)()
		}
		f.started("task-a")
		f.started("task-b")
		f.open("task-b", "s-1", nil)
		_, _, err := f.s.RequestCancel(f.ctx, "task-a", "", f.tick())
		require.NoError(t, err)
		f.accept("task-b", "s-1", "a-1", f.tick(), taskbridge.ActionAccepted)
		for _, s := range sigs {
			s.wait(t, "task-a", "for one of many watchers")
			s.wait(t, "task-b", "for one of many watchers")
		}
	})

	t.Run("StopEndsCalls", func(t *testing.T) {
		f, cf := controlSetup(t, h)
		for _, id := range []string{"task-1", "task-2", "task-3"} {
			f.started(id)
		}
		var stopped atomic.Bool
		var late atomic.Int64
		w := newControlSignal()
		stop := cf.WatchControl(func(taskID string) {
			if stopped.Load() {
				late.Add(1)
			}
			w.notify(taskID)
		})
		barrier := newControlSignal()
		defer cf.WatchControl(barrier.notify)()

		_, _, err := f.s.RequestCancel(f.ctx, "task-1", "", f.tick())
		require.NoError(t, err)
		w.wait(t, "task-1", "before stop")
		barrier.wait(t, "task-1", "before stop")
		barrier.forget()
		stop()
		stopped.Store(true)
		stop() // idempotent

		_, _, err = f.s.RequestCancel(f.ctx, "task-2", "", f.tick())
		require.NoError(t, err)
		f.open("task-3", "s-1", nil)
		f.accept("task-3", "s-1", "a-1", f.tick(), taskbridge.ActionAccepted)
		barrier.wait(t, "task-2", "after stop")
		barrier.wait(t, "task-3", "after stop")
		require.Zero(t, late.Load(), "notify was called after stop returned")
	})

	t.Run("ConcurrentStop", func(t *testing.T) {
		f, cf := controlSetup(t, h)
		f.started("task-1")
		stop := cf.WatchControl(func(string) {})
		race(8, func(int) { stop() })
		_, _, err := f.s.RequestCancel(f.ctx, "task-1", "", f.tick())
		require.NoError(t, err)
	})
}
