package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
)

// scribble overwrites b in place, as a caller reusing a buffer would.
func scribble(b []byte) {
	for i := range b {
		b[i] = 'X'
	}
}

// testIsolation checks that callers cannot change stored data through
// values they passed in or got back.
func testIsolation(t *testing.T, h Harness) {
	t.Run("Tasks", func(t *testing.T) {
		f := setup(t, h)
		want := NewTask("task-1", "alice", "req-1", BaseTime)
		want.Attachments = []taskbridge.Attachment{{Field: "f", Filename: "a.txt", Size: 1}}
		in := NewTask("task-1", "alice", "req-1", BaseTime)
		in.Input = append(json.RawMessage{}, in.Input...)
		in.Attachments = []taskbridge.Attachment{{Field: "f", Filename: "a.txt", Size: 1}}
		got := f.createTask(in)

		scribble(in.Input)
		scribble(in.Metadata)
		in.Attachments[0].Filename = "changed-in"
		scribble(got.Input)
		got.Attachments[0].Filename = "changed-out"
		requireTask(t, want, f.get("task-1"))

		fetched := f.get("task-1")
		scribble(fetched.Input)
		fetched.Attachments[0].Filename = "changed-get"
		list, err := f.s.ListTasks(f.ctx, taskbridge.TaskQuery{Limit: 1})
		require.NoError(t, err)
		scribble(list[0].Metadata)
		list[0].Attachments[0].Filename = "changed-list"
		requireTask(t, want, f.get("task-1"))
	})

	t.Run("Events", func(t *testing.T) {
		f := setup(t, h)
		f.create("task-1")
		in := NewEvent("task-1", taskbridge.StartedPayload{Message: "hello"}, BaseTime)
		want := in
		want.Payload = append(json.RawMessage{}, in.Payload...)
		want.Seq, want.EventID = 1, "1"
		got, err := f.s.Append(f.ctx, in)
		require.NoError(t, err)
		scribble(in.Payload)
		scribble(got.Payload)
		evs, err := f.s.Read(f.ctx, "task-1", 0, 10)
		require.NoError(t, err)
		requireEvents(t, []taskbridge.TaskEvent{want}, evs)

		scribble(evs[0].Payload)
		evs, err = f.s.Read(f.ctx, "task-1", 0, 10)
		require.NoError(t, err)
		requireEvents(t, []taskbridge.TaskEvent{want}, evs)
	})

	t.Run("Suspensions", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		exp := BaseTime.Add(time.Hour)
		at := f.tick()
		in, ev := NewSuspension("task-1", "s-1", &exp, at)
		wantExp := exp
		want, _ := NewSuspension("task-1", "s-1", &wantExp, at)
		want.EventSeq = 2
		got, _, err := f.s.OpenSuspension(f.ctx, in, ev)
		require.NoError(t, err)

		mutate := func(s *taskbridge.Suspension) {
			s.AllowedActions[0] = "changed"
			*s.ExpiresAt = BaseTime
			s.UIHints["title"] = "changed"
			s.UIHints["buttons"].([]any)[0] = "changed"
			s.Interaction["form"].(map[string]any)["amount"] = 0.0
		}
		mutate(&in)
		mutate(&got)
		requireSuspension(t, want, f.suspension("task-1", "s-1"))

		fetched := f.suspension("task-1", "s-1")
		mutate(&fetched)
		list, err := f.s.ListSuspensions(f.ctx, "task-1")
		require.NoError(t, err)
		mutate(&list[0])
		requireSuspension(t, want, f.suspension("task-1", "s-1"))
	})

	t.Run("Receipts", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		f.open("task-1", "s-1", nil)
		now := f.tick()
		a := NewAttempt("task-1", "s-1", "a-1", "fp", now)
		want := NewAttempt("task-1", "s-1", "a-1", "fp", now).Receipt
		want.EventSeq = 3
		res, err := f.s.AcceptAction(f.ctx, a)
		require.NoError(t, err)
		scribble(a.Receipt.Payload)
		scribble(a.Receipt.Metadata)
		scribble(res.Receipt.Payload)
		got, err := f.s.GetReceipt(f.ctx, "task-1", "a-1")
		require.NoError(t, err)
		requireReceipt(t, want, got)

		scribble(got.Payload)
		got, err = f.s.GetReceipt(f.ctx, "task-1", "a-1")
		require.NoError(t, err)
		requireReceipt(t, want, got)
	})
}
