package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
)

func testAppend(t *testing.T, h Harness) {
	t.Run("AssignsSequence", func(t *testing.T) {
		f := setup(t, h)
		f.create("task-1")
		ins := []taskbridge.TaskEvent{
			NewEvent("task-1", taskbridge.StartedPayload{Message: "go"}, f.tick()),
			NewEvent("task-1", taskbridge.ProgressPayload{Progress: 50, Stage: "half"}, f.tick()),
			NewEvent("task-1", taskbridge.MessagePayload{Message: "hi", Level: taskbridge.LevelInfo}, f.tick()),
		}
		var appended []taskbridge.TaskEvent
		for i, in := range ins {
			got, err := f.s.Append(f.ctx, in)
			require.NoError(t, err)
			want := in
			want.Seq = int64(i + 1)
			want.EventID = taskbridge.FormatEventID(want.Seq)
			requireEvents(t, []taskbridge.TaskEvent{want}, []taskbridge.TaskEvent{got}, "Append returns the event with Seq and EventID")
			appended = append(appended, got)
		}
		evs, err := f.s.Read(f.ctx, "task-1", 0, 10)
		require.NoError(t, err)
		requireEvents(t, appended, evs, "Read returns the appended events")
	})

	t.Run("UpdatesTask", func(t *testing.T) {
		f := setup(t, h)
		created := f.create("task-1")
		want := created
		for _, tc := range []struct {
			p      taskbridge.Payload
			status taskbridge.TaskStatus
		}{
			{taskbridge.StartedPayload{}, taskbridge.StatusRunning},
			{taskbridge.ProgressPayload{Progress: 10}, taskbridge.StatusRunning},
			{taskbridge.MessagePayload{Message: "m"}, taskbridge.StatusRunning},
			{taskbridge.CompletedPayload{Result: map[string]any{"ok": true}}, taskbridge.StatusCompleted},
		} {
			ev := f.append("task-1", tc.p)
			want.Status, want.LastSeq, want.UpdatedAt = tc.status, ev.Seq, ev.CreatedAt
			requireTask(t, want, f.get("task-1"), "after %s", tc.p.EventType())
		}
	})

	t.Run("RejectsInvalidEvents", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		valid := func() taskbridge.TaskEvent {
			return NewEvent("task-1", taskbridge.MessagePayload{Message: "m"}, f.tick())
		}
		suspended, _ := NewSuspension("task-1", "s-1", nil, f.tick())
		for _, tc := range []struct {
			name string
			ev   taskbridge.TaskEvent
		}{
			{"with EventID", func() taskbridge.TaskEvent { e := valid(); e.EventID = "2"; return e }()},
			{"with Seq", func() taskbridge.TaskEvent { e := valid(); e.Seq = 2; return e }()},
			{"zero CreatedAt", func() taskbridge.TaskEvent { e := valid(); e.CreatedAt = time.Time{}; return e }()},
			{"empty type", func() taskbridge.TaskEvent { e := valid(); e.Type = ""; return e }()},
			{"unknown type", func() taskbridge.TaskEvent { e := valid(); e.Type = "TASK_EXPLODED"; return e }()},
			{"TASK_SUSPENDED", NewEvent("task-1", suspended.SuspendedPayload, f.tick())},
			{"TASK_ACTION_ACCEPTED", NewAttempt("task-1", "s-1", "a-1", "fp", f.tick()).Event},
		} {
			_, err := f.s.Append(f.ctx, tc.ev)
			requireErrorIs(t, err, taskbridge.ErrInvalidEvent, tc.name)
		}
		require.Equal(t, int64(1), f.get("task-1").LastSeq, "rejected events are not appended")
		requireSeqs(t, f.readAll("task-1"), 1)
	})

	t.Run("UnknownTask", func(t *testing.T) {
		f := setup(t, h)
		_, err := f.s.Append(f.ctx, NewEvent("nope", taskbridge.StartedPayload{}, BaseTime))
		requireErrorIs(t, err, taskbridge.ErrTaskNotFound)
	})

	t.Run("StateMachine", func(t *testing.T) {
		f := setup(t, h)
		f.create("task-1")
		for _, p := range []taskbridge.Payload{taskbridge.ProgressPayload{Progress: 1}, taskbridge.MessagePayload{Message: "m"}} {
			_, err := f.s.Append(f.ctx, NewEvent("task-1", p, f.tick()))
			requireErrorIs(t, err, taskbridge.ErrInvalidTransition, "%s before TASK_STARTED", p.EventType())
		}
		got := f.get("task-1")
		require.Equal(t, taskbridge.StatusAccepted, got.Status)
		require.Zero(t, got.LastSeq)

		f.append("task-1", taskbridge.StartedPayload{})
		_, err := f.s.Append(f.ctx, NewEvent("task-1", taskbridge.StartedPayload{}, f.tick()))
		requireErrorIs(t, err, taskbridge.ErrInvalidTransition, "a second TASK_STARTED")
		require.Equal(t, int64(1), f.get("task-1").LastSeq)
	})

	terminals := []taskbridge.Payload{
		taskbridge.CompletedPayload{Result: nil},
		taskbridge.FailedPayload{Code: "E", Message: "failed"},
		taskbridge.CancelledPayload{Reason: "USER"},
	}
	t.Run("TerminalFromAccepted", func(t *testing.T) {
		f := setup(t, h)
		for i, p := range terminals {
			id := fmt.Sprint("task-", i)
			f.create(id)
			ev := f.append(id, p)
			require.Equal(t, int64(1), ev.Seq)
			require.Equal(t, p.EventType().TerminalStatus(), f.get(id).Status, "%s ends an ACCEPTED task", p.EventType())
		}
	})

	t.Run("NothingAfterTerminal", func(t *testing.T) {
		f := setup(t, h)
		for i, p := range terminals {
			id := fmt.Sprint("task-", i)
			f.started(id)
			f.append(id, p)
			want := f.get(id)
			for _, next := range append([]taskbridge.Payload{
				taskbridge.StartedPayload{}, taskbridge.ProgressPayload{Progress: 100}, taskbridge.MessagePayload{Message: "late"},
			}, terminals...) {
				_, err := f.s.Append(f.ctx, NewEvent(id, next, f.tick()))
				requireErrorIs(t, err, taskbridge.ErrTaskTerminal, "%s after %s", next.EventType(), p.EventType())
			}
			requireTask(t, want, f.get(id), "a terminal task does not change")
			requireSeqs(t, f.readAll(id), 1, 2)
		}
	})

	t.Run("ConcurrentTerminalAppends", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		const n = 24
		var (
			got  [n]taskbridge.TaskEvent
			errs [n]error
		)
		at := f.tick()
		race(n, func(i int) {
			got[i], errs[i] = f.s.Append(f.ctx, NewEvent("task-1", terminals[i%len(terminals)], at))
		})
		winner := -1
		for i := range n {
			if errs[i] == nil {
				require.Equal(t, -1, winner, "two terminal appends succeeded")
				winner = i
				continue
			}
			requireErrorIs(t, errs[i], taskbridge.ErrTaskTerminal, "losing terminal append %d", i)
		}
		require.NotEqual(t, -1, winner, "no terminal append succeeded")
		require.Equal(t, int64(2), got[winner].Seq)
		evs := f.readAll("task-1")
		requireSeqs(t, evs, 1, 2)
		require.Equal(t, got[winner].Type, evs[1].Type)
		require.Equal(t, got[winner].Type.TerminalStatus(), f.get("task-1").Status)
	})

	t.Run("ConcurrentAppendsAreOrdered", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		const goroutines, perGoroutine = 16, 100
		var (
			mu    sync.Mutex
			bySeq = map[int64]string{}
			errs  [goroutines]error
		)
		race(goroutines, func(g int) {
			prev := int64(0)
			for i := range perGoroutine {
				msg := fmt.Sprintf("%d/%d", g, i)
				ev, err := f.s.Append(f.ctx, NewEvent("task-1", taskbridge.MessagePayload{Message: msg}, BaseTime.Add(time.Duration(i)*time.Millisecond)))
				if err != nil {
					errs[g] = err
					return
				}
				if ev.Seq <= prev {
					errs[g] = fmt.Errorf("goroutine %d: Seq %d after %d", g, ev.Seq, prev)
					return
				}
				prev = ev.Seq
				mu.Lock()
				if old, dup := bySeq[ev.Seq]; dup {
					errs[g] = fmt.Errorf("Seq %d assigned to %q and %q", ev.Seq, old, msg)
				}
				bySeq[ev.Seq] = msg
				mu.Unlock()
			}
		})
		for _, err := range errs {
			require.NoError(t, err)
		}
		const total = 1 + goroutines*perGoroutine
		require.Len(t, bySeq, total-1)
		require.Equal(t, int64(total), f.get("task-1").LastSeq)
		evs := f.readAll("task-1")
		requireSeqs(t, evs, seqRange(1, total)...)
		for _, ev := range evs[1:] {
			require.Equal(t, bySeq[ev.Seq], message(t, ev), "event at Seq %d", ev.Seq)
		}
	})
}

func testRead(t *testing.T, h Harness) {
	testReads(t, h, func(f *fixture) readFunc { return f.s.Read })
}

// readFunc reads a task's events as EventStore.Read does.
type readFunc func(ctx context.Context, taskID string, after int64, limit int) ([]taskbridge.TaskEvent, error)

// testReads checks reads of a store's log made through read, which is
// Read or an equivalent (see testExtensions).
func testReads(t *testing.T, h Harness, read func(f *fixture) readFunc) {
	// A log long enough for ids that mis-sort as strings ("9" < "10",
	// "99" < "100", "999" < "1000").
	const n = 1050
	longLog := func(t *testing.T) *fixture {
		f := setup(t, h)
		f.started("task-1")
		f.messages("task-1", n-1)
		return f
	}

	t.Run("StrictlyAfterCursor", func(t *testing.T) {
		f := longLog(t)
		for _, after := range []int64{0, 1, 8, 9, 10, 11, 98, 99, 100, 101, 998, 999, 1000, 1001, n - 2, n - 1} {
			evs, err := read(f)(f.ctx, "task-1", after, 3)
			require.NoError(t, err, "after %d", after)
			requireSeqs(t, evs, seqRange(after+1, min(after+3, n))...)
			for _, ev := range evs {
				if ev.Seq > 1 {
					require.Equal(t, fmt.Sprint(ev.Seq), message(t, ev), "payload of Seq %d", ev.Seq)
				}
			}
		}
		evs, err := read(f)(f.ctx, "task-1", 0, n+10)
		require.NoError(t, err)
		requireSeqs(t, evs, seqRange(1, n)...)
		evs, err = read(f)(f.ctx, "task-1", 0, 1)
		require.NoError(t, err)
		requireSeqs(t, evs, 1)
	})

	t.Run("PagesThroughLog", func(t *testing.T) {
		f := longLog(t)
		var seqs []int64
		after := int64(0)
		for {
			evs, err := read(f)(f.ctx, "task-1", after, 7)
			require.NoError(t, err)
			require.LessOrEqual(t, len(evs), 7, "the limit is respected")
			if len(evs) == 0 {
				break
			}
			require.Greater(t, evs[0].Seq, after, "Read after %d returned an event not after the cursor", after)
			for _, ev := range evs {
				seqs = append(seqs, ev.Seq)
			}
			after = evs[len(evs)-1].Seq
		}
		require.Equal(t, seqRange(1, n), seqs, "paging yields every event once, in order")
	})

	t.Run("CursorErrors", func(t *testing.T) {
		f := setup(t, h)
		f.create("empty")
		evs, err := read(f)(f.ctx, "empty", 0, 10)
		require.NoError(t, err)
		require.Empty(t, evs, "a task without events reads empty from the start")
		_, err = read(f)(f.ctx, "empty", 1, 10)
		requireErrorIs(t, err, taskbridge.ErrInvalidCursor, "a cursor beyond an empty log")

		f.started("task-1")
		f.messages("task-1", 4)
		for _, after := range []int64{-1, -100, 6, 7, 1000} {
			_, err := read(f)(f.ctx, "task-1", after, 10)
			requireErrorIs(t, err, taskbridge.ErrInvalidCursor, "after %d", after)
		}
		evs, err = read(f)(f.ctx, "task-1", 5, 10)
		require.NoError(t, err, "the last event is a valid cursor")
		require.Empty(t, evs)
		evs, err = read(f)(f.ctx, "task-1", 0, 10)
		require.NoError(t, err)
		requireSeqs(t, evs, 1, 2, 3, 4, 5)
	})

	t.Run("UnknownTask", func(t *testing.T) {
		f := setup(t, h)
		_, err := read(f)(f.ctx, "nope", 0, 10)
		requireErrorIs(t, err, taskbridge.ErrTaskNotFound)
	})

	t.Run("ExpiredCursors", func(t *testing.T) {
		if h.Trim == nil {
			t.Skip("storetest: Harness.Trim is nil, so expired cursors are not checked for this store")
		}
		f := setup(t, h)
		f.started("task-1")
		f.messages("task-1", 19)
		h.Trim(t, f.s, "task-1", 5) // keeps 16..20
		require.Equal(t, int64(20), f.get("task-1").LastSeq, "trimming keeps LastSeq")

		for _, after := range []int64{1, 2, 10, 14} {
			_, err := read(f)(f.ctx, "task-1", after, 10)
			requireErrorIs(t, err, taskbridge.ErrEventsExpired, "after %d with events from 16 on", after)
		}
		evs, err := read(f)(f.ctx, "task-1", 15, 10)
		require.NoError(t, err, "the cursor just before the first retained event")
		requireSeqs(t, evs, 16, 17, 18, 19, 20)
		evs, err = read(f)(f.ctx, "task-1", 0, 2)
		require.NoError(t, err, "after 0 reads from the first retained event")
		requireSeqs(t, evs, 16, 17)
		evs, err = read(f)(f.ctx, "task-1", 20, 10)
		require.NoError(t, err)
		require.Empty(t, evs)
		_, err = read(f)(f.ctx, "task-1", 21, 10)
		requireErrorIs(t, err, taskbridge.ErrInvalidCursor, "a cursor ahead of a trimmed log")
		_, err = read(f)(f.ctx, "task-1", -1, 10)
		requireErrorIs(t, err, taskbridge.ErrInvalidCursor)

		ev := f.append("task-1", taskbridge.MessagePayload{Message: "21"})
		require.Equal(t, int64(21), ev.Seq, "the sequence continues after trimming")
		evs, err = read(f)(f.ctx, "task-1", 15, 10)
		require.NoError(t, err)
		requireSeqs(t, evs, 16, 17, 18, 19, 20, 21)
	})
}
