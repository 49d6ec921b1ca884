package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
)

func testSuspensions(t *testing.T, h Harness) {
	t.Run("Open", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		exp := BaseTime.Add(time.Hour)
		at := f.tick()
		in, ev := NewSuspension("task-1", "s-1", &exp, at)
		got, gotEv, err := f.s.OpenSuspension(f.ctx, in, ev)
		require.NoError(t, err)

		wantEv := ev
		wantEv.Seq, wantEv.EventID = 2, "2"
		requireEvents(t, []taskbridge.TaskEvent{wantEv}, []taskbridge.TaskEvent{gotEv}, "the appended TASK_SUSPENDED event")
		want := in
		want.Status, want.ResumeStatus, want.EventSeq, want.CreatedAt = taskbridge.SuspensionOpen, taskbridge.ResumeNone, 2, at
		requireSuspension(t, want, got, "the stored suspension")
		requireSuspension(t, want, f.suspension("task-1", "s-1"))

		task := f.get("task-1")
		require.Equal(t, int64(2), task.LastSeq, "the task's LastSeq advances")
		require.Equal(t, taskbridge.StatusRunning, task.Status)
		requireTime(t, at, task.UpdatedAt)
		evs, err := f.s.Read(f.ctx, "task-1", 1, 10)
		require.NoError(t, err)
		requireEvents(t, []taskbridge.TaskEvent{wantEv}, evs)
	})

	t.Run("DuplicateID", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		f.open("task-1", "s-1", nil)
		for _, closeFirst := range []bool{false, true} {
			if closeFirst {
				_, changed, err := f.s.CloseSuspension(f.ctx, "task-1", "s-1", taskbridge.SuspensionCancelled, f.tick())
				require.NoError(t, err)
				require.True(t, changed)
			}
			in, ev := NewSuspension("task-1", "s-1", nil, f.tick())
			_, _, err := f.s.OpenSuspension(f.ctx, in, ev)
			requireErrorIs(t, err, taskbridge.ErrDuplicateSuspension, "closed first: %v", closeFirst)
			require.Equal(t, int64(2), f.get("task-1").LastSeq, "nothing is appended for a duplicate")
			requireSeqs(t, f.readAll("task-1"), 1, 2)
		}
		list, err := f.s.ListSuspensions(f.ctx, "task-1")
		require.NoError(t, err)
		require.Len(t, list, 1)

		f.started("task-2")
		f.open("task-2", "s-1", nil) // ids are per task
	})

	t.Run("RefusedByStateMachine", func(t *testing.T) {
		f := setup(t, h)
		f.create("accepted")
		f.started("done")
		f.append("done", taskbridge.CompletedPayload{Result: 1})
		for _, tc := range []struct {
			task string
			want error
		}{
			{"accepted", taskbridge.ErrInvalidTransition},
			{"done", taskbridge.ErrTaskTerminal},
			{"nope", taskbridge.ErrTaskNotFound},
		} {
			in, ev := NewSuspension(tc.task, "s-1", nil, f.tick())
			_, _, err := f.s.OpenSuspension(f.ctx, in, ev)
			requireErrorIs(t, err, tc.want, "task %s", tc.task)
			if tc.task == "nope" {
				continue
			}
			_, err = f.s.GetSuspension(f.ctx, tc.task, "s-1")
			requireErrorIs(t, err, taskbridge.ErrSuspensionNotFound, "nothing is recorded on %s", tc.task)
		}
		require.Zero(t, f.get("accepted").LastSeq)
		require.Equal(t, int64(2), f.get("done").LastSeq)
	})

	t.Run("RejectsInvalidEvent", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		for _, tc := range []struct {
			name   string
			mutate func(*taskbridge.TaskEvent)
		}{
			{"wrong type", func(e *taskbridge.TaskEvent) { e.Type = taskbridge.EventTaskMessage }},
			{"with EventID", func(e *taskbridge.TaskEvent) { e.EventID = "2" }},
			{"with Seq", func(e *taskbridge.TaskEvent) { e.Seq = 2 }},
			{"zero CreatedAt", func(e *taskbridge.TaskEvent) { e.CreatedAt = time.Time{} }},
		} {
			in, ev := NewSuspension("task-1", "s-1", nil, f.tick())
			tc.mutate(&ev)
			_, _, err := f.s.OpenSuspension(f.ctx, in, ev)
			requireErrorIs(t, err, taskbridge.ErrInvalidEvent, tc.name)
		}
		_, err := f.s.GetSuspension(f.ctx, "task-1", "s-1")
		requireErrorIs(t, err, taskbridge.ErrSuspensionNotFound)
		require.Equal(t, int64(1), f.get("task-1").LastSeq)
	})

	t.Run("GetErrors", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		_, err := f.s.GetSuspension(f.ctx, "nope", "s-1")
		requireErrorIs(t, err, taskbridge.ErrTaskNotFound)
		_, err = f.s.GetSuspension(f.ctx, "task-1", "s-1")
		requireErrorIs(t, err, taskbridge.ErrSuspensionNotFound)
	})

	t.Run("ListInOpeningOrder", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		list, err := f.s.ListSuspensions(f.ctx, "task-1")
		require.NoError(t, err)
		require.Empty(t, list)

		var want []taskbridge.Suspension
		for _, id := range []string{"s-b", "s-a", "s-c"} {
			want = append(want, f.open("task-1", id, nil))
		}
		want[1], _, err = f.s.CloseSuspension(f.ctx, "task-1", "s-a", taskbridge.SuspensionCancelled, f.tick())
		require.NoError(t, err)
		list, err = f.s.ListSuspensions(f.ctx, "task-1")
		require.NoError(t, err)
		require.Len(t, list, 3)
		for i := range want {
			requireSuspension(t, want[i], list[i], "suspension %d", i)
		}

		_, err = f.s.ListSuspensions(f.ctx, "nope")
		requireErrorIs(t, err, taskbridge.ErrTaskNotFound)
	})

	t.Run("TerminalAppendCancelsOpenSuspensions", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		f.open("task-1", "s-open", nil)
		f.open("task-1", "s-resolved", nil)
		f.open("task-1", "s-expired", nil)
		resolved := f.accept("task-1", "s-resolved", "a-1", f.tick(), taskbridge.ActionAccepted).Suspension
		expired, _, err := f.s.CloseSuspension(f.ctx, "task-1", "s-expired", taskbridge.SuspensionExpired, f.tick())
		require.NoError(t, err)
		open := f.suspension("task-1", "s-open")

		end := f.append("task-1", taskbridge.CompletedPayload{Result: "ok"})
		open.Status, open.ClosedAt = taskbridge.SuspensionCancelled, end.CreatedAt
		requireSuspension(t, open, f.suspension("task-1", "s-open"), "an OPEN suspension is cancelled by the terminal event")
		requireSuspension(t, resolved, f.suspension("task-1", "s-resolved"), "a resolved suspension is kept")
		requireSuspension(t, expired, f.suspension("task-1", "s-expired"), "an expired suspension is kept")
	})

	t.Run("AppendsNotifyWatchers", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		w := newSignal()
		defer f.s.Watch("task-1", w.notify)()
		f.open("task-1", "s-1", nil)
		w.wait(t, "for TASK_SUSPENDED")
		f.accept("task-1", "s-1", "a-1", f.tick(), taskbridge.ActionAccepted)
		w.wait(t, "for TASK_ACTION_ACCEPTED")
	})

	t.Run("Close", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		f.open("task-1", "s-1", nil)
		f.open("task-1", "s-2", nil)
		f.open("task-1", "s-3", nil)
		f.accept("task-1", "s-3", "a-1", f.tick(), taskbridge.ActionAccepted)
		lastSeq := f.get("task-1").LastSeq

		at := f.tick()
		got, changed, err := f.s.CloseSuspension(f.ctx, "task-1", "s-1", taskbridge.SuspensionCancelled, at)
		require.NoError(t, err)
		require.True(t, changed)
		want := f.suspension("task-1", "s-1")
		require.Equal(t, taskbridge.SuspensionCancelled, want.Status)
		requireTime(t, at, want.ClosedAt)
		requireSuspension(t, want, got)

		again, changed, err := f.s.CloseSuspension(f.ctx, "task-1", "s-1", taskbridge.SuspensionExpired, f.tick())
		require.NoError(t, err)
		require.False(t, changed, "a closed suspension does not change again")
		requireSuspension(t, want, again)
		requireSuspension(t, want, f.suspension("task-1", "s-1"))

		at = f.tick()
		got, changed, err = f.s.CloseSuspension(f.ctx, "task-1", "s-2", taskbridge.SuspensionExpired, at)
		require.NoError(t, err)
		require.True(t, changed)
		require.Equal(t, taskbridge.SuspensionExpired, got.Status)
		requireTime(t, at, got.ClosedAt)

		resolved := f.suspension("task-1", "s-3")
		got, changed, err = f.s.CloseSuspension(f.ctx, "task-1", "s-3", taskbridge.SuspensionCancelled, f.tick())
		require.NoError(t, err)
		require.False(t, changed)
		requireSuspension(t, resolved, got, "a resolved suspension is returned unchanged")

		require.Equal(t, lastSeq, f.get("task-1").LastSeq, "closing appends no event")
	})

	t.Run("CloseRejectsOtherStatuses", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		open := f.open("task-1", "s-1", nil)
		for _, st := range []taskbridge.SuspensionStatus{taskbridge.SuspensionOpen, taskbridge.SuspensionResolved, "", "GONE"} {
			_, _, err := f.s.CloseSuspension(f.ctx, "task-1", "s-1", st, f.tick())
			require.Error(t, err, "closing as %q", st)
		}
		requireSuspension(t, open, f.suspension("task-1", "s-1"))
	})

	t.Run("CloseUnknown", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		_, _, err := f.s.CloseSuspension(f.ctx, "nope", "s-1", taskbridge.SuspensionCancelled, BaseTime)
		requireErrorIs(t, err, taskbridge.ErrTaskNotFound)
		_, _, err = f.s.CloseSuspension(f.ctx, "task-1", "s-1", taskbridge.SuspensionCancelled, BaseTime)
		requireErrorIs(t, err, taskbridge.ErrSuspensionNotFound)
	})
}
