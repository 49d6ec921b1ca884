package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
)

func TestCancelBodies(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for i, tc := range []struct {
		body        io.Reader
		contentType string
	}{
		{nil, ""},
		{strings.NewReader(""), "application/json"},
		{strings.NewReader("  "), "text/plain"},
		{strings.NewReader("null"), "application/json"},
		{strings.NewReader("{}"), "application/json"},
		{strings.NewReader(`{"reason":null}`), "application/json; charset=utf-8"}, // the SDK's CancelTaskBody()
		{strings.NewReader(`{"reason":"user pressed stop","other":1}`), ""},
	} {
		id := e.createTask("req-" + string(rune('a'+i)))
		resp := e.alice.beyondDocument().do(http.MethodPost, "/api/v1/tasks/"+id+"/cancel", tc.body, tc.contentType)
		require.Equal(t, http.StatusAccepted, resp.Status, "case %d: %s", i, resp.Body)
		var cr taskbridge.CancelResponse
		resp.decode(&cr)
		require.Equal(t, taskbridge.CancelResponse{TaskID: id, Status: taskbridge.CancelRequested}, cr)
	}
	require.Len(t, e.exec.cancels(), 7)
}

func TestCancelLifecycle(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.createTask("req-1")
	resp := e.alice.postRaw("/api/v1/tasks/"+id+"/cancel", `{"reason":"stop"}`)
	require.Equal(t, http.StatusAccepted, resp.Status)
	// Asking again is still CANCELLATION_REQUESTED; the executor hears once.
	resp = e.alice.postRaw("/api/v1/tasks/"+id+"/cancel", `{}`)
	require.Equal(t, http.StatusAccepted, resp.Status)
	require.Contains(t, string(resp.Body), `"CANCELLATION_REQUESTED"`)
	require.Equal(t, []string{id}, e.exec.cancels())

	var snap taskbridge.TaskSnapshot
	e.alice.get("/api/v1/tasks/" + id).decode(&snap)
	require.True(t, snap.CancelRequested)

	e.emit(id, taskbridge.CancelledPayload{Reason: "stop"})
	resp = e.alice.postRaw("/api/v1/tasks/"+id+"/cancel", ``)
	require.Equal(t, http.StatusAccepted, resp.Status)
	var cr taskbridge.CancelResponse
	resp.decode(&cr)
	require.Equal(t, taskbridge.CancelAlreadyTerminal, cr.Status)
	require.Len(t, e.exec.cancels(), 1)
}

func TestCancelInvalid(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.createTask("req-1")
	for _, body := range []string{`{`, `[]`, `"stop"`, `{} x`} {
		e.alice.postRaw("/api/v1/tasks/"+id+"/cancel", body).errorEnvelope(http.StatusBadRequest, taskbridge.CodeInvalidRequest)
	}
	// A body declared as something other than JSON (what a cross-site form
	// can send without a preflight) is refused.
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
		e.alice.do(http.MethodPost, "/api/v1/tasks/"+id+"/cancel", strings.NewReader(`{"reason":"csrf"}`), ct).
			errorEnvelope(http.StatusBadRequest, taskbridge.CodeInvalidRequest)
	}
	require.Equal(t, []string{"reason"}, e.alice.postRaw("/api/v1/tasks/"+id+"/cancel", `{"reason":5}`).fieldErrors())
	require.Equal(t, []string{"reason"}, e.alice.postRaw("/api/v1/tasks/"+id+"/cancel",
		`{"reason":"`+strings.Repeat("r", 2000)+`"}`).fieldErrors())
	require.Empty(t, e.exec.cancels())
}

// suspended creates a running task with an open suspension "s1" allowing
// approve and reject.
func (e *env) suspended(clientRequestID string, opts taskbridge.SuspendOpts) string {
	e.t.Helper()
	id := e.createTask(clientRequestID)
	e.emit(id, taskbridge.StartedPayload{})
	if opts.SuspendID == "" {
		opts.SuspendID = "s1"
	}
	if opts.ReasonCode == "" {
		opts.ReasonCode = "NEEDS_APPROVAL"
	}
	if opts.AllowedActions == nil {
		opts.AllowedActions = []string{"approve", "reject"}
	}
	_, err := e.svc.Emitter(id).Suspend(context.Background(), opts)
	require.NoError(e.t, err)
	return id
}

func TestActions(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.suspended("req-1", taskbridge.SuspendOpts{})
	action := map[string]any{
		"clientActionId": "a1", "suspendId": "s1", "actionType": "approve",
		"payload": map[string]any{"comment": "ok"}, "metadata": map[string]any{},
	}
	path := "/api/v1/tasks/" + id + "/actions"

	resp := e.alice.postJSON(path, action)
	require.Equal(t, http.StatusAccepted, resp.Status, "%s", resp.Body)
	var ar taskbridge.ActionResponse
	resp.decode(&ar)
	require.Equal(t, taskbridge.ActionResponse{TaskID: id, SuspendID: "s1", ClientActionID: "a1", Status: taskbridge.ActionAccepted}, ar)

	resp = e.alice.postJSON(path, action)
	require.Equal(t, http.StatusOK, resp.Status, "%s", resp.Body)
	resp.decode(&ar)
	require.Equal(t, taskbridge.ActionDeduplicated, ar.Status)

	action["payload"] = map[string]any{"comment": "changed my mind"}
	e.alice.postJSON(path, action).errorEnvelope(http.StatusConflict, taskbridge.CodeIdempotencyConflict)

	action["clientActionId"] = "a2"
	resp = e.alice.postJSON(path, action)
	require.Equal(t, http.StatusAccepted, resp.Status, "%s", resp.Body)
	resp.decode(&ar)
	require.Equal(t, taskbridge.ActionRejectedAlreadyResolved, ar.Status)

	// The acceptance is in the event log (validated against the schema).
	pr := e.alice.poll(id, "waitTimeoutMs=0&afterEventId=2")
	require.Len(t, pr.Events, 1)
	require.Equal(t, taskbridge.EventTaskActionAccepted, pr.Events[0].Type)

	// An expired suspension rejects, checked at submit time.
	_, err := e.svc.Emitter(id).Suspend(context.Background(), taskbridge.SuspendOpts{
		SuspendID: "s2", ReasonCode: "CONFIRM", AllowedActions: []string{"confirm"}, TTL: time.Minute,
	})
	require.NoError(t, err)
	e.clock.advance(2 * time.Minute)
	resp = e.alice.postJSON(path, map[string]any{"clientActionId": "a3", "suspendId": "s2", "actionType": "confirm"})
	require.Equal(t, http.StatusAccepted, resp.Status, "%s", resp.Body)
	resp.decode(&ar)
	require.Equal(t, taskbridge.ActionRejectedExpired, ar.Status)
}

func TestActionErrors(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.suspended("req-1", taskbridge.SuspendOpts{})
	path := "/api/v1/tasks/" + id + "/actions"

	e.alice.postRaw(path, `{"clientActionId":"a","suspendId":"nope","actionType":"approve"}`).
		errorEnvelope(http.StatusNotFound, taskbridge.CodeTaskNotFound)
	e.alice.postRaw(path, `{"clientActionId":"a","suspendId":"s1","actionType":"delete_everything"}`).
		errorEnvelope(http.StatusBadRequest, taskbridge.CodeInvalidRequest)

	for _, body := range []string{``, `{`, `[]`, `{"clientActionId":"a"}]`} {
		e.alice.postRaw(path, body).errorEnvelope(http.StatusBadRequest, taskbridge.CodeInvalidRequest)
	}
	valid := `{"clientActionId":"a","suspendId":"s1","actionType":"approve"}`
	e.alice.do(http.MethodPost, path, strings.NewReader(valid), "text/plain;charset=UTF-8").
		errorEnvelope(http.StatusBadRequest, taskbridge.CodeInvalidRequest)
	for _, tc := range []struct {
		body   string
		fields []string
	}{
		{`{}`, []string{"clientActionId", "suspendId", "actionType"}},
		{`{"clientActionId":"","suspendId":1,"actionType":null}`, []string{"clientActionId", "suspendId", "actionType"}},
		{`{"clientActionId":"a","suspendId":"s1","actionType":"approve","payload":[],"metadata":"m"}`, []string{"payload", "metadata"}},
		{`{"clientActionId":"a","suspendId":"s1","actionType":"approve","zeta":1,"alpha":{}}`, []string{"alpha", "zeta"}},
		{`{"suspendId":"s1","actionType":"approve","extra":true}`, []string{"clientActionId", "extra"}},
	} {
		require.Equal(t, tc.fields, e.alice.postRaw(path, tc.body).fieldErrors(), tc.body)
	}
	// Nothing was accepted by the invalid requests.
	pr := e.alice.poll(id, "waitTimeoutMs=0")
	require.Len(t, pr.Events, 2)
}

func TestTaskSnapshot(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.createTask("req-1")
	resp := e.alice.get("/api/v1/tasks/" + id)
	require.Equal(t, http.StatusOK, resp.Status)
	var snap taskbridge.TaskSnapshot
	resp.decode(&snap)
	require.Equal(t, id, snap.TaskID)
	require.Equal(t, taskbridge.StatusAccepted, snap.Status)
	require.Equal(t, "demo", snap.TaskType)
	require.Equal(t, "req-1", snap.ClientRequestID)
	require.Nil(t, snap.LastEventID)
	require.Nil(t, snap.Suspension)
	require.Contains(t, string(resp.Body), `"lastEventId":null`)
	require.Contains(t, string(resp.Body), `"suspension":null`)

	sid := e.suspended("req-2", taskbridge.SuspendOpts{SuspendID: "pick"})
	e.alice.get("/api/v1/tasks/" + sid).decode(&snap)
	require.Equal(t, taskbridge.StatusRunning, snap.Status)
	require.Equal(t, "2", *snap.LastEventID)
	require.NotNil(t, snap.Suspension)
	require.Equal(t, "pick", snap.Suspension.SuspendID)
	require.Equal(t, []string{"approve", "reject"}, snap.Suspension.AllowedActions)
}

func TestListTasks(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var ids []string
	for i := range 5 {
		ids = append(ids, e.createTask("req-"+string(rune('a'+i))))
		e.clock.advance(time.Second)
	}
	require.Equal(t, http.StatusCreated, e.bob.postRaw("/api/v1/tasks", `{"clientRequestId":"b","taskType":"t"}`).Status)
	e.emit(ids[1], taskbridge.StartedPayload{})
	e.emit(ids[3], taskbridge.CompletedPayload{Result: map[string]any{"ok": true}})

	// Newest first, two per page, following the opaque cursor.
	var got []string
	query := "limit=2"
	for page := 0; ; page++ {
		require.Less(t, page, 5)
		var list taskbridge.TaskList
		resp := e.alice.get("/api/v1/tasks?" + query)
		require.Equal(t, http.StatusOK, resp.Status, "%s", resp.Body)
		resp.decode(&list)
		require.LessOrEqual(t, len(list.Tasks), 2)
		for _, s := range list.Tasks {
			got = append(got, s.TaskID)
		}
		if list.NextCursor == nil {
			require.Contains(t, string(resp.Body), `"nextCursor":null`)
			break
		}
		query = "limit=2&cursor=" + url.QueryEscape(*list.NextCursor)
	}
	require.Equal(t, []string{ids[4], ids[3], ids[2], ids[1], ids[0]}, got)

	statusIDs := func(query string) []string {
		var list taskbridge.TaskList
		e.alice.get("/api/v1/tasks?" + query).decode(&list)
		out := []string{}
		for _, s := range list.Tasks {
			out = append(out, s.TaskID)
		}
		return out
	}
	require.Equal(t, []string{ids[3], ids[1]}, statusIDs("status=RUNNING&status=completed"))
	require.Equal(t, []string{ids[3], ids[1]}, statusIDs("status=RUNNING,+COMPLETED"))
	require.Equal(t, []string{ids[4], ids[2], ids[0]}, statusIDs("status=ACCEPTED&status="))
	require.Equal(t, []string{}, statusIDs("status=FAILED"))

	// Bob sees only his own task.
	var list taskbridge.TaskList
	e.bob.get("/api/v1/tasks").decode(&list)
	require.Len(t, list.Tasks, 1)

	for _, tc := range []struct {
		query  string
		fields []string
	}{
		{"limit=0", []string{"limit"}},
		{"limit=101", []string{"limit"}},
		{"limit=x", []string{"limit"}},
		{"status=RUNNING,BOGUS", []string{"status"}},
		{"limit=-1&status=nope&status=PAUSED", []string{"limit", "status", "status"}},
	} {
		require.Equal(t, tc.fields, e.alice.get("/api/v1/tasks?"+tc.query).fieldErrors(), tc.query)
	}
	e.alice.get("/api/v1/tasks?cursor=not-a-cursor").errorEnvelope(http.StatusBadRequest, taskbridge.CodeInvalidRequest)
}

// TestNoEnumeration checks that every task route answers another user's
// task exactly like a task that does not exist.
func TestNoEnumeration(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.suspended("req-1", taskbridge.SuspendOpts{})
	action := `{"clientActionId":"a","suspendId":"s1","actionType":"approve"}`
	routes := []struct{ method, path, body string }{
		{http.MethodGet, "/api/v1/tasks/%s", ""},
		{http.MethodGet, "/api/v1/tasks/%s/events?waitTimeoutMs=0", ""},
		{http.MethodPost, "/api/v1/tasks/%s/cancel", "{}"},
		{http.MethodPost, "/api/v1/tasks/%s/actions", action},
	}
	for _, rt := range routes {
		for _, target := range []struct {
			c  *client
			id string
		}{
			{e.bob, id},                           // someone else's task
			{e.alice, "no-such-task"},             // unknown
			{e.alice, url.PathEscape("bad id!")},  // not a task id at all
			{e.alice, strings.Repeat("x", 300)},   // too long to be one
			{e.alice, url.PathEscape("-leading")}, // fails the SDK's pattern
		} {
			path := strings.Replace(rt.path, "%s", target.id, 1)
			resp := target.c.do(rt.method, path, optBody(rt.body), "application/json")
			resp.errorEnvelope(http.StatusNotFound, taskbridge.CodeTaskNotFound)
		}
	}
	// Nothing happened to alice's task.
	require.Empty(t, e.exec.cancels())
	pr := e.alice.poll(id, "waitTimeoutMs=0")
	require.Len(t, pr.Events, 2)
}

// TestUnauthenticated checks every authenticated route for 401 before
// anything else is looked at.
func TestUnauthenticated(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.createTask("req-1")
	for _, rt := range []struct{ method, path, body string }{
		{http.MethodPost, "/api/v1/tasks", `{"clientRequestId":"x","taskType":"t"}`},
		{http.MethodGet, "/api/v1/tasks", ""},
		{http.MethodGet, "/api/v1/tasks/" + id, ""},
		{http.MethodGet, "/api/v1/tasks/" + id + "/events", ""},
		{http.MethodPost, "/api/v1/tasks/" + id + "/cancel", ""},
		{http.MethodPost, "/api/v1/tasks/" + id + "/actions", `{`},
		{http.MethodGet, "/api/v1/tasks/not%20valid/events?maxEvents=0", ""},
	} {
		resp := e.anon.do(rt.method, rt.path, optBody(rt.body), "application/json")
		resp.errorEnvelope(http.StatusUnauthorized, taskbridge.CodeAuthentication)
		require.Equal(t, "Bearer", resp.Header.Get("WWW-Authenticate"))
	}
	require.Empty(t, e.exec.cancels())
}

// optBody is a request body, or none for "".
func optBody(s string) io.Reader {
	if s == "" {
		return nil
	}
	return strings.NewReader(s)
}
