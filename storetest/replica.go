package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
)

// replicaFixture is a fixture with a second handle on its store, as
// another process would open it.
type replicaFixture struct {
	*fixture
	other taskbridge.Store
}

// replicaSetup skips the test unless h.Replica is set.
func replicaSetup(t *testing.T, h Harness) *replicaFixture {
	t.Helper()
	if h.Replica == nil {
		t.Skip("storetest: Harness.Replica is nil, so the multi-replica section is skipped " +
			"(a store shared by several processes must set it)")
	}
	f := setup(t, h)
	other := h.Replica(t, f.s)
	require.NotNil(t, other, "storetest: Harness.Replica returned nil")
	for _, s := range []taskbridge.Store{f.s, other} {
		_, feed := s.(taskbridge.ControlFeed)
		_, leases := s.(taskbridge.LeaseStore)
		require.True(t, feed && leases,
			"storetest: %T is shared by processes (Harness.Replica is set), so it must implement "+
				"taskbridge.ControlFeed and taskbridge.LeaseStore", s)
	}
	return &replicaFixture{fixture: f, other: other}
}

// handles returns the two handles, the first one first.
func (f *replicaFixture) handles() [2]taskbridge.Store { return [2]taskbridge.Store{f.s, f.other} }

// testMultiReplica checks that two handles on one backend behave as one
// store: atomic decisions hold across them and notifications cross them.
func testMultiReplica(t *testing.T, h Harness) {
	t.Run("CreateRace", func(t *testing.T) {
		f := replicaSetup(t, h)
		hs := f.handles()
		const n = 32
		var (
			got     [n]taskbridge.Task
			created [n]bool
			errs    [n]error
		)
		race(n, func(i int) {
			got[i], created[i], errs[i] = hs[i%2].CreateTask(f.ctx, NewTask(fmt.Sprint("task-", i), "alice", "req-1", BaseTime))
		})
		winner := -1
		for i := range n {
			require.NoError(t, errs[i])
			if created[i] {
				require.Equal(t, -1, winner, "two creates with one key succeeded")
				winner = i
			}
		}
		require.NotEqual(t, -1, winner, "no create succeeded")
		for i := range n {
			require.Equal(t, fmt.Sprint("task-", winner), got[i].ID, "create %d returns the one task", i)
		}
		for _, s := range hs {
			list, err := s.ListTasks(f.ctx, taskbridge.TaskQuery{OwnerID: "alice", Limit: n})
			require.NoError(t, err)
			require.Equal(t, []string{got[winner].ID}, ids(list), "both handles see exactly one task")
		}
	})

	t.Run("AcceptRace", func(t *testing.T) {
		f := replicaSetup(t, h)
		f.started("task-1")
		f.open("task-1", "s-1", nil)
		raceDistinctActions(t, f.fixture, f.s, f.other)
	})

	t.Run("IdempotentAppendRace", func(t *testing.T) {
		f := replicaSetup(t, h)
		hs := f.handles()
		f.started("task-1")
		const n = 16
		var (
			got  [n]taskbridge.TaskEvent
			errs [n]error
		)
		now := f.tick()
		race(n, func(i int) {
			ev := NewEvent("task-1", taskbridge.MessagePayload{Message: fmt.Sprint(i)}, now)
			ev.IdempotencyKey = "once"
			got[i], errs[i] = hs[i%2].Append(f.ctx, ev)
		})
		for i := range n {
			require.NoError(t, errs[i])
			require.Equal(t, int64(2), got[i].Seq, "append %d", i)
		}
		requireSeqs(t, f.readAll("task-1"), 1, 2)
	})

	t.Run("WatchAcrossHandles", func(t *testing.T) {
		f := replicaSetup(t, h)
		f.started("task-1")
		for i, pair := range [][2]taskbridge.Store{{f.s, f.other}, {f.other, f.s}} {
			writer, watcher := pair[0], pair[1]
			w := newSignal()
			stop := watcher.Watch("task-1", w.notify)
			_, err := writer.Append(f.ctx, NewEvent("task-1", taskbridge.MessagePayload{Message: fmt.Sprint(i)}, f.tick()))
			require.NoError(t, err)
			w.wait(t, fmt.Sprintf("on one handle for an append through the other (%d)", i))
			stop()
		}

		// A waiter on one handle wakes for an append through the other.
		ctx, cancel := context.WithTimeout(f.ctx, waitTimeout)
		defer cancel()
		done := startWaiter(ctx, t, f.other, "task-1", 3)
		f.append("task-1", taskbridge.MessagePayload{Message: "wake up"})
		r := <-done
		require.NoError(t, r.err)
		requireSeqs(t, r.evs, 4)
	})

	t.Run("ControlAcrossHandles", func(t *testing.T) {
		f := replicaSetup(t, h)
		f.started("task-1")
		f.started("task-2")
		f.open("task-2", "s-1", nil)
		c := newControlSignal()
		defer f.other.(taskbridge.ControlFeed).WatchControl(c.notify)()
		_, first, err := f.s.RequestCancel(f.ctx, "task-1", "", f.tick())
		require.NoError(t, err)
		require.True(t, first)
		c.wait(t, "task-1", "on one handle for a cancel request through the other")
		f.accept("task-2", "s-1", "a-1", f.tick(), taskbridge.ActionAccepted)
		c.wait(t, "task-2", "on one handle for an action accepted through the other")

		back := newControlSignal()
		defer f.s.(taskbridge.ControlFeed).WatchControl(back.notify)()
		f.started("task-3")
		_, _, err = f.other.RequestCancel(f.ctx, "task-3", "", f.tick())
		require.NoError(t, err)
		back.wait(t, "task-3", "the other way round")
	})

	t.Run("LeaseTakeoverAcrossHandles", func(t *testing.T) {
		f := replicaSetup(t, h)
		a, b := f.s.(taskbridge.LeaseStore), f.other.(taskbridge.LeaseStore)
		const ttl = time.Second
		f.started("task-1")
		l, ok, err := a.AcquireLease(f.ctx, "task-1", "a", at(0), ttl)
		require.NoError(t, err)
		require.True(t, ok)
		l, ok, err = b.AcquireLease(f.ctx, "task-1", "b", at(ttl/2), ttl)
		require.NoError(t, err)
		require.False(t, ok, "a live lease held through one handle")
		requireLease(t, lease("task-1", "a", at(ttl)), l)

		expired, err := b.ExpiredLeases(f.ctx, at(ttl), 10)
		require.NoError(t, err)
		requireLeases(t, []taskbridge.Lease{lease("task-1", "a", at(ttl))}, expired)
		l, ok, err = b.AcquireLease(f.ctx, "task-1", "b", at(ttl), ttl)
		require.NoError(t, err)
		require.True(t, ok, "an expired lease is taken over through the other handle")
		requireLease(t, lease("task-1", "b", at(2*ttl)), l)
		_, err = a.RenewLease(f.ctx, "task-1", "a", at(ttl), ttl)
		requireErrorIs(t, err, taskbridge.ErrLeaseLost, "the old holder renews after the takeover")
		expired, err = a.ExpiredLeases(f.ctx, at(ttl), 10)
		require.NoError(t, err)
		require.Empty(t, expired)

		// Many holders on both handles race for a fresh task.
		f.started("task-2")
		hs := [2]taskbridge.LeaseStore{a, b}
		const n = 16
		var (
			acquired [n]bool
			errs     [n]error
		)
		race(n, func(i int) {
			_, acquired[i], errs[i] = hs[i%2].AcquireLease(f.ctx, "task-2", fmt.Sprint("h-", i), at(0), ttl)
		})
		winners := 0
		for i := range n {
			require.NoError(t, errs[i])
			if acquired[i] {
				winners++
			}
		}
		require.Equal(t, 1, winners, "exactly one holder acquires across handles")
	})

	t.Run("Services", func(t *testing.T) { testServices(t, h) })
}
