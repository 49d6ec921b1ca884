package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
)

// TestInputBounds: the largest inputs the demo accepts. (Beyond them:
// TestInvalidInput.)
func TestInputBounds(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for i, c := range []struct {
		taskType string
		input    map[string]any
	}{
		{taskGreet, map[string]any{"steps": 100, "stepDelayMs": 6000}},
		{taskGreet, map[string]any{"steps": 10, "stepDelayMs": 60000}},
		{taskApproval, map[string]any{"ttlMs": 600000}},
		{taskFail, map[string]any{"delayMs": 60000}},
		{taskStream, map[string]any{"count": 1000, "intervalMs": 600}},
		{taskStream, map[string]any{"count": 10, "intervalMs": 60000}},
	} {
		resp, b := e.request(t, http.MethodPost, "/api/v1/tasks", fmt.Sprint("user-", i),
			map[string]any{"clientRequestId": "bound", "taskType": c.taskType, "input": c.input})
		require.Equal(t, http.StatusCreated, resp.StatusCode, "case %d: %s", i, b)
	}
}

// TestTooManyTasks: a user who has as many tasks running and waiting as
// the runner allows one owner gets 429 TOO_MANY_TASKS with Retry-After and
// the error envelope, and no task is created; other users' tasks still
// start at once; the refused request succeeds once one of the user's tasks
// has ended.
func TestTooManyTasks(t *testing.T) {
	t.Parallel()
	// The demo's live-task quota (20 per user) would refuse first; this
	// test is about the runner's own limits.
	e := setup(t, config{MaxLiveTasksPerOwner: -1})
	long := map[string]any{"count": 5, "intervalMs": 60000}
	create := func(user, crid string) (*http.Response, []byte) {
		return e.request(t, http.MethodPost, "/api/v1/tasks", user,
			map[string]any{"clientRequestId": crid, "taskType": taskStream, "input": long})
	}
	var ids []string
	for i := range 80 { // 16 at work and 64 waiting: the runner's defaults
		resp, b := create("alice", fmt.Sprint("many-", i))
		require.Equal(t, http.StatusCreated, resp.StatusCode, "create %d: %s", i, b)
		var created taskbridge.CreateTaskResponse
		require.NoError(t, json.Unmarshal(b, &created))
		ids = append(ids, created.TaskID)
	}
	resp, b := create("alice", "one-too-many")
	env := requireError(t, resp, b, http.StatusTooManyRequests, taskbridge.CodeTooManyTasks)
	require.Equal(t, "Too many tasks: 80 of your tasks are running or waiting to run (at most 80); retry once one has ended", env.Message)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	list := requestJSON[taskbridge.TaskList](t, e, http.MethodGet, "/api/v1/tasks?limit=100", "alice", nil, http.StatusOK)
	require.Len(t, list.Tasks, 80, "the refused create left no task")

	// Bob is not held up by alice's backlog.
	bob := e.create(t, "bob", taskStream, long)
	readUntil(t, e.follow(t, "poll", "bob", bob), isType(started))

	// A repeat of one of alice's creates is still answered.
	resp, b = create("alice", "many-0")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)

	// Once one of alice's tasks has ended (the runner lets go of it just
	// after its terminal event), the refused request succeeds.
	e.cancel(t, "alice", ids[0], nil)
	readUntil(t, e.follow(t, "poll", "alice", ids[0]), isType(cancelled))
	require.Eventually(t, func() bool {
		s := e.app.runner.OwnerStats("alice")
		return s.Running+s.Queued < 80
	}, testTimeout, time.Millisecond)
	resp, b = create("alice", "one-too-many")
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%s", b)
}
