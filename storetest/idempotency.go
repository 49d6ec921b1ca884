package storetest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
)

// keyed returns an event of p's type for taskID at the fixture's next tick
// with the given IdempotencyKey.
func (f *fixture) keyed(taskID, key string, p taskbridge.Payload) taskbridge.TaskEvent {
	ev := NewEvent(taskID, p, f.tick())
	ev.IdempotencyKey = key
	return ev
}

// testIdempotentAppend checks the IdempotencyKey rules of
// [taskbridge.EventStore.Append].
func testIdempotentAppend(t *testing.T, h Harness) {
	t.Run("RepeatedKeyReturnsFirstEvent", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		in := f.keyed("task-1", "step-1", taskbridge.ProgressPayload{Progress: 10, Stage: "first"})
		first, err := f.s.Append(f.ctx, in)
		require.NoError(t, err)
		want := in
		want.Seq, want.EventID = 2, "2"
		requireEvents(t, []taskbridge.TaskEvent{want}, []taskbridge.TaskEvent{first}, "the first append")
		task := f.get("task-1")

		w := newSignal()
		defer f.s.Watch("task-1", w.notify)()
		// The repeat differs in everything but the key and still changes
		// nothing.
		again, err := f.s.Append(f.ctx, f.keyed("task-1", "step-1", taskbridge.MessagePayload{Message: "second"}))
		require.NoError(t, err, "a repeated key is not an error")
		requireEvents(t, []taskbridge.TaskEvent{want}, []taskbridge.TaskEvent{again}, "the repeat returns the first event unchanged")
		requireTask(t, task, f.get("task-1"), "a repeat does not change the task")
		requireSeqs(t, f.readAll("task-1"), 1, 2)

		// A repeat need not notify anyone (a store that notifies after
		// commit may still deliver the first append's call now, and Watch
		// allows spurious calls), but the next real append must.
		f.append("task-1", taskbridge.MessagePayload{Message: "real"})
		w.wait(t, "for the append after a repeat")
	})

	t.Run("RepeatAfterTerminal", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		first, err := f.s.Append(f.ctx, f.keyed("task-1", "done", taskbridge.CompletedPayload{Result: map[string]any{"n": 1}}))
		require.NoError(t, err)
		again, err := f.s.Append(f.ctx, f.keyed("task-1", "done", taskbridge.CompletedPayload{Result: map[string]any{"n": 2}}))
		require.NoError(t, err, "a repeated terminal event is not ErrTaskTerminal")
		requireEvents(t, []taskbridge.TaskEvent{first}, []taskbridge.TaskEvent{again})

		f.started("task-2")
		msg, err := f.s.Append(f.ctx, f.keyed("task-2", "m", taskbridge.MessagePayload{Message: "before the end"}))
		require.NoError(t, err)
		f.append("task-2", taskbridge.FailedPayload{Code: "E", Message: "failed"})
		again, err = f.s.Append(f.ctx, f.keyed("task-2", "m", taskbridge.MessagePayload{Message: "retried"}))
		require.NoError(t, err, "a key used before the task ended is still known")
		requireEvents(t, []taskbridge.TaskEvent{msg}, []taskbridge.TaskEvent{again})
		_, err = f.s.Append(f.ctx, f.keyed("task-2", "new-key", taskbridge.MessagePayload{Message: "late"}))
		requireErrorIs(t, err, taskbridge.ErrTaskTerminal, "a new key after the terminal event")
		requireSeqs(t, f.readAll("task-2"), 1, 2, 3)
	})

	t.Run("KeysArePerTaskAndExact", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		f.started("task-2")
		a, err := f.s.Append(f.ctx, f.keyed("task-1", "k", taskbridge.MessagePayload{Message: "a"}))
		require.NoError(t, err)
		b, err := f.s.Append(f.ctx, f.keyed("task-2", "k", taskbridge.MessagePayload{Message: "b"}))
		require.NoError(t, err)
		require.Equal(t, int64(2), a.Seq)
		require.Equal(t, int64(2), b.Seq, "the same key in another task appends")
		for i, key := range []string{"K", "k ", " k", "k\x00"} {
			ev, err := f.s.Append(f.ctx, f.keyed("task-1", key, taskbridge.MessagePayload{Message: key}))
			require.NoError(t, err)
			require.Equal(t, int64(3+i), ev.Seq, "key %q is not %q", key, "k")
		}
	})

	t.Run("ReadReturnsKeys", func(t *testing.T) {
		f := setup(t, h)
		f.create("task-1")
		var want []taskbridge.TaskEvent
		for i, key := range []string{"start", "", "p-1", ""} {
			var p taskbridge.Payload = taskbridge.MessagePayload{Message: fmt.Sprint(i)}
			if i == 0 {
				p = taskbridge.StartedPayload{}
			}
			ev, err := f.s.Append(f.ctx, f.keyed("task-1", key, p))
			require.NoError(t, err)
			require.Equal(t, key, ev.IdempotencyKey, "Append returns the key")
			want = append(want, ev)
		}
		requireEvents(t, want, f.readAll("task-1"), "Read returns each event with its key")
	})

	t.Run("RefusedAppendRecordsNoKey", func(t *testing.T) {
		f := setup(t, h)
		f.create("task-1")
		_, err := f.s.Append(f.ctx, f.keyed("task-1", "k", taskbridge.MessagePayload{Message: "too early"}))
		requireErrorIs(t, err, taskbridge.ErrInvalidTransition)
		f.append("task-1", taskbridge.StartedPayload{})
		ev, err := f.s.Append(f.ctx, f.keyed("task-1", "k", taskbridge.MessagePayload{Message: "now"}))
		require.NoError(t, err)
		require.Equal(t, int64(2), ev.Seq, "a refused append does not use up its key")
		_, err = f.s.Append(f.ctx, f.keyed("nope", "k", taskbridge.StartedPayload{}))
		requireErrorIs(t, err, taskbridge.ErrTaskNotFound)
	})

	t.Run("ConcurrentSameKey", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		const n = 32
		var (
			got  [n]taskbridge.TaskEvent
			errs [n]error
		)
		at := f.tick()
		race(n, func(i int) {
			ev := NewEvent("task-1", taskbridge.MessagePayload{Message: fmt.Sprint(i)}, at)
			ev.IdempotencyKey = "once"
			got[i], errs[i] = f.s.Append(f.ctx, ev)
		})
		for i := range n {
			require.NoError(t, errs[i])
			require.Equal(t, int64(2), got[i].Seq, "append %d", i)
			require.Equal(t, message(t, got[0]), message(t, got[i]), "every caller gets the one appended event")
		}
		requireSeqs(t, f.readAll("task-1"), 1, 2)
	})

	t.Run("KeyOutlivesRetention", func(t *testing.T) {
		if h.Trim == nil {
			t.Skip("storetest: Harness.Trim is nil, so keys of trimmed events are not checked for this store")
		}
		f := setup(t, h)
		f.started("task-1")
		first, err := f.s.Append(f.ctx, f.keyed("task-1", "early", taskbridge.MessagePayload{Message: "2"}))
		require.NoError(t, err)
		f.messages("task-1", 5)
		h.Trim(t, f.s, "task-1", 2)
		again, err := f.s.Append(f.ctx, f.keyed("task-1", "early", taskbridge.MessagePayload{Message: "again"}))
		require.NoError(t, err)
		requireEvents(t, []taskbridge.TaskEvent{first}, []taskbridge.TaskEvent{again}, "a key is kept as long as its task")
		require.Equal(t, int64(7), f.get("task-1").LastSeq)
	})
}
