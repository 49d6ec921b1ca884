package storetest

import (
	"testing"

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
}
