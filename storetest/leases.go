package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
)

// leaseFixture is a fixture whose store is a [taskbridge.LeaseStore].
type leaseFixture struct {
	*fixture
	ls taskbridge.LeaseStore
}

// leaseSetup skips the test when the store keeps no leases.
func leaseSetup(t *testing.T, h Harness) *leaseFixture {
	t.Helper()
	f := setup(t, h)
	ls, ok := f.s.(taskbridge.LeaseStore)
	if !ok {
		t.Skipf("storetest: %T does not implement taskbridge.LeaseStore", f.s)
	}
	return &leaseFixture{f, ls}
}

// at returns BaseTime+d.
func at(d time.Duration) time.Time { return BaseTime.Add(d) }

func lease(taskID, holder string, expiresAt time.Time) taskbridge.Lease {
	return taskbridge.Lease{TaskID: taskID, Holder: holder, ExpiresAt: expiresAt}
}

func requireLease(t *testing.T, want, got taskbridge.Lease, msgAndArgs ...any) {
	t.Helper()
	want.ExpiresAt, got.ExpiresAt = normTime(want.ExpiresAt), normTime(got.ExpiresAt)
	require.Equal(t, want, got, msgAndArgs...)
}

func requireLeases(t *testing.T, want, got []taskbridge.Lease, msgAndArgs ...any) {
	t.Helper()
	norm := func(ls []taskbridge.Lease) []taskbridge.Lease {
		out := make([]taskbridge.Lease, len(ls))
		for i, l := range ls {
			l.ExpiresAt = normTime(l.ExpiresAt)
			out[i] = l
		}
		return out
	}
	require.Equal(t, norm(want), norm(got), msgAndArgs...)
}

// acquire calls AcquireLease and requires the outcome.
func (f *leaseFixture) acquire(taskID, holder string, now time.Time, ttl time.Duration, wantAcquired bool, want taskbridge.Lease) {
	f.t.Helper()
	got, acquired, err := f.ls.AcquireLease(f.ctx, taskID, holder, now, ttl)
	require.NoError(f.t, err, "AcquireLease(%s, %s)", taskID, holder)
	require.Equal(f.t, wantAcquired, acquired, "AcquireLease(%s, %s) acquired", taskID, holder)
	requireLease(f.t, want, got, "AcquireLease(%s, %s) returns the lease", taskID, holder)
}

func (f *leaseFixture) renew(taskID, holder string, now time.Time, ttl time.Duration) error {
	f.t.Helper()
	got, err := f.ls.RenewLease(f.ctx, taskID, holder, now, ttl)
	if err == nil {
		requireLease(f.t, lease(taskID, holder, now.Add(ttl)), got, "RenewLease(%s, %s)", taskID, holder)
	}
	return err
}

func (f *leaseFixture) expired(now time.Time, limit int) []taskbridge.Lease {
	f.t.Helper()
	got, err := f.ls.ExpiredLeases(f.ctx, now, limit)
	require.NoError(f.t, err, "ExpiredLeases")
	return got
}

// testLeases checks the [taskbridge.LeaseStore] contract.
func testLeases(t *testing.T, h Harness) {
	const ttl = 10 * time.Second

	t.Run("AcquireRenewRelease", func(t *testing.T) {
		f := leaseSetup(t, h)
		f.create("task-1")
		f.acquire("task-1", "a", at(0), ttl, true, lease("task-1", "a", at(ttl)))
		f.acquire("task-1", "b", at(5*time.Second), ttl, false, lease("task-1", "a", at(ttl)))
		f.acquire("task-1", "a", at(5*time.Second), ttl, true, lease("task-1", "a", at(5*time.Second+ttl)))
		require.NoError(t, f.renew("task-1", "a", at(8*time.Second), ttl))
		requireErrorIs(t, f.renew("task-1", "b", at(8*time.Second), ttl), taskbridge.ErrLeaseLost, "renewing another holder's lease")

		require.NoError(t, f.ls.ReleaseLease(f.ctx, "task-1", "b"), "releasing another holder's lease does nothing")
		f.acquire("task-1", "b", at(9*time.Second), ttl, false, lease("task-1", "a", at(8*time.Second+ttl)))

		require.NoError(t, f.ls.ReleaseLease(f.ctx, "task-1", "a"))
		require.NoError(t, f.ls.ReleaseLease(f.ctx, "task-1", "a"), "releasing twice")
		requireErrorIs(t, f.renew("task-1", "a", at(9*time.Second), ttl), taskbridge.ErrLeaseLost, "renewing a released lease")
		require.Empty(t, f.expired(at(time.Hour), 10), "a released lease is not listed")
		f.acquire("task-1", "b", at(9*time.Second), ttl, true, lease("task-1", "b", at(9*time.Second+ttl)))
	})

	t.Run("ExpiryBoundary", func(t *testing.T) {
		f := leaseSetup(t, h)
		f.started("task-1")
		f.acquire("task-1", "a", at(0), ttl, true, lease("task-1", "a", at(ttl)))
		f.acquire("task-1", "b", at(ttl-time.Millisecond), ttl, false, lease("task-1", "a", at(ttl)))
		require.Empty(t, f.expired(at(ttl-time.Millisecond), 10))
		requireLeases(t, []taskbridge.Lease{lease("task-1", "a", at(ttl))}, f.expired(at(ttl), 10),
			"a lease with ExpiresAt == now has expired")
		f.acquire("task-1", "b", at(ttl), ttl, true, lease("task-1", "b", at(2*ttl)))
		requireErrorIs(t, f.renew("task-1", "a", at(ttl), ttl), taskbridge.ErrLeaseLost, "the old holder after a takeover")
		require.NoError(t, f.ls.ReleaseLease(f.ctx, "task-1", "a"), "the old holder's release does nothing")
		f.acquire("task-1", "c", at(ttl+time.Second), ttl, false, lease("task-1", "b", at(2*ttl)))
	})

	t.Run("RenewExpiredUntaken", func(t *testing.T) {
		f := leaseSetup(t, h)
		f.started("task-1")
		f.acquire("task-1", "a", at(0), ttl, true, lease("task-1", "a", at(ttl)))
		require.NoError(t, f.renew("task-1", "a", at(2*ttl), ttl), "an expired lease nobody took is still the holder's")
		f.acquire("task-1", "b", at(2*ttl+time.Second), ttl, false, lease("task-1", "a", at(3*ttl)))
		require.Empty(t, f.expired(at(2*ttl+time.Second), 10))
	})

	t.Run("LeasesArePerTask", func(t *testing.T) {
		f := leaseSetup(t, h)
		f.create("task-1")
		f.create("task-2")
		f.acquire("task-1", "a", at(0), ttl, true, lease("task-1", "a", at(ttl)))
		f.acquire("task-2", "b", at(0), 2*ttl, true, lease("task-2", "b", at(2*ttl)))
		requireErrorIs(t, f.renew("task-2", "a", at(time.Second), ttl), taskbridge.ErrLeaseLost)
		require.NoError(t, f.ls.ReleaseLease(f.ctx, "task-2", "a"))
		requireLeases(t, []taskbridge.Lease{lease("task-1", "a", at(ttl))}, f.expired(at(ttl), 10))
	})

	t.Run("EndsWithTask", func(t *testing.T) {
		f := leaseSetup(t, h)
		for i, p := range []taskbridge.Payload{
			taskbridge.CompletedPayload{Result: 1},
			taskbridge.FailedPayload{Code: "E", Message: "m"},
			taskbridge.CancelledPayload{Reason: "R"},
		} {
			id := fmt.Sprint("task-", i)
			f.started(id)
			f.acquire(id, "a", at(0), ttl, true, lease(id, "a", at(ttl)))
			f.append(id, p)
			requireErrorIs(t, f.renew(id, "a", at(time.Second), ttl), taskbridge.ErrLeaseLost, "renewing after %s", p.EventType())
			_, _, err := f.ls.AcquireLease(f.ctx, id, "b", at(time.Second), ttl)
			requireErrorIs(t, err, taskbridge.ErrTaskTerminal, "acquiring after %s", p.EventType())
			require.NoError(t, f.ls.ReleaseLease(f.ctx, id, "a"))
		}
		require.Empty(t, f.expired(at(time.Hour), 10), "terminal tasks are not listed")
	})

	t.Run("InvalidArguments", func(t *testing.T) {
		f := leaseSetup(t, h)
		f.create("task-1")
		_, _, err := f.ls.AcquireLease(f.ctx, "nope", "a", at(0), ttl)
		requireErrorIs(t, err, taskbridge.ErrTaskNotFound, "AcquireLease of an unknown task")
		_, err = f.ls.RenewLease(f.ctx, "nope", "a", at(0), ttl)
		requireErrorIs(t, err, taskbridge.ErrTaskNotFound, "RenewLease of an unknown task")
		require.NoError(t, f.ls.ReleaseLease(f.ctx, "nope", "a"), "ReleaseLease of an unknown task")

		for _, d := range []time.Duration{0, -time.Second} {
			_, _, err = f.ls.AcquireLease(f.ctx, "task-1", "a", at(0), d)
			requireErrorIs(t, err, taskbridge.ErrInvalidRequest, "AcquireLease with ttl %v", d)
			_, err = f.ls.RenewLease(f.ctx, "task-1", "a", at(0), d)
			requireErrorIs(t, err, taskbridge.ErrInvalidRequest, "RenewLease with ttl %v", d)
		}
		_, _, err = f.ls.AcquireLease(f.ctx, "task-1", "", at(0), ttl)
		requireErrorIs(t, err, taskbridge.ErrInvalidRequest, "AcquireLease without holder")
		_, err = f.ls.RenewLease(f.ctx, "task-1", "", at(0), ttl)
		requireErrorIs(t, err, taskbridge.ErrInvalidRequest, "RenewLease without holder")
		requireErrorIs(t, f.ls.ReleaseLease(f.ctx, "task-1", ""), taskbridge.ErrInvalidRequest, "ReleaseLease without holder")
		_, err = f.ls.ExpiredLeases(f.ctx, at(0), 0)
		requireErrorIs(t, err, taskbridge.ErrInvalidRequest, "ExpiredLeases with limit 0")
		require.Empty(t, f.expired(at(time.Hour), 10), "failed calls leave no lease")
	})

	t.Run("ExpiredLeases", func(t *testing.T) {
		f := leaseSetup(t, h)
		now := at(time.Hour)
		for _, c := range []struct {
			id      string
			expires time.Duration // from BaseTime
		}{
			{"late", 50 * time.Minute},
			{"early", 10 * time.Minute},
			{"edge", time.Hour},
			{"live", time.Hour + time.Millisecond},
			{"released", 5 * time.Minute},
			{"ended", time.Minute},
			{"renewed", 2 * time.Minute},
			{"middle", 30 * time.Minute},
		} {
			f.started(c.id)
			f.acquire(c.id, "h-"+c.id, at(0), c.expires, true, lease(c.id, "h-"+c.id, at(c.expires)))
		}
		f.create("unleased")
		require.NoError(t, f.ls.ReleaseLease(f.ctx, "released", "h-released"))
		f.append("ended", taskbridge.CompletedPayload{Result: 1})
		require.NoError(t, f.renew("renewed", "h-renewed", at(time.Minute), 2*time.Hour))

		want := []taskbridge.Lease{
			lease("early", "h-early", at(10*time.Minute)),
			lease("middle", "h-middle", at(30*time.Minute)),
			lease("late", "h-late", at(50*time.Minute)),
			lease("edge", "h-edge", at(time.Hour)),
		}
		requireLeases(t, want, f.expired(now, 10), "expired leases, earliest first")
		requireLeases(t, want[:2], f.expired(now, 2), "the limit is respected")
		requireLeases(t, want[:1], f.expired(at(20*time.Minute), 10))

		// Taking a lease over makes it live again.
		f.acquire("early", "other", now, ttl, true, lease("early", "other", now.Add(ttl)))
		requireLeases(t, want[1:], f.expired(now, 10))
	})

	t.Run("ConcurrentAcquire", func(t *testing.T) {
		f := leaseSetup(t, h)
		f.started("fresh")
		f.started("stale")
		f.acquire("stale", "old", at(0), ttl, true, lease("stale", "old", at(ttl)))
		for _, c := range []struct {
			id  string
			now time.Time
		}{{"fresh", at(0)}, {"stale", at(ttl)}} {
			const n = 32
			var (
				got      [n]taskbridge.Lease
				acquired [n]bool
				errs     [n]error
			)
			race(n, func(i int) {
				got[i], acquired[i], errs[i] = f.ls.AcquireLease(f.ctx, c.id, fmt.Sprint("h-", i), c.now, ttl)
			})
			winner := -1
			for i := range n {
				require.NoError(t, errs[i])
				if acquired[i] {
					require.Equal(t, -1, winner, "%s: two holders acquired the lease", c.id)
					winner = i
				}
			}
			require.NotEqual(t, -1, winner, "%s: nobody acquired the lease", c.id)
			want := lease(c.id, fmt.Sprint("h-", winner), c.now.Add(ttl))
			for i := range n {
				requireLease(t, want, got[i], "%s: holder %d sees the winner's lease", c.id, i)
			}
		}
		requireErrorIs(t, f.renew("stale", "old", at(ttl), ttl), taskbridge.ErrLeaseLost)
	})

	t.Run("DeleteTerminalTasksRemovesLeases", func(t *testing.T) {
		f := leaseSetup(t, h)
		f.started("task-1")
		f.acquire("task-1", "a", at(0), ttl, true, lease("task-1", "a", at(ttl)))
		f.started("task-2")
		f.acquire("task-2", "a", at(0), ttl, true, lease("task-2", "a", at(ttl)))
		_, err := f.s.Append(f.ctx, NewEvent("task-1", taskbridge.CompletedPayload{Result: 1}, at(time.Second)))
		require.NoError(t, err)
		n, err := f.s.DeleteTerminalTasks(f.ctx, at(time.Hour), 10)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		requireLeases(t, []taskbridge.Lease{lease("task-2", "a", at(ttl))}, f.expired(at(time.Hour), 10),
			"a deleted task's lease is gone")
		_, _, err = f.ls.AcquireLease(f.ctx, "task-1", "a", at(time.Hour), ttl)
		requireErrorIs(t, err, taskbridge.ErrTaskNotFound)
		require.NoError(t, f.ls.ReleaseLease(f.ctx, "task-1", "a"), "releasing the lease of a deleted task")
	})
}
