package protocoltest

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// OpenAPI component schema names used by the helpers.
const (
	ComponentErrorResponse                  = "ErrorResponse"
	ComponentTaskCreatedResponse            = "TaskCreatedResponse"
	ComponentPollEventsResponse             = "PollEventsResponse"
	ComponentCancelTaskResponse             = "CancelTaskResponse"
	ComponentTaskEvent                      = "TaskEvent"
	ComponentTaskClientActionRequest        = "TaskClientActionRequest"
	ComponentTaskClientActionResponse       = "TaskClientActionResponse"
	ComponentWebSocketSubscribeRequest      = "WebSocketSubscribeRequest"
	ComponentWebSocketSubscriptionConfirmed = "WebSocketSubscriptionConfirmed"
	ComponentWebSocketHeartbeat             = "WebSocketHeartbeat"
)

// The OpenAPI document and a router over it, loaded once.
//
// kin-openapi quirks worked around here:
//
//   - The document is OpenAPI 3.0.3 but $refs ../schemas/*.json, which are
//     JSON Schema draft 2020-12 (with "$schema", "if"/"then", "const", type
//     arrays). Loading works with IsExternalRefsAllowed, but doc.Validate
//     rejects the document ("field $schema is for OpenAPI >=3.1"), so it is
//     not validated, and gorillamux.NewRouter is used because it does not
//     validate either (the legacy router does).
//   - kin-openapi's OpenAPI 3.0 validator ignores "if"/"then", so the per-type
//     payload rules of TaskEvent are not checked by openapi3filter: a
//     TASK_MESSAGE payload with an extra field passes. Every place a TaskEvent
//     or TaskClientAction* appears (poll events[], action responses) is
//     therefore validated again with the draft 2020-12 validator, see
//     [ComponentError].
//   - The document's only server is https://api.example.com and gorillamux
//     matches host and scheme against servers. The servers are cleared before
//     building the router, so any host (httptest's 127.0.0.1:port) matches
//     and paths are matched as written in the document.
//   - openapi3filter.ValidateResponse silently accepts a status that the
//     operation does not document unless IncludeResponseStatus is set; it is
//     set, and error statuses (>= 400) that the operation does not document
//     are checked against ErrorResponse only, see [ResponseError].
var api struct {
	once   sync.Once
	err    error
	doc    *openapi3.T
	router routers.Router
}

func loadAPI() (*openapi3.T, routers.Router, error) {
	api.once.Do(func() {
		loader := openapi3.NewLoader()
		loader.IsExternalRefsAllowed = true
		doc, err := loader.LoadFromFile(Path("openapi", "taskbridge.openapi.yaml"))
		if err != nil {
			api.err = fmt.Errorf("protocoltest: loading OpenAPI document: %w", err)
			return
		}
		// Match any host: see the quirks above.
		doc.Servers = nil
		r, err := gorillamux.NewRouter(doc)
		if err != nil {
			api.err = fmt.Errorf("protocoltest: building router: %w", err)
			return
		}
		api.doc, api.router = doc, r
	})
	return api.doc, api.router, api.err
}

// ComponentError validates raw against components/schemas/<name> of the
// OpenAPI document and returns why it does not conform, or nil.
//
// OpenAPI 3.0 schemas are checked with kin-openapi (response semantics,
// date-time formats asserted). Because kin-openapi ignores the draft 2020-12
// conditionals of the $ref'd schema files, TaskEvent, TaskClientActionRequest
// and TaskClientActionResponse are also checked with the JSON Schema
// validator, and so is every element of PollEventsResponse.events.
func ComponentError(name string, raw []byte) error {
	doc, _, err := loadAPI()
	if err != nil {
		return err
	}
	ref := doc.Components.Schemas[name]
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("protocoltest: no component schema %q", name)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("not a single JSON document: %w", err)
	}
	if err := ref.Value.VisitJSON(v, openapi3.VisitAsResponse()); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return draft2020Check(name, raw)
}

// draft2020Check validates the parts of component name that kin-openapi
// cannot: the draft 2020-12 schema files.
func draft2020Check(name string, raw []byte) error {
	switch name {
	case ComponentTaskEvent:
		return EventError(raw)
	case ComponentTaskClientActionRequest:
		return ActionRequestError(raw)
	case ComponentTaskClientActionResponse:
		return ActionResponseError(raw)
	case ComponentPollEventsResponse:
		var poll struct {
			Events []json.RawMessage `json:"events"`
		}
		if err := json.Unmarshal(raw, &poll); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for i, ev := range poll.Events {
			if err := EventError(ev); err != nil {
				return fmt.Errorf("%s: events[%d]: %w", name, i, err)
			}
		}
	}
	return nil
}

// ErrorResponseError validates raw against components/schemas/ErrorResponse.
func ErrorResponseError(raw []byte) error { return ComponentError(ComponentErrorResponse, raw) }

// SubscribeFrameError validates a client subscribe frame against
// components/schemas/WebSocketSubscribeRequest.
func SubscribeFrameError(raw []byte) error {
	return ComponentError(ComponentWebSocketSubscribeRequest, raw)
}

// SubscriptionConfirmedError validates a SUBSCRIPTION_CONFIRMED frame against
// components/schemas/WebSocketSubscriptionConfirmed.
func SubscriptionConfirmedError(raw []byte) error {
	return ComponentError(ComponentWebSocketSubscriptionConfirmed, raw)
}

// HeartbeatError validates a HEARTBEAT frame against
// components/schemas/WebSocketHeartbeat.
func HeartbeatError(raw []byte) error { return ComponentError(ComponentWebSocketHeartbeat, raw) }

// ServerFrameError validates any frame a server sends on the WebSocket: a
// SUBSCRIPTION_CONFIRMED or HEARTBEAT control frame, or else a TaskEvent.
func ServerFrameError(raw []byte) error {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return fmt.Errorf("not a JSON object frame: %w", err)
	}
	switch head.Type {
	case "SUBSCRIPTION_CONFIRMED":
		return SubscriptionConfirmedError(raw)
	case "HEARTBEAT":
		return HeartbeatError(raw)
	}
	return EventError(raw)
}

// ValidateComponent fails t unless raw conforms to
// components/schemas/<name> (see [ComponentError]).
func ValidateComponent(t testing.TB, name string, raw []byte) {
	t.Helper()
	if err := ComponentError(name, raw); err != nil {
		t.Fatalf("protocoltest: invalid %s: %v\n%s", name, err, excerpt(raw))
	}
}

// ValidateErrorResponse fails t unless raw is a protocol error envelope.
func ValidateErrorResponse(t testing.TB, raw []byte) {
	t.Helper()
	ValidateComponent(t, ComponentErrorResponse, raw)
}

// ValidateSubscribeFrame fails t unless raw is a valid client subscribe frame.
func ValidateSubscribeFrame(t testing.TB, raw []byte) {
	t.Helper()
	ValidateComponent(t, ComponentWebSocketSubscribeRequest, raw)
}

// ValidateSubscriptionConfirmed fails t unless raw is a valid
// SUBSCRIPTION_CONFIRMED frame.
func ValidateSubscriptionConfirmed(t testing.TB, raw []byte) {
	t.Helper()
	ValidateComponent(t, ComponentWebSocketSubscriptionConfirmed, raw)
}

// ValidateHeartbeat fails t unless raw is a valid HEARTBEAT frame.
func ValidateHeartbeat(t testing.TB, raw []byte) {
	t.Helper()
	ValidateComponent(t, ComponentWebSocketHeartbeat, raw)
}

// ValidateServerFrame fails t unless raw is a valid server WebSocket frame
// (see [ServerFrameError]).
func ValidateServerFrame(t testing.TB, raw []byte) {
	t.Helper()
	if err := ServerFrameError(raw); err != nil {
		t.Fatalf("protocoltest: invalid server WebSocket frame: %v\n%s", err, excerpt(raw))
	}
}

// ResponseError checks an HTTP response to req against the v1 OpenAPI
// document and the served document (v1 merged with the library's
// extensions, see [BuildServedDocument]), and returns why it does not
// conform, or nil.
//
// Against the v1 document:
//
//   - a request whose path or method the document does not describe (GET
//     /api/v1/tasks/{id}, GET /api/v1/tasks, /health, /ready, ...) is not
//     checked;
//   - a 2xx text/event-stream response (SSE, not described by the document)
//     is not checked, nor is a HEAD request;
//   - a status the operation documents is validated by openapi3filter
//     (Content-Type and body schema), and the body is validated again with
//     the draft 2020-12 schemas where the response's schema is, or contains,
//     one of them (poll events[], action responses);
//   - any other status below 400 is an error (undocumented success);
//   - every status >= 400, documented or not (422, 410, 503, 500, ...), must
//     carry an application/json body matching components/schemas/ErrorResponse.
//
// Against the served document, which describes every route the library
// serves at its default path: a request for a path or method it does not
// describe (a host's own route, a moved path) is not checked, nor is a
// router's 404 INVALID_REQUEST for a route the handler in the test does
// not serve; otherwise
// the status must be documented for the operation, error statuses
// included, and openapi3filter validates the response's headers (such as
// Retry-After on a 429) and, except for HEAD requests and event streams,
// its Content-Type and body. The frames of an event stream are checked
// with [SSEFrameError].
func ResponseError(req *http.Request, status int, header http.Header, body []byte) error {
	if err := V1ResponseError(req, status, header, body); err != nil {
		return err
	}
	return servedResponseError(req, status, header, body)
}

// V1ResponseError checks a response against the v1 document only (see
// [ResponseError] for the rules), for tests that check what the v1
// contract allows rather than what the library answers.
func V1ResponseError(req *http.Request, status int, header http.Header, body []byte) error {
	_, router, err := loadAPI()
	if err != nil {
		return err
	}
	if req.Method == http.MethodHead {
		return nil
	}
	route, params, err := findRoute(router, req)
	if route == nil {
		return err
	}
	where := fmt.Sprintf("%s %s (%s) -> %d", req.Method, req.URL.Path, route.Path, status)
	mediaType, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	if status < 400 && mediaType == "text/event-stream" {
		return nil
	}

	documented := route.Operation.Responses.Status(status)
	if documented != nil {
		if err := checkResponse(route, params, req, status, header, body, false); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	} else if status < 400 {
		return fmt.Errorf("%s: status %d is not documented for this operation", where, status)
	}

	if status >= 400 {
		if mediaType != "application/json" {
			return fmt.Errorf("%s: error response Content-Type is %q, want application/json",
				where, header.Get("Content-Type"))
		}
		if err := ErrorResponseError(body); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		return nil
	}

	if name := responseSchemaName(documented.Value, mediaType); name != "" {
		if err := draft2020Check(name, body); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	return nil
}

// responseSchemaName returns the component name a documented response's
// schema for mediaType refers to ("" when it is inline or absent).
func responseSchemaName(resp *openapi3.Response, mediaType string) string {
	if resp == nil {
		return ""
	}
	mt := resp.Content.Get(mediaType)
	if mt == nil || mt.Schema == nil {
		return ""
	}
	name, ok := strings.CutPrefix(mt.Schema.Ref, "#/components/schemas/")
	if !ok {
		return ""
	}
	return name
}

// ValidateResponse fails t unless the response (status, header, body) to
// req conforms to the OpenAPI document; see [ResponseError] for the rules.
func ValidateResponse(t testing.TB, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	if err := ResponseError(req, status, header, body); err != nil {
		t.Fatalf("protocoltest: response does not match the OpenAPI document: %v\nbody: %s", err, excerpt(body))
	}
}

// ValidateHTTP is [ValidateResponse] for a response received by an HTTP
// client (resp.Request must be set, as it is for http.Client responses);
// body is the already-read response body.
func ValidateHTTP(t testing.TB, resp *http.Response, body []byte) {
	t.Helper()
	if resp.Request == nil {
		t.Fatal("protocoltest: ValidateHTTP needs resp.Request")
		return
	}
	ValidateResponse(t, resp.Request, resp.StatusCode, resp.Header, body)
}
