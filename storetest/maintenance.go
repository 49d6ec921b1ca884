package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
)

func testMaintenance(t *testing.T, h Harness) {
	at := func(d time.Duration) *time.Time {
		t := BaseTime.Add(d)
		return &t
	}

	t.Run("ExpireSuspensions", func(t *testing.T) {
		f := setup(t, h)
		now := BaseTime.Add(time.Hour)
		f.started("t1")
		f.started("t2")
		f.open("t1", "past", at(time.Hour-time.Minute))
		f.open("t1", "now", at(time.Hour)) // ExpiresAt == now is due
		f.open("t1", "future", at(time.Hour+time.Minute))
		f.open("t1", "never", nil)
		f.open("t2", "past", at(time.Hour-2*time.Minute))
		f.open("t2", "resolved", at(time.Hour-time.Minute))
		f.accept("t2", "resolved", "a-1", BaseTime.Add(time.Minute), taskbridge.ActionAccepted)
		f.open("t2", "cancelled", at(time.Hour-time.Minute))
		_, _, err := f.s.CloseSuspension(f.ctx, "t2", "cancelled", taskbridge.SuspensionCancelled, f.tick())
		require.NoError(t, err)
		untouched := map[[2]string]taskbridge.Suspension{}
		for _, k := range [][2]string{{"t1", "future"}, {"t1", "never"}, {"t2", "resolved"}, {"t2", "cancelled"}} {
			untouched[k] = f.suspension(k[0], k[1])
		}

		got, err := f.s.ExpireSuspensions(f.ctx, now, 100)
		require.NoError(t, err)
		expired := map[string]bool{}
		for _, s := range got {
			require.Equal(t, taskbridge.SuspensionExpired, s.Status)
			requireTime(t, now, s.ClosedAt)
			requireSuspension(t, s, f.suspension(s.TaskID, s.SuspendID), "the returned suspension is the stored one")
			expired[s.TaskID+"/"+s.SuspendID] = true
		}
		require.Equal(t, map[string]bool{"t1/past": true, "t1/now": true, "t2/past": true}, expired)
		for k, want := range untouched {
			requireSuspension(t, want, f.suspension(k[0], k[1]), "%s/%s is not due", k[0], k[1])
		}

		got, err = f.s.ExpireSuspensions(f.ctx, now, 100)
		require.NoError(t, err)
		require.Empty(t, got, "nothing is due twice")
		f.accept("t1", "past", "a-2", BaseTime, taskbridge.ActionRejectedExpired)
	})

	t.Run("ExpireSuspensionsLimit", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		for i := range 5 {
			f.open("task-1", fmt.Sprint("s-", i), at(time.Duration(i)*time.Minute))
		}
		seen := map[string]bool{}
		for _, want := range []int{2, 2, 1, 0} {
			got, err := f.s.ExpireSuspensions(f.ctx, BaseTime.Add(time.Hour), 2)
			require.NoError(t, err)
			require.Len(t, got, want)
			for _, s := range got {
				require.False(t, seen[s.SuspendID], "%s expired twice", s.SuspendID)
				seen[s.SuspendID] = true
			}
		}
		require.Len(t, seen, 5)
	})

	t.Run("PendingResumes", func(t *testing.T) {
		f := setup(t, h)
		f.started("t1")
		f.started("t2")
		// Opened and accepted in the same order, so "oldest first" holds
		// by creation and by acceptance time alike.
		f.open("t1", "a", nil)
		f.open("t2", "b", nil)
		f.open("t1", "c", nil)
		f.open("t2", "open", nil)
		f.open("t1", "cancelled", nil)
		var want []taskbridge.Suspension
		for _, k := range [][2]string{{"t1", "a"}, {"t2", "b"}, {"t1", "c"}} {
			want = append(want, f.accept(k[0], k[1], "act-"+k[1], f.tick(), taskbridge.ActionAccepted).Suspension)
		}
		_, _, err := f.s.CloseSuspension(f.ctx, "t1", "cancelled", taskbridge.SuspensionCancelled, f.tick())
		require.NoError(t, err)

		requirePending := func(limit int, want ...taskbridge.Suspension) {
			t.Helper()
			got, err := f.s.ListPendingResumes(f.ctx, limit)
			require.NoError(t, err)
			require.Len(t, got, len(want))
			for i := range want {
				requireSuspension(t, want[i], got[i], "pending resume %d", i)
			}
		}
		requirePending(10, want...)
		requirePending(2, want[:2]...)

		require.NoError(t, f.s.MarkResumeDispatched(f.ctx, "t1", "a"))
		dispatched := want[0]
		dispatched.ResumeStatus = taskbridge.ResumeDispatched
		requireSuspension(t, dispatched, f.suspension("t1", "a"))
		requirePending(10, want[1:]...)
		require.NoError(t, f.s.MarkResumeDispatched(f.ctx, "t1", "a"), "marking twice is harmless")
		requireSuspension(t, dispatched, f.suspension("t1", "a"))

		requireErrorIs(t, f.s.MarkResumeDispatched(f.ctx, "nope", "a"), taskbridge.ErrTaskNotFound)
		requireErrorIs(t, f.s.MarkResumeDispatched(f.ctx, "t1", "nope"), taskbridge.ErrSuspensionNotFound)
	})

	t.Run("GetReceiptErrors", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		_, err := f.s.GetReceipt(f.ctx, "task-1", "a-1")
		requireErrorIs(t, err, taskbridge.ErrReceiptNotFound)
		_, err = f.s.GetReceipt(f.ctx, "nope", "a-1")
		require.True(t, isNotFound(err), "GetReceipt of an unknown task: %v", err)
	})

	t.Run("DeleteReceipts", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		cutoff := BaseTime.Add(time.Hour)
		for _, c := range []struct {
			id       string
			at       time.Time
			dispatch bool
		}{
			{"pending", cutoff.Add(-10 * time.Minute), false},
			{"old", cutoff.Add(-10 * time.Minute), true},
			{"edge", cutoff, true},
			{"new", cutoff.Add(10 * time.Minute), true},
		} {
			f.open("task-1", "s-"+c.id, nil)
			f.accept("task-1", "s-"+c.id, c.id, c.at, taskbridge.ActionAccepted)
			if c.dispatch {
				require.NoError(t, f.s.MarkResumeDispatched(f.ctx, "task-1", "s-"+c.id))
			}
		}
		requireReceipts := func(want ...string) {
			t.Helper()
			for _, id := range []string{"pending", "old", "edge", "new"} {
				_, err := f.s.GetReceipt(f.ctx, "task-1", id)
				if slices.Contains(want, id) {
					require.NoError(t, err, "receipt %s is kept", id)
				} else {
					requireErrorIs(t, err, taskbridge.ErrReceiptNotFound, "receipt %s is deleted", id)
				}
			}
		}

		n, err := f.s.DeleteReceipts(f.ctx, cutoff, 100)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		requireReceipts("pending", "edge", "new")

		require.NoError(t, f.s.MarkResumeDispatched(f.ctx, "task-1", "s-pending"))
		n, err = f.s.DeleteReceipts(f.ctx, cutoff, 100)
		require.NoError(t, err)
		require.Equal(t, 1, n, "a dispatched receipt is deleted")
		requireReceipts("edge", "new")

		n, err = f.s.DeleteReceipts(f.ctx, cutoff, 100)
		require.NoError(t, err)
		require.Zero(t, n)
		require.Equal(t, taskbridge.SuspensionResolved, f.suspension("task-1", "s-old").Status, "suspensions are kept")
	})

	t.Run("DeleteReceiptsLimit", func(t *testing.T) {
		f := setup(t, h)
		f.started("t1")
		f.started("t2")
		for i := range 3 {
			task := []string{"t1", "t2", "t1"}[i]
			id := fmt.Sprint("s-", i)
			f.open(task, id, nil)
			f.accept(task, id, fmt.Sprint("a-", i), f.tick(), taskbridge.ActionAccepted)
			require.NoError(t, f.s.MarkResumeDispatched(f.ctx, task, id))
		}
		for _, want := range []int{2, 1, 0} {
			n, err := f.s.DeleteReceipts(f.ctx, BaseTime.Add(time.Hour), 2)
			require.NoError(t, err)
			require.Equal(t, want, n)
		}
	})

	t.Run("DeleteTerminalTasks", func(t *testing.T) {
		f := setup(t, h)
		cutoff := BaseTime.Add(time.Hour)
		end := func(id string, p taskbridge.Payload, at time.Time) {
			f.started(id)
			f.open(id, "s-1", nil)
			f.accept(id, "s-1", "a-1", f.tick(), taskbridge.ActionAccepted)
			_, err := f.s.Append(f.ctx, NewEvent(id, p, at))
			require.NoError(t, err)
		}
		end("completed", taskbridge.CompletedPayload{Result: 1}, cutoff.Add(-time.Minute))
		end("failed", taskbridge.FailedPayload{Code: "E", Message: "m"}, cutoff.Add(-time.Second))
		end("edge", taskbridge.CancelledPayload{Reason: "R"}, cutoff)
		end("late", taskbridge.CompletedPayload{Result: 2}, cutoff.Add(time.Minute))
		f.started("running")
		f.create("accepted")
		f.create("cancel-requested")
		_, _, err := f.s.RequestCancel(f.ctx, "cancel-requested", "r", BaseTime)
		require.NoError(t, err)
		stop := f.s.Watch("completed", func() {})
		defer stop()

		n, err := f.s.DeleteTerminalTasks(f.ctx, cutoff, 100)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		for _, id := range []string{"completed", "failed"} {
			_, err := f.s.GetTask(f.ctx, id)
			requireErrorIs(t, err, taskbridge.ErrTaskNotFound, "GetTask(%s)", id)
			_, err = f.s.Read(f.ctx, id, 0, 10)
			requireErrorIs(t, err, taskbridge.ErrTaskNotFound, "Read(%s)", id)
			_, err = f.s.GetSuspension(f.ctx, id, "s-1")
			requireErrorIs(t, err, taskbridge.ErrTaskNotFound, "GetSuspension(%s)", id)
			_, err = f.s.ListSuspensions(f.ctx, id)
			requireErrorIs(t, err, taskbridge.ErrTaskNotFound, "ListSuspensions(%s)", id)
			_, err = f.s.GetReceipt(f.ctx, id, "a-1")
			require.True(t, isNotFound(err), "GetReceipt(%s): %v", id, err)
			_, err = f.s.Append(f.ctx, NewEvent(id, taskbridge.StartedPayload{}, f.tick()))
			requireErrorIs(t, err, taskbridge.ErrTaskNotFound, "Append(%s)", id)
		}
		list, err := f.s.ListTasks(f.ctx, taskbridge.TaskQuery{Limit: 100})
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"edge", "late", "running", "accepted", "cancel-requested"}, ids(list))
		pending, err := f.s.ListPendingResumes(f.ctx, 100)
		require.NoError(t, err)
		for _, s := range pending {
			require.NotContains(t, []string{"completed", "failed"}, s.TaskID, "suspensions of deleted tasks are gone")
		}
		for _, id := range []string{"edge", "late"} {
			_, err := f.s.GetReceipt(f.ctx, id, "a-1")
			require.NoError(t, err, "receipts of kept tasks stay")
		}

		// The idempotency key of a deleted task is free again.
		again := f.createTask(NewTask("completed-2", "alice", "req-completed", f.tick()))
		require.Equal(t, "completed-2", again.ID)

		n, err = f.s.DeleteTerminalTasks(f.ctx, cutoff, 100)
		require.NoError(t, err)
		require.Zero(t, n)
	})

	t.Run("DeleteTerminalTasksLimit", func(t *testing.T) {
		f := setup(t, h)
		for i := range 3 {
			id := fmt.Sprint("task-", i)
			f.started(id)
			f.append(id, taskbridge.CompletedPayload{Result: i})
		}
		for _, want := range []int{2, 1, 0} {
			n, err := f.s.DeleteTerminalTasks(f.ctx, BaseTime.Add(time.Hour), 2)
			require.NoError(t, err)
			require.Equal(t, want, n)
		}
		list, err := f.s.ListTasks(f.ctx, taskbridge.TaskQuery{Limit: 10})
		require.NoError(t, err)
		require.Empty(t, list)
	})
}
