package protocoltest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
)

// mutate decodes a fixture, applies edit to it and re-encodes it.
func mutate(t *testing.T, raw []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	edit(m)
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

func payloadOf(m map[string]any) map[string]any { return m["payload"].(map[string]any) }

// recorder is a testing.TB that records Fatal calls instead of stopping the
// test, to check that the ValidateX helpers do fail.
type recorder struct {
	testing.TB
	failed bool
	msg    string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = true
	r.msg = fmt.Sprintf(format, args...)
}

func (r *recorder) Fatal(args ...any) {
	r.failed = true
	r.msg = fmt.Sprint(args...)
}

func TestDirAndFixtures(t *testing.T) {
	t.Parallel()
	st, err := os.Stat(protocoltest.Path("openapi", "taskbridge.openapi.yaml"))
	require.NoError(t, err)
	require.False(t, st.IsDir())
	require.Equal(t, protocoltest.Path(), protocoltest.Dir())

	all := protocoltest.Fixtures(t)
	require.Len(t, all, 12)
	require.Contains(t, all, "poll_events_response")
	require.JSONEq(t, string(all["task_started"]), string(protocoltest.Fixture(t, "task_started.json")))

	events, err := protocoltest.EventFixtureNames()
	require.NoError(t, err)
	require.Equal(t, []string{
		"task_action_accepted", "task_cancelled", "task_completed", "task_failed",
		"task_message", "task_progress", "task_started", "task_suspended",
	}, events)
}

func TestKnownGoodFixturesPass(t *testing.T) {
	t.Parallel()
	events, err := protocoltest.EventFixtureNames()
	require.NoError(t, err)
	for _, name := range events {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			raw := protocoltest.Fixture(t, name)
			protocoltest.ValidateEvent(t, raw)
			protocoltest.ValidateComponent(t, protocoltest.ComponentTaskEvent, raw)
			protocoltest.ValidateServerFrame(t, raw)
		})
	}
	t.Run("poll_events_response", func(t *testing.T) {
		t.Parallel()
		protocoltest.ValidateComponent(t, protocoltest.ComponentPollEventsResponse,
			protocoltest.Fixture(t, "poll_events_response"))
	})
	t.Run("websocket frames", func(t *testing.T) {
		t.Parallel()
		protocoltest.ValidateSubscribeFrame(t, protocoltest.Fixture(t, "websocket_subscribe_request"))
		ack := protocoltest.Fixture(t, "websocket_subscribe_ack")
		protocoltest.ValidateSubscriptionConfirmed(t, ack)
		protocoltest.ValidateServerFrame(t, ack)
		hb := protocoltest.Fixture(t, "websocket_heartbeat")
		protocoltest.ValidateHeartbeat(t, hb)
		protocoltest.ValidateServerFrame(t, hb)
	})
	t.Run("actions", func(t *testing.T) {
		t.Parallel()
		protocoltest.ValidateActionRequest(t, []byte(`{"clientActionId":"c1","suspendId":"s1","actionType":"submit_form","payload":{"a":1},"metadata":{}}`))
		protocoltest.ValidateActionResponse(t, []byte(`{"taskId":"t","suspendId":"s1","clientActionId":"c1","status":"DEDUPLICATED"}`))
		protocoltest.ValidateComponent(t, protocoltest.ComponentTaskClientActionResponse,
			[]byte(`{"taskId":"t","suspendId":"s1","clientActionId":"c1","status":"ACCEPTED"}`))
	})
	t.Run("error envelope", func(t *testing.T) {
		t.Parallel()
		protocoltest.ValidateErrorResponse(t, []byte(`{"code":"TASK_NOT_FOUND","message":"Task not found","details":{},"timestamp":"2026-05-04T12:00:00.123456789Z"}`))
	})
}

func TestEventErrorRejectsBrokenEvents(t *testing.T) {
	t.Parallel()
	fx := protocoltest.Fixtures(t)
	cases := []struct {
		name string
		doc  []byte
	}{
		{"TASK_MESSAGE extra payload field", mutate(t, fx["task_message"], func(m map[string]any) {
			payloadOf(m)["extra"] = true
		})},
		{"TASK_MESSAGE unknown level", mutate(t, fx["task_message"], func(m map[string]any) {
			payloadOf(m)["level"] = "error"
		})},
		{"TASK_STARTED extra payload field", mutate(t, fx["task_started"], func(m map[string]any) {
			payloadOf(m)["progress"] = 1
		})},
		{"TASK_COMPLETED missing result", mutate(t, fx["task_completed"], func(m map[string]any) {
			delete(payloadOf(m), "result")
		})},
		{"TASK_CANCELLED missing reason", mutate(t, fx["task_cancelled"], func(m map[string]any) {
			delete(payloadOf(m), "reason")
		})},
		{"TASK_FAILED missing retryable", mutate(t, fx["task_failed"], func(m map[string]any) {
			delete(payloadOf(m), "retryable")
		})},
		{"TASK_PROGRESS above 100", mutate(t, fx["task_progress"], func(m map[string]any) {
			payloadOf(m)["progress"] = 100.5
		})},
		{"TASK_PROGRESS as string", mutate(t, fx["task_progress"], func(m map[string]any) {
			payloadOf(m)["progress"] = "50"
		})},
		{"TASK_SUSPENDED no actions", mutate(t, fx["task_suspended"], func(m map[string]any) {
			payloadOf(m)["allowedActions"] = []any{}
		})},
		{"TASK_SUSPENDED schemaVersion 0", mutate(t, fx["task_suspended"], func(m map[string]any) {
			payloadOf(m)["schemaVersion"] = 0
		})},
		{"TASK_SUSPENDED bad expiresAt", mutate(t, fx["task_suspended"], func(m map[string]any) {
			payloadOf(m)["expiresAt"] = "tomorrow"
		})},
		{"TASK_ACTION_ACCEPTED bad acceptedAt", mutate(t, fx["task_action_accepted"], func(m map[string]any) {
			payloadOf(m)["acceptedAt"] = "2026-05-05 12:00:04"
		})},
		{"bad createdAt date-time", mutate(t, fx["task_started"], func(m map[string]any) {
			m["createdAt"] = "2026-05-04T12:00:00"
		})},
		{"createdAt with impossible date", mutate(t, fx["task_started"], func(m map[string]any) {
			m["createdAt"] = "2026-02-30T12:00:00Z"
		})},
		{"envelope extra field", mutate(t, fx["task_started"], func(m map[string]any) {
			m["seq"] = 1
		})},
		{"envelope missing eventId", mutate(t, fx["task_started"], func(m map[string]any) {
			delete(m, "eventId")
		})},
		{"unknown type", mutate(t, fx["task_started"], func(m map[string]any) {
			m["type"] = "TASK_PAUSED"
		})},
		{"null payload", mutate(t, fx["task_started"], func(m map[string]any) {
			m["payload"] = nil
		})},
		{"trailing data", append(append([]byte{}, fx["task_started"]...), []byte(" {}")...)},
		{"not JSON", []byte(`{"type":`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Error(t, protocoltest.EventError(tc.doc))
			require.Error(t, protocoltest.ServerFrameError(tc.doc))
			rec := &recorder{TB: t}
			protocoltest.ValidateEvent(rec, tc.doc)
			require.True(t, rec.failed, "ValidateEvent must fail")
			require.Contains(t, rec.msg, "invalid TaskEvent")
		})
	}
}

func TestActionSchemasRejectBrokenDocuments(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{
		`{"suspendId":"s1","actionType":"submit_form"}`,
		`{"clientActionId":"c1","suspendId":"s1","actionType":"submit_form","extra":1}`,
		`{"clientActionId":"c1","suspendId":"s1","actionType":"submit_form","payload":[]}`,
	} {
		require.Error(t, protocoltest.ActionRequestError([]byte(doc)), doc)
		rec := &recorder{TB: t}
		protocoltest.ValidateActionRequest(rec, []byte(doc))
		require.True(t, rec.failed, doc)
	}
	for _, doc := range []string{
		`{"taskId":"t","suspendId":"s1","clientActionId":"c1","status":"REJECTED"}`,
		`{"taskId":"t","suspendId":"s1","status":"ACCEPTED"}`,
		`{"taskId":"t","suspendId":"s1","clientActionId":"c1","status":"ACCEPTED","at":1}`,
	} {
		require.Error(t, protocoltest.ActionResponseError([]byte(doc)), doc)
		require.Error(t, protocoltest.ComponentError(protocoltest.ComponentTaskClientActionResponse, []byte(doc)), doc)
		rec := &recorder{TB: t}
		protocoltest.ValidateActionResponse(rec, []byte(doc))
		require.True(t, rec.failed, doc)
	}
}

func TestComponentErrorRejectsBrokenDocuments(t *testing.T) {
	t.Parallel()
	fx := protocoltest.Fixtures(t)
	badPoll := mutate(t, fx["poll_events_response"], func(m map[string]any) {
		ev := m["events"].([]any)[1].(map[string]any)
		ev["payload"].(map[string]any)["result"] = nil
		delete(ev["payload"].(map[string]any), "result")
	})
	extraPayloadPoll := mutate(t, fx["poll_events_response"], func(m map[string]any) {
		ev := m["events"].([]any)[0].(map[string]any)
		ev["payload"].(map[string]any)["extra"] = "x"
	})
	cases := []struct {
		name, component, doc string
	}{
		{"error envelope missing code", protocoltest.ComponentErrorResponse,
			`{"message":"m","details":{},"timestamp":"2026-05-04T12:00:00Z"}`},
		{"error envelope bad timestamp", protocoltest.ComponentErrorResponse,
			`{"code":"X","message":"m","details":{},"timestamp":"May 4th"}`},
		{"error envelope null details", protocoltest.ComponentErrorResponse,
			`{"code":"X","message":"m","details":null,"timestamp":"2026-05-04T12:00:00Z"}`},
		{"error envelope numeric code", protocoltest.ComponentErrorResponse,
			`{"code":404,"message":"m","details":{},"timestamp":"2026-05-04T12:00:00Z"}`},
		{"cancel response wrong status", protocoltest.ComponentCancelTaskResponse,
			`{"taskId":"t","status":"CANCELLED"}`},
		{"created response wrong status", protocoltest.ComponentTaskCreatedResponse,
			`{"taskId":"t","status":"PENDING","clientRequestId":"r","deduplicated":false}`},
		{"created response missing clientRequestId", protocoltest.ComponentTaskCreatedResponse,
			`{"taskId":"t","status":"ACCEPTED"}`},
		{"poll response events null", protocoltest.ComponentPollEventsResponse,
			`{"taskId":"t","events":null,"nextAfterEventId":null,"hasMore":false}`},
		{"poll response missing hasMore", protocoltest.ComponentPollEventsResponse,
			`{"taskId":"t","events":[],"nextAfterEventId":null}`},
		{"poll response event missing result", protocoltest.ComponentPollEventsResponse, string(badPoll)},
		{"poll response event extra payload field", protocoltest.ComponentPollEventsResponse, string(extraPayloadPoll)},
		{"subscribe wrong action", protocoltest.ComponentWebSocketSubscribeRequest,
			`{"action":"unsubscribe","taskId":"t"}`},
		{"subscribe missing taskId", protocoltest.ComponentWebSocketSubscribeRequest,
			`{"action":"subscribe"}`},
		{"ack missing live", protocoltest.ComponentWebSocketSubscriptionConfirmed,
			`{"type":"SUBSCRIPTION_CONFIRMED","taskId":"t","replayStartedAfterEventId":null}`},
		{"ack wrong type", protocoltest.ComponentWebSocketSubscriptionConfirmed,
			`{"type":"CONFIRMED","taskId":"t","live":true}`},
		{"heartbeat live as string", protocoltest.ComponentWebSocketHeartbeat,
			`{"type":"HEARTBEAT","taskId":"t","live":"yes"}`},
		{"task event via component", protocoltest.ComponentTaskEvent,
			string(mutate(t, fx["task_message"], func(m map[string]any) { payloadOf(m)["x"] = 1 }))},
		{"unknown component", "NoSuchSchema", `{}`},
		{"not JSON", protocoltest.ComponentErrorResponse, `{`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Error(t, protocoltest.ComponentError(tc.component, []byte(tc.doc)))
			rec := &recorder{TB: t}
			protocoltest.ValidateComponent(rec, tc.component, []byte(tc.doc))
			require.True(t, rec.failed)
		})
	}

	// The same frames are valid with nullable members set to null.
	require.NoError(t, protocoltest.SubscribeFrameError([]byte(`{"action":"subscribe","taskId":"t","lastEventId":null}`)))
	require.NoError(t, protocoltest.SubscriptionConfirmedError([]byte(`{"type":"SUBSCRIPTION_CONFIRMED","taskId":"t","replayStartedAfterEventId":null,"live":false}`)))
	require.NoError(t, protocoltest.ComponentError(protocoltest.ComponentPollEventsResponse,
		[]byte(`{"taskId":"t","events":[],"nextAfterEventId":null,"hasMore":false}`)))
}

func TestServerFrameErrorDispatchesOnType(t *testing.T) {
	t.Parallel()
	// A heartbeat missing "live" is not mistaken for an event, and an
	// object with no type is checked (and rejected) as an event.
	require.ErrorContains(t, protocoltest.ServerFrameError([]byte(`{"type":"HEARTBEAT","taskId":"t"}`)), "WebSocketHeartbeat")
	require.ErrorContains(t, protocoltest.ServerFrameError([]byte(`{"type":"SUBSCRIPTION_CONFIRMED","taskId":"t"}`)), "WebSocketSubscriptionConfirmed")
	require.Error(t, protocoltest.ServerFrameError([]byte(`{"taskId":"t","live":true}`)))
	require.Error(t, protocoltest.ServerFrameError([]byte(`[]`)))
}

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

const (
	envelope        = `{"code":"REQUEST_VALIDATION_ERROR","message":"Request validation failed","details":{"errors":[{"field":"taskType","message":"required"}]},"timestamp":"2026-05-04T12:00:00Z"}`
	envelopeNoCode  = `{"message":"Request validation failed","details":{},"timestamp":"2026-05-04T12:00:00Z"}`
	createdBody     = `{"taskId":"t1","status":"ACCEPTED","clientRequestId":"r1","deduplicated":false}`
	actionBody      = `{"taskId":"t1","suspendId":"s1","clientActionId":"c1","status":"ACCEPTED"}`
	actionBodyExtra = `{"taskId":"t1","suspendId":"s1","clientActionId":"c1","status":"ACCEPTED","x":1}`
	expiredBody     = `{"code":"EVENTS_EXPIRED","message":"gone","details":{},"timestamp":"2026-05-04T12:00:00Z"}`
	tooManyBody     = `{"code":"TOO_MANY_TASKS","message":"Too many tasks","details":{},"timestamp":"2026-05-04T12:00:00Z"}`
	snapshotBody    = `{"taskId":"t1","status":"RUNNING","taskType":"demo","clientRequestId":"r1",` +
		`"createdAt":"2026-05-04T12:00:00.000Z","updatedAt":"2026-05-04T12:00:01.000Z","lastEventId":"2","cancelRequested":false,` +
		`"suspension":{"suspendId":"s1","kind":"USER_ACTION_REQUIRED","reasonCode":"confirm","allowedActions":["ok"],"schemaVersion":1}}`
)

var (
	upgradeHeader = http.Header{"Content-Type": {"application/json"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"}} // canonical keys
	streamHeader  = http.Header{"Content-Type": {"text/event-stream"}, "Cache-Control": {"no-cache, no-transform"}, "X-Accel-Buffering": {"no"}}
)

func TestResponseError(t *testing.T) {
	t.Parallel()
	fx := protocoltest.Fixtures(t)
	poll := string(fx["poll_events_response"])
	pollBadEvent := string(mutate(t, fx["poll_events_response"], func(m map[string]any) {
		ev := m["events"].([]any)[0].(map[string]any)
		ev["payload"].(map[string]any)["extra"] = "x"
	}))
	cases := []struct {
		name         string
		method, url  string
		status       int
		header       http.Header
		body         string
		wantErr      string // "" means valid
		wantNoErrMsg string
	}{
		// Documented operations and statuses.
		{name: "poll ok", method: "GET", url: "http://127.0.0.1:4321/api/v1/tasks/task_123/events?afterEventId=2", status: 200, header: jsonHeader, body: poll},
		{name: "poll ok on documented host", method: "GET", url: "https://api.example.com/api/v1/tasks/task_123/events", status: 200, header: jsonHeader, body: poll},
		{name: "poll ok with charset", method: "GET", url: "http://x/api/v1/tasks/t/events", status: 200,
			header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}, body: poll},
		{name: "poll event with extra payload field", method: "GET", url: "http://x/api/v1/tasks/t/events", status: 200, header: jsonHeader, body: pollBadEvent, wantErr: "events[0]"},
		{name: "poll wrong content type", method: "GET", url: "http://x/api/v1/tasks/t/events", status: 200,
			header: http.Header{"Content-Type": {"text/plain"}}, body: poll, wantErr: "Content-Type"},
		{name: "poll events null", method: "GET", url: "http://x/api/v1/tasks/t/events", status: 200, header: jsonHeader,
			body: `{"taskId":"t","events":null,"nextAfterEventId":null,"hasMore":false}`, wantErr: "events"},
		{name: "create 201", method: "POST", url: "http://x/api/v1/tasks", status: 201, header: jsonHeader, body: createdBody},
		{name: "create 200 dedup", method: "POST", url: "http://x/api/v1/tasks", status: 200, header: jsonHeader,
			body: `{"taskId":"t1","status":"RUNNING","clientRequestId":"r1","deduplicated":true}`},
		{name: "create undocumented 202", method: "POST", url: "http://x/api/v1/tasks", status: 202, header: jsonHeader, body: createdBody, wantErr: "not documented"},
		{name: "create bad status enum", method: "POST", url: "http://x/api/v1/tasks", status: 201, header: jsonHeader,
			body: `{"taskId":"t1","status":"NEW","clientRequestId":"r1"}`, wantErr: "status"},
		{name: "cancel ok", method: "POST", url: "http://x/api/v1/tasks/t1/cancel", status: 202, header: jsonHeader,
			body: `{"taskId":"t1","status":"ALREADY_TERMINAL"}`},
		{name: "cancel wrong status enum", method: "POST", url: "http://x/api/v1/tasks/t1/cancel", status: 202, header: jsonHeader,
			body: `{"taskId":"t1","status":"CANCELLED"}`, wantErr: "status"},
		{name: "cancel 200 undocumented", method: "POST", url: "http://x/api/v1/tasks/t1/cancel", status: 200, header: jsonHeader,
			body: `{"taskId":"t1","status":"CANCELLATION_REQUESTED"}`, wantErr: "not documented"},
		{name: "action 202", method: "POST", url: "http://x/api/v1/tasks/t1/actions", status: 202, header: jsonHeader, body: actionBody},
		{name: "action 200", method: "POST", url: "http://x/api/v1/tasks/t1/actions", status: 200, header: jsonHeader,
			body: `{"taskId":"t1","suspendId":"s1","clientActionId":"c1","status":"DEDUPLICATED"}`},
		{name: "action extra field", method: "POST", url: "http://x/api/v1/tasks/t1/actions", status: 202, header: jsonHeader, body: actionBodyExtra, wantErr: "x"},
		{name: "websocket 101", method: "GET", url: "http://x/api/v1/tasks/ws", status: 101, header: http.Header{}},
		{name: "SSE on the events path", method: "GET", url: "http://x/api/v1/tasks/t1/events", status: 200,
			header: http.Header{"Content-Type": {"text/event-stream"}}, body: "id: 1\ndata: {}\n\n", wantErr: "text/event-stream"},
		{name: "HEAD is not checked", method: "HEAD", url: "http://x/api/v1/tasks/t1/events", status: 200, header: jsonHeader},

		// Error statuses: always an ErrorResponse.
		{name: "documented 404", method: "GET", url: "http://x/api/v1/tasks/t1/events", status: 404, header: jsonHeader, body: envelope},
		{name: "documented 404 bad envelope", method: "GET", url: "http://x/api/v1/tasks/t1/events", status: 404, header: jsonHeader, body: envelopeNoCode, wantErr: "code"},
		{name: "undocumented 422", method: "POST", url: "http://x/api/v1/tasks", status: 422, header: jsonHeader, body: envelope},
		{name: "undocumented 422 bad envelope", method: "POST", url: "http://x/api/v1/tasks", status: 422, header: jsonHeader, body: envelopeNoCode, wantErr: "code"},
		{name: "410 with another code", method: "GET", url: "http://x/api/v1/tasks/t1/events", status: 410, header: jsonHeader, body: envelope, wantErr: "EVENTS_EXPIRED"},
		{name: "410", method: "GET", url: "http://x/api/v1/tasks/t1/events", status: 410, header: jsonHeader, body: expiredBody},
		{name: "410 not JSON", method: "GET", url: "http://x/api/v1/tasks/t1/events", status: 410, header: jsonHeader, body: "gone", wantErr: "JSON"},
		{name: "503 text/plain", method: "POST", url: "http://x/api/v1/tasks", status: 503,
			header: http.Header{"Content-Type": {"text/plain"}}, body: envelope, wantErr: "Content-Type"},
		{name: "500", method: "POST", url: "http://x/api/v1/tasks/t1/cancel", status: 500, header: jsonHeader, body: envelope},
		{name: "websocket 426", method: "GET", url: "http://x/api/v1/tasks/ws", status: 426, header: upgradeHeader, body: expiredBody},
		{name: "websocket 426 bad envelope", method: "GET", url: "http://x/api/v1/tasks/ws", status: 426, header: upgradeHeader, body: envelopeNoCode, wantErr: "code"},
		{name: "websocket 426 without Upgrade", method: "GET", url: "http://x/api/v1/tasks/ws", status: 426, header: jsonHeader, body: expiredBody, wantErr: "header"},
		{name: "422 without field errors", method: "POST", url: "http://x/api/v1/tasks", status: 422, header: jsonHeader,
			body: `{"code":"REQUEST_VALIDATION_ERROR","message":"m","details":{},"timestamp":"2026-05-04T12:00:00Z"}`, wantErr: "errors"},
		{name: "429", method: "POST", url: "http://x/api/v1/tasks", status: 429,
			header: http.Header{"Content-Type": {"application/json"}, "Retry-After": {"1"}}, body: tooManyBody},
		{name: "429 without Retry-After", method: "POST", url: "http://x/api/v1/tasks", status: 429, header: jsonHeader, body: tooManyBody, wantErr: "Retry-After"},
		{name: "error status the operation never answers", method: "POST", url: "http://x/api/v1/tasks", status: 410, header: jsonHeader, body: expiredBody, wantErr: "not documented"},
		{name: "routing 404 on a documented path", method: "POST", url: "http://x/api/v1/tasks", status: 404, header: jsonHeader,
			body: `{"code":"INVALID_REQUEST","message":"No such route","details":{},"timestamp":"2026-05-04T12:00:00Z"}`},

		// Routes the v1 document does not describe, but the served one does.
		{name: "get task", method: "GET", url: "http://x/api/v1/tasks/t1", status: 200, header: jsonHeader, body: snapshotBody},
		{name: "get task extra member", method: "GET", url: "http://x/api/v1/tasks/t1", status: 200, header: jsonHeader, body: `{"anything":1}`, wantErr: "TaskSnapshot"},
		{name: "get task time format", method: "GET", url: "http://x/api/v1/tasks/t1", status: 200, header: jsonHeader,
			body: strings.Replace(snapshotBody, "00.000Z", "00Z", 1), wantErr: "createdAt"},
		{name: "list tasks", method: "GET", url: "http://x/api/v1/tasks", status: 200, header: jsonHeader, body: `{"tasks":[],"nextCursor":null}`},
		{name: "list tasks not an object", method: "GET", url: "http://x/api/v1/tasks", status: 200, header: jsonHeader, body: `[]`, wantErr: "TaskList"},
		{name: "health", method: "GET", url: "http://x/health", status: 200, header: jsonHeader, body: `{"status":"ok"}`},
		{name: "health 503", method: "GET", url: "http://x/health", status: 503, header: jsonHeader, body: envelope, wantErr: "not documented"},
		{name: "ready", method: "GET", url: "http://x/ready", status: 503, header: jsonHeader,
			body: `{"status":"not_ready","details":{"store":{"status":"not_ready","message":"down"}}}`},
		{name: "ready without details", method: "GET", url: "http://x/ready", status: 200, header: jsonHeader, body: `{"status":"ready"}`, wantErr: "details"},
		{name: "HEAD ready", method: "HEAD", url: "http://x/ready", status: 503, header: jsonHeader},
		{name: "stream", method: "GET", url: "http://x/api/v1/tasks/t1/events/stream", status: 200, header: streamHeader},
		{name: "stream without X-Accel-Buffering", method: "GET", url: "http://x/api/v1/tasks/t1/events/stream", status: 200,
			header: http.Header{"Content-Type": {"text/event-stream"}, "Cache-Control": {"no-cache, no-transform"}}, wantErr: "X-Accel-Buffering"},
		{name: "stream as JSON", method: "GET", url: "http://x/api/v1/tasks/t1/events/stream", status: 200,
			header: http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"no-cache, no-transform"}, "X-Accel-Buffering": {"no"}},
			body:   "{}", wantErr: "Content-Type"},

		// Paths and methods neither document describes.
		{name: "host route", method: "GET", url: "http://x/metrics", status: 200, header: http.Header{"Content-Type": {"text/plain"}}, body: "up 1"},
		{name: "HEAD on poll", method: "HEAD", url: "http://x/api/v1/tasks/t1/events", status: 200, header: jsonHeader},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(tc.method, tc.url, nil)
			err := protocoltest.ResponseError(req, tc.status, tc.header, []byte(tc.body))
			rec := &recorder{TB: t}
			protocoltest.ValidateResponse(rec, req, tc.status, tc.header, []byte(tc.body))
			if tc.wantErr == "" {
				require.NoError(t, err)
				require.False(t, rec.failed, rec.msg)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
			require.True(t, rec.failed)
			require.Contains(t, rec.msg, "does not match the OpenAPI document")
		})
	}
}

func TestValidateHTTP(t *testing.T) {
	t.Parallel()
	poll := protocoltest.Fixture(t, "poll_events_response")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/events"):
			_, _ = w.Write(poll)
		case strings.HasSuffix(r.URL.Path, "/cancel"):
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"taskId":"t1","status":"DONE"}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"code":"TASK_NOT_FOUND","message":"Task not found","details":{},"timestamp":"2026-05-04T12:00:00Z"}`)
		}
	}))
	t.Cleanup(srv.Close)

	do := func(method, path string) (*http.Response, []byte) {
		req, err := http.NewRequest(method, srv.URL+path, nil)
		require.NoError(t, err)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, body
	}

	resp, body := do("GET", "/api/v1/tasks/task_123/events")
	protocoltest.ValidateHTTP(t, resp, body)
	resp, body = do("POST", "/api/v1/tasks/nope/actions")
	protocoltest.ValidateHTTP(t, resp, body)

	resp, body = do("POST", "/api/v1/tasks/t1/cancel")
	rec := &recorder{TB: t}
	protocoltest.ValidateHTTP(rec, resp, body)
	require.True(t, rec.failed)
	require.Contains(t, rec.msg, "/api/v1/tasks/{taskId}/cancel")

	rec = &recorder{TB: t}
	protocoltest.ValidateHTTP(rec, &http.Response{StatusCode: 200}, nil)
	require.True(t, rec.failed)
	require.Contains(t, rec.msg, "resp.Request")
}

func TestValidatorsAreSafeForConcurrentUse(t *testing.T) {
	t.Parallel()
	poll := protocoltest.Fixture(t, "poll_events_response")
	done := make(chan error, 8)
	for range 8 {
		go func() {
			req := httptest.NewRequest("GET", "http://x/api/v1/tasks/t/events", nil)
			var err error
			for range 20 {
				if err = protocoltest.ResponseError(req, 200, jsonHeader, poll); err != nil {
					break
				}
			}
			done <- err
		}()
	}
	for range 8 {
		require.NoError(t, <-done)
	}
}
