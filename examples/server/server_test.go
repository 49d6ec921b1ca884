package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
)

const (
	started   = taskbridge.EventTaskStarted
	progress  = taskbridge.EventTaskProgress
	message   = taskbridge.EventTaskMessage
	suspended = taskbridge.EventTaskSuspended
	accepted  = taskbridge.EventTaskActionAccepted
	completed = taskbridge.EventTaskCompleted
	failed    = taskbridge.EventTaskFailed
	cancelled = taskbridge.EventTaskCancelled
)

// forEachTransport runs f as a parallel subtest per transport, each with
// its own server.
func forEachTransport(t *testing.T, f func(t *testing.T, e *env, transport string)) {
	t.Helper()
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			f(t, setup(t), tr)
		})
	}
}

func TestGreet(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, e *env, tr string) {
		const steps = 3
		id := e.create(t, "alice", taskGreet, map[string]any{"name": "Ada", "steps": steps, "stepDelayMs": 1})
		evs := readUntil(t, e.follow(t, tr, "alice", id), nil)
		requireLog(t, id, evs, concat(types(started), repeat(progress, steps), types(completed))...)
		require.Equal(t, "Task started", evs[0].fields["message"])
		for i := 1; i <= steps; i++ {
			p := evs[i].fields
			require.Equal(t, 100*float64(i)/steps, p["progress"], "progress %d", i)
			require.Equal(t, fmt.Sprintf("step %d of %d", i, steps), p["stage"])
			require.NotEmpty(t, p["message"])
		}
		require.Equal(t, map[string]any{"result": map[string]any{"greeting": "Hello, Ada!"}}, evs[steps+1].fields)
	})
}

func TestGreetDefaults(t *testing.T) {
	t.Parallel()
	e := setup(t)
	// Only the delay is overridden: name "World", 3 steps.
	id := e.create(t, "alice", taskGreet, map[string]any{"stepDelayMs": 0})
	evs := readUntil(t, e.follow(t, "poll", "alice", id), nil)
	requireLog(t, id, evs, started, progress, progress, progress, completed)
	require.Equal(t, []any{100.0 / 3, 200.0 / 3, 100.0},
		[]any{evs[1].fields["progress"], evs[2].fields["progress"], evs[3].fields["progress"]})
	require.Equal(t, map[string]any{"greeting": "Hello, World!"}, evs[4].fields["result"])

	// Zero steps: no progress at all.
	id = e.create(t, "alice", taskGreet, map[string]any{"name": "Zed", "steps": 0})
	requireLog(t, id, readUntil(t, e.follow(t, "poll", "alice", id), nil), started, completed)
}

func TestApproval(t *testing.T) {
	t.Parallel()
	for _, action := range []string{actionApprove, actionReject} {
		t.Run(action, func(t *testing.T) {
			t.Parallel()
			forEachTransport(t, func(t *testing.T, e *env, tr string) {
				id := e.create(t, "alice", taskApproval, map[string]any{"ttlMs": 60000})
				r := e.follow(t, tr, "alice", id)
				evs := readUntil(t, r, isType(suspended))
				sus := requireSuspension(t, evs[len(evs)-1], 60*time.Second)

				// The snapshot shows the open suspension.
				snap := requestJSON[taskbridge.TaskSnapshot](t, e, http.MethodGet, "/api/v1/tasks/"+id, "alice", nil, http.StatusOK)
				require.Equal(t, taskbridge.StatusRunning, snap.Status)
				require.NotNil(t, snap.Suspension)
				require.Equal(t, sus, snap.Suspension.SuspendID)

				require.Equal(t, taskbridge.ActionAccepted, e.act(t, "alice", id, sus, action).Status)
				evs = append(evs, readUntil(t, r, nil)...)
				requireLog(t, id, evs, started, suspended, accepted, completed)
				require.Equal(t, action, evs[2].fields["actionType"])
				require.Equal(t, sus, evs[2].fields["suspendId"])
				require.Equal(t, map[string]any{"approved": action == actionApprove}, evs[3].fields["result"])

				// The suspension is resolved: another action is rejected.
				require.Equal(t, taskbridge.ActionRejectedAlreadyResolved, e.act(t, "alice", id, sus, actionApprove).Status)
			})
		})
	}
}

// requireSuspension checks a TASK_SUSPENDED event of an approval task with
// the given TTL and returns its suspendId.
func requireSuspension(t testing.TB, ev event, ttl time.Duration) string {
	t.Helper()
	require.Equal(t, suspended, ev.Type)
	var p taskbridge.SuspendedPayload
	require.NoError(t, json.Unmarshal(ev.Payload, &p))
	require.NotEmpty(t, p.SuspendID)
	require.Equal(t, taskbridge.KindUserActionRequired, p.Kind)
	require.Equal(t, "approval_required", p.ReasonCode)
	require.Equal(t, []string{"approve", "reject"}, p.AllowedActions)
	require.Equal(t, 1, p.SchemaVersion)
	require.NotNil(t, p.ExpiresAt)
	require.WithinDuration(t, ev.CreatedAt.Add(ttl), *p.ExpiresAt, time.Millisecond)
	require.Equal(t, map[string]any{"question": approvalQuestion}, p.Interaction)
	require.Nil(t, p.UIHints)
	// Nothing beyond the documented members is sent.
	require.ElementsMatch(t, []string{"suspendId", "kind", "reasonCode", "allowedActions", "schemaVersion", "expiresAt", "interaction"},
		keys(ev.fields))
	return p.SuspendID
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestApprovalExpiry(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, e *env, tr string) {
		id := e.create(t, "alice", taskApproval, map[string]any{"ttlMs": 30})
		evs := readUntil(t, e.follow(t, tr, "alice", id), nil)
		requireLog(t, id, evs, started, suspended, failed)
		sus := requireSuspension(t, evs[1], 30*time.Millisecond)
		require.Equal(t, "SUSPENSION_EXPIRED", evs[2].fields["code"])
		require.Equal(t, false, evs[2].fields["retryable"])
		require.NotEmpty(t, evs[2].fields["message"])

		require.Equal(t, taskbridge.ActionRejectedExpired, e.act(t, "alice", id, sus, actionApprove).Status)
	})
}

func TestFail(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, e *env, tr string) {
		id := e.create(t, "alice", taskFail, nil)
		evs := readUntil(t, e.follow(t, tr, "alice", id), nil)
		requireLog(t, id, evs, started, failed)
		require.Equal(t, map[string]any{"code": "DEMO_FAILURE", "message": demoFailureMessage, "retryable": false}, evs[1].fields)
	})
}

func TestStream(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, e *env, tr string) {
		const count = 7
		id := e.create(t, "alice", taskStream, map[string]any{"count": count, "intervalMs": 0})
		evs := readUntil(t, e.follow(t, tr, "alice", id), nil)
		requireLog(t, id, evs, concat(types(started), repeat(message, count), types(completed))...)
		for i := 1; i <= count; i++ {
			require.Equal(t, map[string]any{"message": fmt.Sprintf("message %d of %d", i, count), "level": "info"}, evs[i].fields)
		}
		require.Equal(t, map[string]any{"result": map[string]any{"count": float64(count)}}, evs[count+1].fields)
	})
}

func TestStreamDefaults(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.create(t, "alice", taskStream, nil)
	evs := readUntil(t, e.follow(t, "sse", "alice", id), nil)
	requireLog(t, id, evs, concat(types(started), repeat(message, defaultStreamCount), types(completed))...)
	require.Equal(t, "message 10 of 10", evs[10].fields["message"])
}

// TestCancel cancels every task type while it runs, over every transport.
func TestCancel(t *testing.T) {
	t.Parallel()
	cases := []struct {
		taskType string
		input    map[string]any
		waitFor  taskbridge.EventType // cancel once this event was seen
		before   []taskbridge.EventType
	}{
		{taskGreet, map[string]any{"steps": 3, "stepDelayMs": 60000}, started, types(started)},
		{taskApproval, map[string]any{"ttlMs": 60000}, suspended, types(started, suspended)},
		{taskFail, map[string]any{"delayMs": 60000}, started, types(started)},
		{taskStream, map[string]any{"count": 5, "intervalMs": 60000}, started, types(started)},
	}
	for _, c := range cases {
		t.Run(c.taskType, func(t *testing.T) {
			t.Parallel()
			forEachTransport(t, func(t *testing.T, e *env, tr string) {
				id := e.create(t, "alice", c.taskType, c.input)
				r := e.follow(t, tr, "alice", id)
				evs := readUntil(t, r, isType(c.waitFor))
				reason := "stop " + c.taskType + " over " + tr
				resp := e.cancel(t, "alice", id, map[string]any{"reason": reason})
				require.Equal(t, taskbridge.CancelRequested, resp.Status)
				evs = append(evs, readUntil(t, r, nil)...)
				requireLog(t, id, evs, append(c.before, cancelled)...)
				require.Equal(t, reason, evs[len(evs)-1].fields["reason"])

				// Cancelling again: the task is terminal.
				require.Equal(t, taskbridge.CancelAlreadyTerminal, e.cancel(t, "alice", id, nil).Status)
				snap := requestJSON[taskbridge.TaskSnapshot](t, e, http.MethodGet, "/api/v1/tasks/"+id, "alice", nil, http.StatusOK)
				require.Equal(t, taskbridge.StatusCancelled, snap.Status)
				require.True(t, snap.CancelRequested)
			})
		})
	}
}

func TestCancelDefaultReason(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.create(t, "alice", taskStream, map[string]any{"count": 5, "intervalMs": 60000})
	r := e.follow(t, "sse", "alice", id)
	readUntil(t, r, isType(started))
	e.cancel(t, "alice", id, nil)
	evs := readUntil(t, r, nil)
	require.Equal(t, "cancelled_by_user", evs[len(evs)-1].fields["reason"])
}

func TestUnknownTaskType(t *testing.T) {
	t.Parallel()
	e := setup(t)
	resp, b := e.request(t, http.MethodPost, "/api/v1/tasks", "alice",
		map[string]any{"clientRequestId": "x-1", "taskType": "resize", "input": map[string]any{}})
	env := requireError(t, resp, b, http.StatusBadRequest, taskbridge.CodeInvalidRequest)
	require.Contains(t, env.Message, "resize")
	// No task was created.
	list := requestJSON[taskbridge.TaskList](t, e, http.MethodGet, "/api/v1/tasks", "alice", nil, http.StatusOK)
	require.Empty(t, list.Tasks)
}

// TestInvalidInput: inputs of the wrong type or out of range are 422 with
// the field named, never a task that fails later and never a 5xx.
func TestInvalidInput(t *testing.T) {
	t.Parallel()
	e := setup(t)
	cases := []struct {
		taskType string
		input    any
		fields   []string
	}{
		{taskGreet, map[string]any{"steps": "x"}, []string{"input.steps"}},
		{taskGreet, map[string]any{"steps": -1}, []string{"input.steps"}},
		{taskGreet, map[string]any{"steps": 2.5}, []string{"input.steps"}},
		{taskGreet, map[string]any{"steps": 101}, []string{"input.steps"}},
		{taskGreet, map[string]any{"name": 5, "stepDelayMs": -1}, []string{"input.name", "input.stepDelayMs"}},
		{taskGreet, map[string]any{"name": ""}, []string{"input.name"}},
		{taskGreet, map[string]any{"name": strings.Repeat("n", 201)}, []string{"input.name"}},
		{taskGreet, map[string]any{"stepDelayMs": 1e12}, []string{"input.stepDelayMs"}},
		{taskApproval, map[string]any{"ttlMs": 0}, []string{"input.ttlMs"}},
		{taskApproval, map[string]any{"ttlMs": "60s"}, []string{"input.ttlMs"}},
		{taskFail, map[string]any{"delayMs": true}, []string{"input.delayMs"}},
		{taskStream, map[string]any{"count": -1, "intervalMs": "x"}, []string{"input.count", "input.intervalMs"}},
		{taskStream, map[string]any{"count": 1001}, []string{"input.count"}},
		// Every task ends within 10 minutes.
		{taskApproval, map[string]any{"ttlMs": 604800000}, []string{"input.ttlMs"}},
		{taskApproval, map[string]any{"ttlMs": 600001}, []string{"input.ttlMs"}},
		{taskGreet, map[string]any{"steps": 100, "stepDelayMs": 6001}, []string{"input.stepDelayMs"}},
		{taskStream, map[string]any{"count": 1000, "intervalMs": 601}, []string{"input.intervalMs"}},
		{taskStream, map[string]any{"intervalMs": 60001}, []string{"input.intervalMs"}},
		{taskFail, map[string]any{"delayMs": 60001}, []string{"input.delayMs"}},
		{taskStream, map[string]any{"count": []int{1}}, []string{"input.count"}},
	}
	for i, c := range cases {
		resp, b := e.request(t, http.MethodPost, "/api/v1/tasks", "alice",
			map[string]any{"clientRequestId": fmt.Sprintf("bad-%d", i), "taskType": c.taskType, "input": c.input})
		requireError(t, resp, b, http.StatusUnprocessableEntity, taskbridge.CodeValidation)
		var body struct {
			Details struct {
				Errors []taskbridge.FieldError `json:"errors"`
			} `json:"details"`
		}
		require.NoError(t, json.Unmarshal(b, &body))
		var got []string
		for _, f := range body.Details.Errors {
			got = append(got, f.Field)
			require.NotEmpty(t, f.Message)
		}
		require.Equal(t, c.fields, got, "case %d: %s", i, b)
	}
	// Unknown members and nulls are fine.
	id := e.create(t, "alice", taskStream, map[string]any{"count": 1, "intervalMs": nil, "colour": "blue"})
	requireLog(t, id, readUntil(t, e.follow(t, "poll", "alice", id), nil), started, message, completed)
	// A non-object input is refused by the API itself.
	resp, b := e.request(t, http.MethodPost, "/api/v1/tasks", "alice",
		map[string]any{"clientRequestId": "bad-array", "taskType": taskGreet, "input": []int{1}})
	require.Contains(t, []int{http.StatusBadRequest, http.StatusUnprocessableEntity}, resp.StatusCode, "body: %s", b)
}

func TestAuth(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.create(t, "alice", taskApproval, nil)

	t.Run("api needs a bearer token", func(t *testing.T) {
		for _, c := range []struct{ method, path string }{
			{http.MethodPost, "/api/v1/tasks"},
			{http.MethodGet, "/api/v1/tasks"},
			{http.MethodGet, "/api/v1/tasks/" + id},
			{http.MethodGet, "/api/v1/tasks/" + id + "/events"},
			// access_token is for the streaming routes only.
			{http.MethodGet, "/api/v1/tasks/" + id + "/events?access_token=alice"},
			{http.MethodPost, "/api/v1/tasks/" + id + "/cancel"},
		} {
			var body any
			if c.method == http.MethodPost {
				body = map[string]any{"clientRequestId": "c", "taskType": taskGreet}
			}
			resp, b := e.request(t, c.method, c.path, "", body)
			requireError(t, resp, b, http.StatusUnauthorized, taskbridge.CodeAuthentication)
			require.Equal(t, "Bearer", resp.Header.Get("WWW-Authenticate"))
		}
	})

	t.Run("sse", func(t *testing.T) {
		for _, c := range []struct {
			query string
			hdr   http.Header
		}{
			{"", nil},
			{"access_token=", nil},
			{"", http.Header{"Authorization": {"Basic YWxpY2U6eA=="}}},
			{"access_token=" + strings.Repeat("a", maxSubjectLen+1), nil},
		} {
			resp, cancel := e.getSSE(t, id, c.query, c.hdr)
			b, err := io.ReadAll(resp.Body)
			cancel()
			require.NoError(t, err)
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "query %q: %s", c.query, b)
			protocoltest.ValidateErrorResponse(t, b)
		}
		// The browser's way: the subject in access_token.
		s := e.openSSE(t, "alice", id, "access_token=alice", nil)
		require.Equal(t, started, s.next(t).Type)
		s.close()
		// Another user cannot see alice's task.
		resp, cancel := e.getSSE(t, id, "access_token=mallory", nil)
		b, err := io.ReadAll(resp.Body)
		cancel()
		require.NoError(t, err)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, "body: %s", b)
	})

	t.Run("ws", func(t *testing.T) {
		c, resp, err := e.tryDialWS("", "")
		require.Error(t, err)
		require.NotNil(t, resp)
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if c != nil {
			_ = c.CloseNow()
		}
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		protocoltest.ValidateErrorResponse(t, b)

		conn := e.dialWS(t, "", "access_token=alice")
		defer conn.CloseNow()
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		require.NoError(t, conn.Write(ctx, websocket.MessageText, []byte(`{"action":"subscribe","taskId":"`+id+`"}`)))
		_, msg, err := conn.Read(ctx)
		require.NoError(t, err)
		protocoltest.ValidateSubscriptionConfirmed(t, msg)
	})

	t.Run("other users get 404", func(t *testing.T) {
		resp, b := e.request(t, http.MethodGet, "/api/v1/tasks/"+id+"/events", "mallory", nil)
		requireError(t, resp, b, http.StatusNotFound, taskbridge.CodeTaskNotFound)
		resp, b = e.request(t, http.MethodPost, "/api/v1/tasks/"+id+"/cancel", "mallory", nil)
		requireError(t, resp, b, http.StatusNotFound, taskbridge.CodeTaskNotFound)
	})
}

func TestCreateIsIdempotent(t *testing.T) {
	t.Parallel()
	e := setup(t)
	body := map[string]any{"clientRequestId": "same", "taskType": taskStream, "input": map[string]any{"count": 1}}
	first := requestJSON[taskbridge.CreateTaskResponse](t, e, http.MethodPost, "/api/v1/tasks", "alice", body, http.StatusCreated)
	again := requestJSON[taskbridge.CreateTaskResponse](t, e, http.MethodPost, "/api/v1/tasks", "alice", body, http.StatusOK)
	require.Equal(t, first.TaskID, again.TaskID)
	require.True(t, again.Deduplicated)
	body["input"] = map[string]any{"count": 2}
	resp, b := e.request(t, http.MethodPost, "/api/v1/tasks", "alice", body)
	requireError(t, resp, b, http.StatusConflict, taskbridge.CodeIdempotencyConflict)
}

// suspendedApproval creates an approval task and follows it over SSE and
// WebSocket until it is suspended; it returns the SSE reader's events.
func suspendedApproval(t *testing.T, e *env) (string, *sseReader, *wsReader, []event) {
	t.Helper()
	id := e.create(t, "alice", taskApproval, nil)
	s := e.openSSE(t, "alice", id, "", http.Header{"Authorization": {"Bearer alice"}})
	t.Cleanup(s.close)
	w := e.openWS(t, "alice", id, nil)
	t.Cleanup(w.close)
	evs := readUntil(t, s, isType(suspended))
	readUntil(t, w, isType(suspended))
	return id, s, w, evs
}

// TestHeartbeats: -heartbeat-interval reaches both streaming transports.
func TestHeartbeats(t *testing.T) {
	t.Parallel()
	e := setup(t, config{HeartbeatInterval: 20 * time.Millisecond})
	id, s, w, evs := suspendedApproval(t, e)
	sus := requireSuspension(t, evs[1], time.Minute)

	// Both streams are idle now; heartbeats come until the action.
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for w.heartbeats < 2 {
		_, msg, err := w.c.Read(ctx)
		require.NoError(t, err)
		protocoltest.ValidateHeartbeat(t, msg)
		w.heartbeats++
	}
	e.act(t, "alice", id, sus, actionApprove)
	evs = append(evs, readUntil(t, s, nil)...)
	requireLog(t, id, evs, started, suspended, accepted, completed)
	require.Positive(t, s.heartbeats, "the SSE stream sent no heartbeat while idle")
	s.end(t)
	readUntil(t, w, nil)
	require.Equal(t, websocket.StatusNormalClosure, w.closeStatus(t))
}

// TestResume: a client that reconnects with its cursor gets exactly the
// events after it, on every transport.
func TestResume(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.create(t, "alice", taskStream, map[string]any{"count": 6})
	all := readUntil(t, e.follow(t, "poll", "alice", id), nil)
	require.Len(t, all, 8)

	after := "3"
	s := e.openSSE(t, "alice", id, "", http.Header{"Authorization": {"Bearer alice"}, "Last-Event-Id": {after}})
	got := readUntil(t, s, nil)
	s.close()
	require.Equal(t, all[3:], got)

	s = e.openSSE(t, "alice", id, "lastEventId="+after+"&access_token=alice", nil)
	require.Equal(t, all[3:], readUntil(t, s, nil))
	s.close()

	w := e.openWS(t, "alice", id, &after)
	require.Equal(t, all[3:], readUntil(t, w, nil))
	w.close()
}

func TestPageAndProbes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	get := func(path string) (*http.Response, string) {
		resp, err := e.ts.Client().Get(e.ts.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}
	resp, body := get("/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/html")
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'")
	require.Contains(t, body, "<title>TaskBridge demo</title>")
	require.Contains(t, body, `<script src="/app.js">`)

	resp, body = get("/app.js")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "javascript")
	require.Contains(t, body, "EventSource")

	resp, _ = get("/health")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, body = get("/ready")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)

	resp, body = get("/nope")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	protocoltest.ValidateErrorResponse(t, []byte(body))

	// The OpenAPI document of every route the demo serves.
	resp, body = get("/openapi.json")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	protocoltest.ValidateHTTP(t, resp, []byte(body))
	require.Equal(t, string(e.app.api.OpenAPIDocument()), body)
	_, err := protocoltest.LoadDocument([]byte(body))
	require.NoError(t, err)
	ops, err := protocoltest.Operations([]byte(body))
	require.NoError(t, err)
	require.Contains(t, ops, "GET /api/v1/tasks/{taskId}/events/stream")
	require.Contains(t, ops, "GET /api/v1/tasks/ws")
}

// TestShutdown: a shutdown ends open streams cleanly (the SSE response
// ends, the WebSocket closes with 1001), stops running tasks after the
// grace period and makes the readiness probe fail.
func TestShutdown(t *testing.T) {
	t.Parallel()
	e := setup(t, config{TaskGrace: 10 * time.Millisecond})
	_, s, w, _ := suspendedApproval(t, e)

	// The clients read on, as live clients do: the WebSocket close
	// handshake needs the client's reply.
	type closed struct {
		code websocket.StatusCode
		err  error
	}
	wsClosed := make(chan closed, 1)
	go func() {
		code, err := w.readClose()
		wsClosed <- closed{code, err}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	start := time.Now()
	require.NoError(t, e.app.shutdown(ctx))
	require.Less(t, time.Since(start), 2*time.Second, "shutdown should not wait for timeouts")
	require.NoError(t, e.app.shutdown(ctx), "a second shutdown is a no-op")

	s.end(t)
	c := <-wsClosed
	require.NoError(t, c.err)
	require.Equal(t, websocket.StatusGoingAway, c.code)

	resp, b := e.request(t, http.MethodGet, "/ready", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "body: %s", b)
	resp, b = e.request(t, http.MethodPost, "/api/v1/tasks", "alice",
		map[string]any{"clientRequestId": "late", "taskType": taskGreet})
	requireError(t, resp, b, http.StatusServiceUnavailable, taskbridge.CodeUnavailable)
}

func TestNewServerConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []config{
		{HeartbeatInterval: -time.Second},
		{HeartbeatInterval: time.Minute}, // the SDK would reconnect every minute
		{MaintenanceInterval: -time.Second},
		{TaskRetention: -time.Second},
	} {
		_, err := newServer(cfg)
		require.Error(t, err, "%+v", cfg)
	}
}

// TestRetention: the maintenance loop deletes finished tasks once they are
// older than the retention, and keeps running ones.
func TestRetention(t *testing.T) {
	t.Parallel()
	var skew atomic.Int64 // how far the service's clock is ahead of real time
	passes := &passLog{Handler: testLogger(t).Handler(), passes: make(chan struct{}, 1)}
	e := setup(t, config{
		Logger:              slog.New(passes),
		MaintenanceInterval: 5 * time.Millisecond,
		TaskRetention:       time.Hour,
		Now:                 func() time.Time { return time.Now().Add(time.Duration(skew.Load())) },
	})
	done := e.create(t, "alice", taskFail, nil)
	readUntil(t, e.follow(t, "poll", "alice", done), nil)
	running := e.create(t, "alice", taskStream, map[string]any{"count": 1, "intervalMs": 60000})
	readUntil(t, e.follow(t, "poll", "alice", running), isType(started))

	status := func(id string) int {
		resp, b := e.request(t, http.MethodGet, "/api/v1/tasks/"+id, "alice", nil)
		require.Contains(t, []int{http.StatusOK, http.StatusNotFound}, resp.StatusCode, "body: %s", b)
		return resp.StatusCode
	}
	passes.await(t)
	require.Equal(t, http.StatusOK, status(done), "kept while younger than the retention")

	skew.Store(int64(time.Hour + time.Minute))
	passes.await(t)
	require.Equal(t, http.StatusNotFound, status(done), "deleted once older than the retention")
	require.Equal(t, http.StatusOK, status(running), "running tasks are kept")
}

// passLog passes records on to Handler, but reports each retention pass of
// the maintenance loop on passes instead.
type passLog struct {
	slog.Handler
	passes chan struct{}
}

const retentionPassMsg = "taskbridge: retention pass"

func (h *passLog) Enabled(ctx context.Context, l slog.Level) bool {
	return l == slog.LevelDebug || h.Handler.Enabled(ctx, l)
}

func (h *passLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == retentionPassMsg {
		select {
		case h.passes <- struct{}{}:
		default:
		}
		return nil
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *passLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &passLog{Handler: h.Handler.WithAttrs(as), passes: h.passes}
}

func (h *passLog) WithGroup(name string) slog.Handler {
	return &passLog{Handler: h.Handler.WithGroup(name), passes: h.passes}
}

// await waits until a retention pass has run entirely after the call: the
// second pass to end from now (the first may have begun before).
func (h *passLog) await(t *testing.T) {
	t.Helper()
	select {
	case <-h.passes: // drop a pass that ended before the call
	default:
	}
	for range 2 {
		select {
		case <-h.passes:
		case <-time.After(testTimeout):
			t.Fatal("no maintenance pass ran")
		}
	}
}
