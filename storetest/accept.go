package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
)

func testAcceptAction(t *testing.T, h Harness) {
	// suspended returns a fixture with RUNNING task-1 and OPEN suspension
	// s-1 (TASK_SUSPENDED at Seq 2) that expires at deadline.
	const deadline = time.Hour
	suspended := func(t *testing.T) (*fixture, time.Time) {
		f := setup(t, h)
		f.started("task-1")
		exp := BaseTime.Add(deadline)
		f.open("task-1", "s-1", &exp)
		return f, exp
	}

	t.Run("Accepted", func(t *testing.T) {
		f, _ := suspended(t)
		before := f.suspension("task-1", "s-1")
		now := f.tick()
		a := NewAttempt("task-1", "s-1", "a-1", "fp-a-1", now)
		res, err := f.s.AcceptAction(f.ctx, a)
		require.NoError(t, err)
		require.Equal(t, taskbridge.ActionAccepted, res.Status)

		wantEv := a.Event
		wantEv.Seq, wantEv.EventID = 3, "3"
		requireEvents(t, []taskbridge.TaskEvent{wantEv}, []taskbridge.TaskEvent{res.Event}, "the appended event")
		wantRec := a.Receipt
		wantRec.EventSeq = 3
		requireReceipt(t, wantRec, res.Receipt, "the stored receipt")
		wantSus := before
		wantSus.Status, wantSus.ResolvedActionID, wantSus.ClosedAt, wantSus.ResumeStatus =
			taskbridge.SuspensionResolved, "a-1", now, taskbridge.ResumePending
		requireSuspension(t, wantSus, res.Suspension, "the resolved suspension")

		requireSuspension(t, wantSus, f.suspension("task-1", "s-1"))
		rec, err := f.s.GetReceipt(f.ctx, "task-1", "a-1")
		require.NoError(t, err)
		requireReceipt(t, wantRec, rec)
		task := f.get("task-1")
		require.Equal(t, int64(3), task.LastSeq)
		require.Equal(t, taskbridge.StatusRunning, task.Status)
		requireTime(t, a.Event.CreatedAt, task.UpdatedAt)
		evs, err := f.s.Read(f.ctx, "task-1", 2, 10)
		require.NoError(t, err)
		requireEvents(t, []taskbridge.TaskEvent{wantEv}, evs)
	})

	t.Run("DeduplicatedRetry", func(t *testing.T) {
		f, exp := suspended(t)
		first := f.accept("task-1", "s-1", "a-1", f.tick(), taskbridge.ActionAccepted)
		// Retries win over every later rule: resolved, expired, terminal.
		retry := f.accept("task-1", "s-1", "a-1", exp.Add(time.Minute), taskbridge.ActionDeduplicated)
		requireReceipt(t, first.Receipt, retry.Receipt, "the existing receipt is returned")
		requireSuspension(t, first.Suspension, retry.Suspension)
		require.Zero(t, retry.Event.Seq, "no event for a retry")
		require.Equal(t, int64(3), f.get("task-1").LastSeq)

		f.append("task-1", taskbridge.CompletedPayload{Result: 1})
		retry = f.accept("task-1", "s-1", "a-1", f.tick(), taskbridge.ActionDeduplicated)
		requireReceipt(t, first.Receipt, retry.Receipt)
		require.Equal(t, int64(4), f.get("task-1").LastSeq)
	})

	t.Run("IdempotencyConflict", func(t *testing.T) {
		f, _ := suspended(t)
		first := f.accept("task-1", "s-1", "a-1", f.tick(), taskbridge.ActionAccepted)
		_, err := f.s.AcceptAction(f.ctx, NewAttempt("task-1", "s-1", "a-1", "other-fingerprint", f.tick()))
		requireErrorIs(t, err, taskbridge.ErrIdempotencyConflict)
		rec, err := f.s.GetReceipt(f.ctx, "task-1", "a-1")
		require.NoError(t, err)
		requireReceipt(t, first.Receipt, rec, "the receipt is unchanged")
		require.Equal(t, int64(3), f.get("task-1").LastSeq)
	})

	t.Run("ExpiredByDeadline", func(t *testing.T) {
		f, exp := suspended(t)
		before := f.suspension("task-1", "s-1")
		res := f.accept("task-1", "s-1", "a-1", exp, taskbridge.ActionRejectedExpired) // ExpiresAt == Now
		want := before
		want.Status, want.ClosedAt = taskbridge.SuspensionExpired, exp
		requireSuspension(t, want, res.Suspension, "the suspension is moved to EXPIRED")
		requireSuspension(t, want, f.suspension("task-1", "s-1"))
		require.Zero(t, res.Receipt.EventSeq)
		require.Zero(t, res.Event.Seq)
		_, err := f.s.GetReceipt(f.ctx, "task-1", "a-1")
		requireErrorIs(t, err, taskbridge.ErrReceiptNotFound, "no receipt for a rejected action")
		require.Equal(t, int64(2), f.get("task-1").LastSeq, "no event for a rejected action")

		// Once EXPIRED, even an earlier clock is rejected as expired.
		res = f.accept("task-1", "s-1", "a-2", exp.Add(-time.Minute), taskbridge.ActionRejectedExpired)
		requireSuspension(t, want, res.Suspension)
	})

	t.Run("AcceptedBeforeDeadline", func(t *testing.T) {
		f, exp := suspended(t)
		f.accept("task-1", "s-1", "a-1", exp.Add(-time.Millisecond), taskbridge.ActionAccepted)
	})

	t.Run("NoDeadline", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		f.open("task-1", "s-1", nil)
		f.accept("task-1", "s-1", "a-1", BaseTime.Add(1000*time.Hour), taskbridge.ActionAccepted)
	})

	t.Run("ResolvedBeatsDeadline", func(t *testing.T) {
		f, exp := suspended(t)
		f.accept("task-1", "s-1", "a-1", f.tick(), taskbridge.ActionAccepted)
		res := f.accept("task-1", "s-1", "a-2", exp.Add(time.Minute), taskbridge.ActionRejectedAlreadyResolved)
		require.Equal(t, taskbridge.SuspensionResolved, res.Suspension.Status, "a RESOLVED suspension is not expired")
	})

	t.Run("AlreadyResolved", func(t *testing.T) {
		f, _ := suspended(t)
		first := f.accept("task-1", "s-1", "a-1", f.tick(), taskbridge.ActionAccepted)
		res := f.accept("task-1", "s-1", "a-2", f.tick(), taskbridge.ActionRejectedAlreadyResolved)
		requireSuspension(t, first.Suspension, res.Suspension)
		require.Zero(t, res.Receipt.EventSeq)
		require.Zero(t, res.Event.Seq)
		_, err := f.s.GetReceipt(f.ctx, "task-1", "a-2")
		requireErrorIs(t, err, taskbridge.ErrReceiptNotFound)
		require.Equal(t, 1, countType(f.readAll("task-1"), taskbridge.EventTaskActionAccepted))
	})

	t.Run("ClosedSuspensions", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		f.open("task-1", "s-cancelled", nil)
		f.open("task-1", "s-expired", nil)
		_, _, err := f.s.CloseSuspension(f.ctx, "task-1", "s-cancelled", taskbridge.SuspensionCancelled, f.tick())
		require.NoError(t, err)
		_, _, err = f.s.CloseSuspension(f.ctx, "task-1", "s-expired", taskbridge.SuspensionExpired, f.tick())
		require.NoError(t, err)
		f.accept("task-1", "s-cancelled", "a-1", f.tick(), taskbridge.ActionRejectedAlreadyResolved)
		f.accept("task-1", "s-expired", "a-2", f.tick(), taskbridge.ActionRejectedExpired)
		require.Equal(t, 0, countType(f.readAll("task-1"), taskbridge.EventTaskActionAccepted))
	})

	t.Run("TerminalTask", func(t *testing.T) {
		f, _ := suspended(t)
		f.append("task-1", taskbridge.CancelledPayload{Reason: "USER"})
		res := f.accept("task-1", "s-1", "a-1", f.tick(), taskbridge.ActionRejectedAlreadyResolved)
		require.Equal(t, taskbridge.SuspensionCancelled, res.Suspension.Status)
		requireSeqs(t, f.readAll("task-1"), 1, 2, 3)
	})

	t.Run("Unknown", func(t *testing.T) {
		f, _ := suspended(t)
		_, err := f.s.AcceptAction(f.ctx, NewAttempt("nope", "s-1", "a-1", "fp", f.tick()))
		requireErrorIs(t, err, taskbridge.ErrTaskNotFound)
		_, err = f.s.AcceptAction(f.ctx, NewAttempt("task-1", "s-9", "a-1", "fp", f.tick()))
		requireErrorIs(t, err, taskbridge.ErrSuspensionNotFound)
		require.Equal(t, taskbridge.SuspensionOpen, f.suspension("task-1", "s-1").Status)
	})

	t.Run("RejectsInvalidEvent", func(t *testing.T) {
		f, _ := suspended(t)
		a := NewAttempt("task-1", "s-1", "a-1", "fp", f.tick())
		a.Event.Type = taskbridge.EventTaskMessage
		_, err := f.s.AcceptAction(f.ctx, a)
		requireErrorIs(t, err, taskbridge.ErrInvalidEvent)
		require.Equal(t, taskbridge.SuspensionOpen, f.suspension("task-1", "s-1").Status)
		_, err = f.s.GetReceipt(f.ctx, "task-1", "a-1")
		requireErrorIs(t, err, taskbridge.ErrReceiptNotFound)
		require.Equal(t, int64(2), f.get("task-1").LastSeq)
	})

	t.Run("ConcurrentDistinctActions", func(t *testing.T) {
		f, _ := suspended(t)
		raceDistinctActions(t, f, f.s)
	})

	t.Run("ConcurrentRetries", func(t *testing.T) {
		f, _ := suspended(t)
		const n = 50
		var (
			res  [n]taskbridge.AcceptResult
			errs [n]error
		)
		now := f.tick()
		race(n, func(i int) {
			res[i], errs[i] = f.s.AcceptAction(f.ctx, NewAttempt("task-1", "s-1", "a-1", "fp-a-1", now))
		})
		accepted := 0
		for i := range n {
			require.NoError(t, errs[i])
			switch res[i].Status {
			case taskbridge.ActionAccepted:
				accepted++
			case taskbridge.ActionDeduplicated:
			default:
				t.Fatalf("retry %d: status %s", i, res[i].Status)
			}
			require.Equal(t, int64(3), res[i].Receipt.EventSeq, "every retry sees the one receipt")
		}
		require.Equal(t, 1, accepted, "exactly one identical attempt is accepted")
		requireSeqs(t, f.readAll("task-1"), 1, 2, 3)
	})

	t.Run("RaceWithTerminalAppend", func(t *testing.T) {
		f := setup(t, h)
		for i := range 10 {
			id := fmt.Sprint("task-", i)
			f.started(id)
			f.open(id, "s-1", nil)
			now := f.tick()
			var (
				res       taskbridge.AcceptResult
				acceptErr error
				end       taskbridge.TaskEvent
				endErr    error
			)
			race(2, func(g int) {
				if g == 0 {
					res, acceptErr = f.s.AcceptAction(f.ctx, NewAttempt(id, "s-1", "a-1", "fp", now))
				} else {
					end, endErr = f.s.Append(f.ctx, NewEvent(id, taskbridge.CompletedPayload{Result: i}, now))
				}
			})
			require.NoError(t, acceptErr)
			require.NoError(t, endErr, "the terminal append always succeeds")
			evs := f.readAll(id)
			require.True(t, evs[len(evs)-1].Terminal(), "the terminal event is the last one")
			switch res.Status {
			case taskbridge.ActionAccepted:
				require.Less(t, res.Event.Seq, end.Seq)
				requireSeqs(t, evs, 1, 2, 3, 4)
				require.Equal(t, taskbridge.SuspensionResolved, f.suspension(id, "s-1").Status)
			case taskbridge.ActionRejectedAlreadyResolved:
				requireSeqs(t, evs, 1, 2, 3)
				require.Equal(t, taskbridge.SuspensionCancelled, f.suspension(id, "s-1").Status)
			default:
				t.Fatalf("accept racing a terminal append: status %s", res.Status)
			}
		}
	})
}

// raceDistinctActions races 50 distinct actions on OPEN suspension s-1 of
// RUNNING task-1 (TASK_SUSPENDED at Seq 2), spread over stores, and
// requires exactly one to be accepted.
func raceDistinctActions(t *testing.T, f *fixture, stores ...taskbridge.Store) {
	t.Helper()
	const n = 50
	var (
		res  [n]taskbridge.AcceptResult
		errs [n]error
	)
	now := f.tick()
	race(n, func(i int) {
		id := fmt.Sprint("a-", i)
		res[i], errs[i] = stores[i%len(stores)].AcceptAction(f.ctx, NewAttempt("task-1", "s-1", id, "fp-"+id, now))
	})
	winner := -1
	for i := range n {
		require.NoError(t, errs[i])
		if res[i].Status == taskbridge.ActionAccepted {
			require.Equal(t, -1, winner, "two distinct actions were accepted")
			winner = i
			continue
		}
		require.Equal(t, taskbridge.ActionRejectedAlreadyResolved, res[i].Status, "action %d", i)
	}
	require.NotEqual(t, -1, winner, "no action was accepted")
	require.Equal(t, fmt.Sprint("a-", winner), f.suspension("task-1", "s-1").ResolvedActionID)
	evs := f.readAll("task-1")
	require.Equal(t, 1, countType(evs, taskbridge.EventTaskActionAccepted), "exactly one TASK_ACTION_ACCEPTED")
	requireSeqs(t, evs, 1, 2, 3)
	for i := range n {
		_, err := f.s.GetReceipt(f.ctx, "task-1", fmt.Sprint("a-", i))
		if i == winner {
			require.NoError(t, err)
		} else {
			requireErrorIs(t, err, taskbridge.ErrReceiptNotFound, "receipt of rejected action %d", i)
		}
	}
}
