package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
)

// testExtensions checks the optional store interfaces a store implements;
// the subtests of the others are skipped.
func testExtensions(t *testing.T, h Harness) {
	t.Run("GetTaskHead", func(t *testing.T) {
		f := setup(t, h)
		g, ok := f.s.(taskbridge.TaskHeadGetter)
		if !ok {
			t.Skip("the store does not implement the optional taskbridge.TaskHeadGetter")
		}
		in := NewTask("task-1", "alice", "req-1", BaseTime)
		in.Attachments = []taskbridge.Attachment{{Field: "file", Filename: "a.txt", ContentType: "text/plain", Size: 3, SHA256: "ab12", Ref: "uploads/a"}}
		f.createTask(in)
		f.append("task-1", taskbridge.StartedPayload{})
		_, _, err := f.s.RequestCancel(f.ctx, "task-1", "why", f.tick())
		require.NoError(t, err)

		head, err := g.GetTaskHead(f.ctx, "task-1")
		require.NoError(t, err)
		want := f.get("task-1")
		want.Input, want.Metadata, want.Attachments = nil, nil, nil
		requireTask(t, want, head, "the head is the task without its payload")
		require.Nil(t, head.Input)
		require.Nil(t, head.Metadata)
		require.Nil(t, head.Attachments)

		_, err = g.GetTaskHead(f.ctx, "nope")
		requireErrorIs(t, err, taskbridge.ErrTaskNotFound)
	})

	t.Run("PruneTerminalTasks", func(t *testing.T) {
		f := setup(t, h)
		p, ok := f.s.(taskbridge.TerminalTaskPruner)
		if !ok {
			t.Skip("the store does not implement the optional taskbridge.TerminalTaskPruner")
		}
		cutoff := BaseTime.Add(time.Hour)
		withFiles := func(id string, refs ...string) taskbridge.Task {
			in := NewTask(id, "alice", "req-"+id, f.tick())
			for _, ref := range refs {
				in.Attachments = append(in.Attachments, taskbridge.Attachment{Field: "attachments", Filename: ref, Size: 1, SHA256: "00", Ref: ref})
			}
			f.createTask(in)
			f.append(id, taskbridge.StartedPayload{})
			return in
		}
		end := func(id string, at time.Time) {
			_, err := f.s.Append(f.ctx, NewEvent(id, taskbridge.CompletedPayload{Result: id}, at))
			require.NoError(t, err)
		}
		want := map[string]taskbridge.Task{}
		for _, in := range []taskbridge.Task{withFiles("first", "up/1", "up/2"), withFiles("second"), withFiles("third", "up/3")} {
			want[in.ID] = in
		}
		withFiles("late", "up/4")
		withFiles("running", "up/5")
		end("second", cutoff.Add(-time.Minute))
		end("first", cutoff.Add(-2*time.Minute))
		end("third", cutoff.Add(-time.Second))
		end("late", cutoff.Add(time.Second))

		got, err := p.PruneTerminalTasks(f.ctx, cutoff, 2)
		require.NoError(t, err)
		require.Len(t, got, 2, "up to the limit")
		more, err := p.PruneTerminalTasks(f.ctx, cutoff, 2)
		require.NoError(t, err)
		got = append(got, more...)
		require.ElementsMatch(t, []string{"first", "second", "third"}, ids(got), "every task that ended before the cutoff, once")
		for _, task := range got {
			require.Equal(t, taskbridge.StatusCompleted, task.Status)
			require.Equal(t, normTask(want[task.ID]).Attachments, normTask(task).Attachments, "%s comes with its attachments", task.ID)
			_, err = f.s.GetTask(f.ctx, task.ID)
			requireErrorIs(t, err, taskbridge.ErrTaskNotFound, "a pruned task is deleted")
		}
		got, err = p.PruneTerminalTasks(f.ctx, cutoff, 2)
		require.NoError(t, err)
		require.Empty(t, got)
		list, err := f.s.ListTasks(f.ctx, taskbridge.TaskQuery{Limit: 10})
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"late", "running"}, ids(list))
	})
}
