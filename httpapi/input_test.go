package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
)

// state is everything the store and the upload sink hold, to check that a
// rejected request changed nothing.
func (e *env) state() string {
	e.t.Helper()
	ctx := context.Background()
	var b strings.Builder
	tasks, err := e.store.ListTasks(ctx, taskbridge.TaskQuery{Limit: 1 << 20})
	require.NoError(e.t, err)
	for _, task := range tasks {
		j, err := json.Marshal(task)
		require.NoError(e.t, err)
		evs, err := e.store.Read(ctx, task.ID, 0, 1<<20)
		require.NoError(e.t, err)
		sus, err := e.store.ListSuspensions(ctx, task.ID)
		require.NoError(e.t, err)
		ej, _ := json.Marshal(evs)
		sj, _ := json.Marshal(sus)
		fmt.Fprintf(&b, "%s\n%s\n%s\n", j, ej, sj)
	}
	fmt.Fprintf(&b, "files %q\n", e.spooled())
	return b.String()
}

// unchanged runs f and fails the test if the store or the sink changed.
func (e *env) unchanged(f func()) {
	e.t.Helper()
	before := e.state()
	f()
	require.Equal(e.t, before, e.state(), "a rejected request changed what is stored")
}

func TestTruncatedMultipartIsRejected(t *testing.T) {
	t.Parallel()
	e := setup(t)
	full := sdkMultipart(t, "req-1", file("attachments", "a.txt", "text/plain", "hello"))
	// Every cut before the final delimiter is 400, whatever it cuts (a
	// boundary line, part headers, a text part, the file), and stores
	// nothing: neither a task nor a file.
	end := bytes.LastIndex(full.body, []byte("--\r\n"))
	require.Positive(t, end)
	e.unchanged(func() {
		for n := range end + 2 {
			cut := form{body: full.body[:n], contentType: full.contentType}
			env := e.alice.postForm(cut).errorEnvelope(http.StatusBadRequest, taskbridge.CodeInvalidRequest)
			if n > 0 {
				require.Contains(t, env.Message, "multipart", "cut at %d", n)
			}
		}
	})
	require.Equal(t, http.StatusCreated, e.alice.postForm(full).Status, "the whole body creates the task")
}

// controlIDs are ids with control characters, raw and escaped in JSON.
var controlIDs = []string{"a\x00b", "a\x1fb", "tab\tid", "new\nline", "a\x7fb", "a\u0085b", "\x00"}

func TestControlCharactersInIDsAreRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.suspended("req-0", taskbridge.SuspendOpts{})
	e.unchanged(func() {
		for _, bad := range controlIDs {
			for _, field := range []string{"clientRequestId", "taskType"} {
				body := map[string]any{"clientRequestId": "req-1", "taskType": "demo", "input": map[string]any{}}
				body[field] = bad
				resp := e.alice.postJSON("/api/v1/tasks", body)
				require.Equal(t, []string{field}, resp.fieldErrors(), "JSON %s %q", field, bad)
				require.Contains(t, string(resp.Body), "control characters")

				parts := []part{text("clientRequestId", "req-1"), text("taskType", "demo")}
				if field == "clientRequestId" {
					parts[0] = text(field, bad)
				} else {
					parts[1] = text(field, bad)
				}
				resp = e.alice.postForm(multipartBody(t, append(parts, file("attachments", "a.txt", "text/plain", "x"))...))
				require.Equal(t, []string{field}, resp.fieldErrors(), "multipart %s %q", field, bad)
				require.Contains(t, string(resp.Body), "control characters")
			}
			for _, field := range []string{"clientActionId", "suspendId", "actionType"} {
				body := map[string]any{"clientActionId": "act-1", "suspendId": "s1", "actionType": "approve"}
				body[field] = bad
				resp := e.alice.postJSON("/api/v1/tasks/"+id+"/actions", body)
				require.Equal(t, []string{field}, resp.fieldErrors(), "action %s %q", field, bad)
			}
		}
	})
}

func TestServiceRefusesControlCharactersInIDs(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, err := e.svc.CreateTask(context.Background(), taskbridge.AuthContext{Subject: "alice"},
		taskbridge.CreateTaskRequest{ClientRequestID: "a\x00b", TaskType: "demo"})
	var verr *taskbridge.ValidationError
	require.ErrorAs(t, err, &verr, "Go callers get the same check as HTTP clients")
	require.Equal(t, "clientRequestId", verr.Fields[0].Field)
}

func TestDuplicateMembersAreRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.suspended("req-0", taskbridge.SuspendOpts{})
	e.unchanged(func() {
		for body, field := range map[string]string{
			`{"clientRequestId":"req-1","clientRequestId":"req-2","taskType":"demo"}`:        "clientRequestId",
			`{"clientRequestId":"req-1","taskType":"demo","taskType":"demo"}`:                "taskType",
			`{"clientRequestId":"req-1","taskType":"demo","input":{"a":1,"a":2}}`:            "input.a",
			`{"clientRequestId":"req-1","taskType":"demo","metadata":{"m":[{"k":1,"k":2}]}}`: "metadata.m[0].k",
			`{"clientRequestId":"req-1","taskType":"demo","extra":1,"extra":2}`:              "extra",
		} {
			require.Equal(t, []string{field}, e.alice.postRaw("/api/v1/tasks", body).fieldErrors(), body)
		}
		for body, field := range map[string]string{
			`{"clientActionId":"a1","clientActionId":"a2","suspendId":"s1","actionType":"approve"}`:     "clientActionId",
			`{"clientActionId":"a1","suspendId":"s1","actionType":"approve","actionType":"reject"}`:     "actionType",
			`{"clientActionId":"a1","suspendId":"s1","actionType":"approve","payload":{"ok":1,"ok":0}}`: "payload.ok",
		} {
			require.Equal(t, []string{field}, e.alice.postRaw("/api/v1/tasks/"+id+"/actions", body).fieldErrors(), body)
		}
		require.Equal(t, []string{"reason"}, e.alice.postRaw("/api/v1/tasks/"+id+"/cancel", `{"reason":"a","reason":"b"}`).fieldErrors())
		resp := e.alice.postForm(multipartBody(t, text("clientRequestId", "req-1"), text("taskType", "demo"),
			text("input", `{"a":1,"a":2}`), file("attachments", "a.txt", "text/plain", "x")))
		require.Equal(t, []string{"input.a"}, resp.fieldErrors())
	})
}

func TestMalformedQueryParameters(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.createTask("req-1")
	e.emit(id, taskbridge.StartedPayload{})
	events := "/api/v1/tasks/" + id + "/events?"
	for query, field := range map[string]string{
		"waitTimeoutMs=abc":                              "waitTimeoutMs",
		"waitTimeoutMs=-1":                               "waitTimeoutMs",
		"waitTimeoutMs=1.5":                              "waitTimeoutMs",
		"waitTimeoutMs=60001":                            "waitTimeoutMs",
		"waitTimeoutMs=0&waitTimeoutMs=0":                "waitTimeoutMs",
		"waitTimeoutMs=0&maxEvents=0":                    "maxEvents",
		"waitTimeoutMs=0&maxEvents=-5":                   "maxEvents",
		"waitTimeoutMs=0&maxEvents=1e2":                  "maxEvents",
		"waitTimeoutMs=0&maxEvents=99999999999999999999": "maxEvents",
		"waitTimeoutMs=0&maxEvents=1&maxEvents=2":        "maxEvents",
		"waitTimeoutMs=0&afterEventId=1&afterEventId=1":  "afterEventId",
	} {
		require.Equal(t, []string{field}, e.alice.get(events+query).fieldErrors(), query)
	}
	for _, query := range []string{"waitTimeoutMs=%zz", "waitTimeoutMs=0;maxEvents=1", "waitTimeoutMs=0&afterEventId=%"} {
		env := e.alice.get(events+query).errorEnvelope(http.StatusBadRequest, taskbridge.CodeInvalidRequest)
		require.Contains(t, env.Message, "query string", query)
	}
	for _, cursor := range []string{"-1", "1%00", "%ff", "01", "+1", "1.0", "99999999999999999999", "%E2%80%8B1"} {
		env := e.alice.get(events+"waitTimeoutMs=0&afterEventId="+cursor).errorEnvelope(http.StatusBadRequest, taskbridge.CodeInvalidRequest)
		require.Contains(t, env.Message, "cursor", cursor)
	}
	for query, field := range map[string]string{"limit=1&limit=2": "limit", "cursor=a&cursor=b": "cursor", "limit=x": "limit"} {
		require.Equal(t, []string{field}, e.alice.get("/api/v1/tasks?"+query).fieldErrors(), query)
	}
	e.alice.get("/api/v1/tasks?limit=%zz").errorEnvelope(http.StatusBadRequest, taskbridge.CodeInvalidRequest)
}

// TestIntegerQueryParametersAreDecimalDigits: waitTimeoutMs, maxEvents and
// limit are the ASCII digits 0-9 (leading zeros allowed). A sign, a space
// ('+' in a query is a space), an underscore, a hex prefix or another
// script's digits are 422; a '-' before digits is 422 as out of range.
func TestIntegerQueryParametersAreDecimalDigits(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.createTask("req-1")
	e.emit(id, taskbridge.StartedPayload{})
	routes := map[string]string{
		"waitTimeoutMs": "/api/v1/tasks/" + id + "/events?maxEvents=1&waitTimeoutMs=",
		"maxEvents":     "/api/v1/tasks/" + id + "/events?waitTimeoutMs=0&maxEvents=",
		"limit":         "/api/v1/tasks?limit=",
	}
	for field, path := range routes {
		for _, ok := range []string{"5", "05", "0005"} {
			resp := e.alice.get(path + ok)
			require.Equal(t, http.StatusOK, resp.Status, "%s=%s: %s", field, ok, resp.Body)
		}
		for _, bad := range []string{
			"%2B5", "+5", "%205", "5%20", "%095", "5%0A", "%C2%A05", // sign, spaces
			"1_0", "0x5", "0X5", "0b1", "0o5", "5e0", "%EF%BC%95", // not decimal digits
			"-", "%2B", "%2B-5", "--5", "-%2B5",
		} {
			env := e.alice.get(path+bad).errorEnvelope(http.StatusUnprocessableEntity, taskbridge.CodeValidation)
			require.Contains(t, string(mustJSON(t, env.Details)), "must be an integer", "%s=%s", field, bad)
		}
		for _, neg := range []string{"-5", "-0", "-05", "-99999999999999999999"} {
			env := e.alice.get(path+neg).errorEnvelope(http.StatusUnprocessableEntity, taskbridge.CodeValidation)
			require.Contains(t, string(mustJSON(t, env.Details)), "must be between", "%s=%s", field, neg)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func TestJSONBodiesMustBeUTF8(t *testing.T) {
	t.Parallel()
	e := setup(t)
	body := `{"clientRequestId":"req-1","taskType":"demo"}`
	e.unchanged(func() {
		for _, ct := range []string{"application/json; charset=utf-16", "application/json; charset=iso-8859-1"} {
			env := e.alice.do(http.MethodPost, "/api/v1/tasks", strings.NewReader(body), ct).
				errorEnvelope(http.StatusBadRequest, taskbridge.CodeInvalidRequest)
			require.Contains(t, env.Message, "UTF-8")
		}
	})
	for _, ct := range []string{"application/json; charset=UTF-8", "application/json;charset=utf8"} {
		require.Less(t, e.alice.do(http.MethodPost, "/api/v1/tasks", strings.NewReader(body), ct).Status, 300, ct)
	}
}
