package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/pgstore/pgtest"
)

// createOn creates a task on the replica at url and returns its id.
func createOn(t *testing.T, url, body string) string {
	t.Helper()
	status, b := httpDo(t, http.MethodPost, url+"/api/v1/tasks", body)
	require.Equal(t, http.StatusCreated, status, "body: %s", b)
	var created taskbridge.CreateTaskResponse
	require.NoError(t, json.Unmarshal(b, &created))
	return created.TaskID
}

// pollOn long-polls the task on the replica at url from the start until
// stop accepts an event, and returns the events up to it.
func pollOn(t *testing.T, url, taskID string, stop func(taskbridge.TaskEvent) bool) []taskbridge.TaskEvent {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	var events []taskbridge.TaskEvent
	query := ""
	for time.Now().Before(deadline) {
		status, b := httpDo(t, http.MethodGet, url+"/api/v1/tasks/"+taskID+"/events?waitTimeoutMs=5000"+query, "")
		require.Equal(t, http.StatusOK, status, "body: %s", b)
		var poll taskbridge.PollResponse
		require.NoError(t, json.Unmarshal(b, &poll))
		for _, ev := range poll.Events {
			events = append(events, ev)
			if stop(ev) {
				return events
			}
		}
		if poll.NextAfterEventID != nil {
			query = "&afterEventId=" + *poll.NextAfterEventID
		}
	}
	t.Fatalf("task %s: no awaited event within %v after %d events", taskID, testTimeout, len(events))
	return nil
}

// sseOn streams the task from the replica at url until the stream ends.
func sseOn(t *testing.T, url, taskID string) []taskbridge.TaskEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/v1/tasks/"+taskID+"/events/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer alice")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	br := bufio.NewReader(resp.Body)
	var events []taskbridge.TaskEvent
	for {
		f, err := streamtest.ReadSSE(br)
		if errors.Is(err, io.EOF) {
			return events
		}
		require.NoError(t, err)
		if !f.HasID {
			continue // retry field, heartbeats
		}
		var ev taskbridge.TaskEvent
		require.NoError(t, json.Unmarshal([]byte(f.Data), &ev))
		require.Equal(t, f.ID, ev.EventID)
		events = append(events, ev)
	}
}

func isEventType(et taskbridge.EventType) func(taskbridge.TaskEvent) bool {
	return func(ev taskbridge.TaskEvent) bool { return ev.Type == et }
}

func requireInOrder(t *testing.T, events []taskbridge.TaskEvent) {
	t.Helper()
	for i, ev := range events {
		require.Equal(t, fmt.Sprint(i+1), ev.EventID, "every event once, in order")
	}
}

// TestTwoReplicasPostgres runs two server processes on one PostgreSQL
// schema, as two replicas behind a load balancer: a task created on one is
// streamed, answered and cancelled through the other, and when the replica
// running a task dies the other one ends it.
func TestTwoReplicasPostgres(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t, "tbserver", 2)
	args := []string{"-addr", "127.0.0.1:0", "-store", "postgres", "-postgres-url", db.URL,
		"-postgres-schema", db.Schema, "-lease-ttl", "2s", "-task-grace", "10ms"}
	a := startCommand(t, args...)
	b := startCommand(t, args...)

	t.Run("StreamFromTheOtherReplica", func(t *testing.T) {
		id := createOn(t, a.url, `{"clientRequestId":"r-1","taskType":"stream","input":{"count":20,"intervalMs":10}}`)
		events := sseOn(t, b.url, id)
		requireInOrder(t, events)
		require.Len(t, events, 22)
		require.Equal(t, taskbridge.EventTaskCompleted, events[21].Type)
	})

	t.Run("ActionOnTheOtherReplica", func(t *testing.T) {
		id := createOn(t, a.url, `{"clientRequestId":"r-2","taskType":"approval"}`)
		events := pollOn(t, b.url, id, isEventType(taskbridge.EventTaskSuspended))
		p, err := taskbridge.DecodePayload(events[len(events)-1])
		require.NoError(t, err)
		suspendID := p.(taskbridge.SuspendedPayload).SuspendID
		status, body := httpDo(t, http.MethodPost, b.url+"/api/v1/tasks/"+id+"/actions",
			`{"clientActionId":"act-1","suspendId":"`+suspendID+`","actionType":"approve"}`)
		require.Equal(t, http.StatusAccepted, status, "body: %s", body)
		events = pollOn(t, a.url, id, taskbridge.TaskEvent.Terminal)
		requireInOrder(t, events)
		last := events[len(events)-1]
		require.Equal(t, taskbridge.EventTaskCompleted, last.Type, "the replica running the task took the action")
		require.JSONEq(t, `{"result":{"approved":true}}`, string(last.Payload))
	})

	t.Run("CancelOnTheOtherReplica", func(t *testing.T) {
		id := createOn(t, a.url, `{"clientRequestId":"r-3","taskType":"stream","input":{"count":10000,"intervalMs":20}}`)
		pollOn(t, b.url, id, isEventType(taskbridge.EventTaskMessage))
		status, body := httpDo(t, http.MethodPost, b.url+"/api/v1/tasks/"+id+"/cancel", `{"reason":"from b"}`)
		require.Equal(t, http.StatusAccepted, status, "body: %s", body)
		events := pollOn(t, b.url, id, taskbridge.TaskEvent.Terminal)
		requireInOrder(t, events)
		last := events[len(events)-1]
		require.Equal(t, taskbridge.EventTaskCancelled, last.Type)
		require.Contains(t, string(last.Payload), `"reason":"from b"`)
	})

	t.Run("TakeOverFromADeadReplica", func(t *testing.T) {
		id := createOn(t, a.url, `{"clientRequestId":"r-4","taskType":"stream","input":{"count":10000,"intervalMs":20}}`)
		pollOn(t, b.url, id, isEventType(taskbridge.EventTaskMessage))
		require.NoError(t, a.cmd.Process.Kill())
		// b's recovery takes the task over once a's lease (2s) expired.
		events := pollOn(t, b.url, id, taskbridge.TaskEvent.Terminal)
		requireInOrder(t, events)
		last := events[len(events)-1]
		require.Equal(t, taskbridge.EventTaskFailed, last.Type)
		require.Contains(t, string(last.Payload), `"code":"EXECUTOR_LOST"`)
	})
}
