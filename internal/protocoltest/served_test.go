package protocoltest_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
)

func TestServedDocumentIsValid(t *testing.T) {
	t.Parallel()
	require.NoError(t, protocoltest.ServedDocumentError())
	require.NoError(t, protocoltest.ExtensionError())
	ops, err := protocoltest.Operations([]byte(`{"paths":{"/a":{"get":{},"parameters":[]},"/b":{"post":{},"head":{}}}}`))
	require.NoError(t, err)
	require.Equal(t, []string{"GET /a", "HEAD /b", "POST /b"}, ops)
}

func TestSSEFrameError(t *testing.T) {
	t.Parallel()
	event := `{"type":"TASK_PROGRESS","taskId":"t1","eventId":"3","createdAt":"2026-05-04T12:00:00.000Z","payload":{"progress":50}}`
	heartbeat := `{"type":"HEARTBEAT","taskId":"t1","eventId":"hb-0a1b2c3d-7","createdAt":"2026-05-04T12:00:00.000Z","payload":{"live":true}}`
	for _, tc := range []struct {
		name    string
		id      string
		hasID   bool
		data    string
		wantErr string
	}{
		{name: "event", id: "3", hasID: true, data: event},
		{name: "event id mismatch", id: "4", hasID: true, data: event, wantErr: "does not match"},
		{name: "event extra payload member", id: "3", hasID: true,
			data: `{"type":"TASK_MESSAGE","taskId":"t1","eventId":"3","createdAt":"2026-05-04T12:00:00.000Z","payload":{"message":"m","x":1}}`, wantErr: "x"},
		{name: "heartbeat", data: heartbeat},
		{name: "heartbeat not live", data: `{"type":"HEARTBEAT","taskId":"t1","eventId":"hb-1","createdAt":"2026-05-04T12:00:00.000Z","payload":{"live":false}}`, wantErr: "live"},
		{name: "heartbeat with an event id", id: "3", hasID: true, data: heartbeat, wantErr: "type"},
		{name: "event without id line", data: event, wantErr: "SseHeartbeat"},
		{name: "comment or retry frame", data: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := protocoltest.SSEFrameError(tc.id, tc.hasID, []byte(tc.data))
			rec := &recorder{TB: t}
			protocoltest.ValidateSSEFrame(rec, tc.id, tc.hasID, []byte(tc.data))
			if tc.wantErr == "" {
				require.NoError(t, err)
				require.False(t, rec.failed, rec.msg)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
			require.True(t, rec.failed)
		})
	}
}

func TestLoadDocument(t *testing.T) {
	t.Parallel()
	_, err := protocoltest.LoadDocument([]byte(`{"openapi":"3.1.0","info":{"title":"x"},"paths":{}}`))
	require.ErrorContains(t, err, "version") // info.version is required
	doc, err := protocoltest.LoadDocument([]byte(`{"openapi":"3.1.0","info":{"title":"x","version":"1"},"servers":[{"url":"https://elsewhere.example"}],
		"paths":{"/jobs/{id}":{"get":{"parameters":[{"name":"id","in":"path","required":true,"schema":{"type":"string"}}],
		"responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"type":"object","required":["id"]}}}}}}}}}`))
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:1/jobs/7", nil) // servers are ignored
	require.NoError(t, doc.ResponseError(req, 200, jsonHeader, []byte(`{"id":"7"}`)))
	require.ErrorContains(t, doc.ResponseError(req, 200, jsonHeader, []byte(`{}`)), "id")
	require.ErrorContains(t, doc.ResponseError(req, 500, jsonHeader, []byte(envelope)), "not documented")
	other := httptest.NewRequest(http.MethodGet, "http://x/elsewhere", nil)
	require.NoError(t, doc.ResponseError(other, 500, jsonHeader, nil))
}

func TestRequestError(t *testing.T) {
	t.Parallel()
	doc, err := protocoltest.ServedDocument()
	require.NoError(t, err)
	req := func(method, target, contentType string) *http.Request {
		r := httptest.NewRequest(method, target, nil)
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		return r
	}
	for _, tc := range []struct {
		name    string
		req     *http.Request
		body    string
		wantErr string
	}{
		{name: "poll", req: req("GET", "http://x/api/v1/tasks/t1/events?afterEventId=3&waitTimeoutMs=60000&maxEvents=500", "")},
		{name: "poll wait too long", req: req("GET", "http://x/api/v1/tasks/t1/events?waitTimeoutMs=60001", ""), wantErr: "waitTimeoutMs"},
		{name: "create", req: req("POST", "http://x/api/v1/tasks", "application/json"), body: `{"clientRequestId":"r1","taskType":"demo","input":{}}`},
		{name: "create without taskType", req: req("POST", "http://x/api/v1/tasks", "application/json"), body: `{"clientRequestId":"r1"}`, wantErr: "taskType"},
		{name: "action", req: req("POST", "http://x/api/v1/tasks/t1/actions", "application/json"), body: `{"clientActionId":"c1","suspendId":"s1","actionType":"ok"}`},
		{name: "cancel without body", req: req("POST", "http://x/api/v1/tasks/t1/cancel", "")},
		// v1 types reason as a string; the Android SDK sends null, which
		// the library accepts (see docs/COMPATIBILITY.md).
		{name: "cancel with null reason", req: req("POST", "http://x/api/v1/tasks/t1/cancel", "application/json"), body: `{"reason":null}`, wantErr: "reason"},
		{name: "list", req: req("GET", "http://x/api/v1/tasks?limit=100&status=RUNNING&status=FAILED", "")},
		{name: "list limit too large", req: req("GET", "http://x/api/v1/tasks?limit=101", ""), wantErr: "limit"},
		{name: "stream resume", req: req("GET", "http://x/api/v1/tasks/t1/events/stream?lastEventId=4", "")},
		{name: "host route", req: req("PUT", "http://x/elsewhere", "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			err := doc.RequestError(tc.req, body)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}
