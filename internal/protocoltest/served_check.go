package protocoltest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Document is an OpenAPI 3.1 document that responses are checked
// against: the served document ([ServedDocument]) or a handler's own
// ([LoadDocument]). Unlike the v1 document it is self-contained, so
// kin-openapi validates it (doc.Validate) and checks bodies with its JSON
// Schema 2020-12 validator, conditionals included. It is safe for
// concurrent use.
type Document struct {
	doc    *openapi3.T
	router routers.Router
}

// LoadDocument parses and validates an OpenAPI document that refers to
// nothing outside itself, such as the one
// httpapi.Handler.OpenAPIDocument returns, for checking responses. Its
// servers are ignored: paths match on any host, as written.
func LoadDocument(raw []byte) (*Document, error) {
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		return nil, fmt.Errorf("protocoltest: loading document: %w", err)
	}
	return newDocument(doc)
}

func newDocument(doc *openapi3.T) (*Document, error) {
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("protocoltest: not a valid OpenAPI document: %w", err)
	}
	doc.Servers = nil // match any host, as for the v1 document
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("protocoltest: building router: %w", err)
	}
	return &Document{doc: doc, router: r}, nil
}

// The committed served document, loaded once.
var served struct {
	once sync.Once
	err  error
	doc  *Document
}

// ServedDocument returns the committed served document
// (httpapi/openapi/[ServedFile]): every route the library serves, at its
// default path.
func ServedDocument() (*Document, error) {
	served.once.Do(func() {
		path := filepath.Join(OpenAPIDir(), ServedFile)
		doc, err := openapi3.NewLoader().LoadFromFile(path)
		if err != nil {
			served.err = fmt.Errorf("protocoltest: loading %s: %w", ServedFile, err)
			return
		}
		if served.doc, err = newDocument(doc); err != nil {
			served.err = fmt.Errorf("protocoltest: %s: %w", ServedFile, err)
		}
	})
	return served.doc, served.err
}

// ServedDocumentError loads the committed served document
// (httpapi/openapi/[ServedFile]) and returns why kin-openapi does not
// accept it as an OpenAPI document, or nil.
func ServedDocumentError() error {
	_, err := ServedDocument()
	return err
}

// ExtensionError loads the extension document ([ExtensionFile]) on its
// own, following its references into the v1 document, and returns why
// kin-openapi does not accept it as an OpenAPI document, or nil.
func ExtensionError() error {
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = true
	doc, err := loader.LoadFromFile(filepath.Join(OpenAPIDir(), ExtensionFile))
	if err != nil {
		return fmt.Errorf("protocoltest: loading %s: %w", ExtensionFile, err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return fmt.Errorf("protocoltest: %s is not a valid OpenAPI document: %w", ExtensionFile, err)
	}
	return nil
}

// visitJSON validates raw against schema s (named name in errors) with
// the JSON Schema 2020-12 validator.
func visitJSON(name string, s *openapi3.Schema, raw []byte) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("not a single JSON document: %w", err)
	}
	if err := s.VisitJSON(v, openapi3.VisitAsResponse(), openapi3.EnableJSONSchema2020()); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// ResponseError checks an HTTP response to req against d and returns why
// it does not conform, or nil. A request for a path or method d does not
// describe is not checked, nor is a router's 404 INVALID_REQUEST (a route
// the handler does not serve). Otherwise the status must be documented for
// the operation, error statuses included, and openapi3filter validates the
// response's headers (such as Retry-After on a 429) and, except for HEAD
// requests and event streams, its Content-Type and body. The frames of an
// event stream are checked with [SSEFrameError].
func (d *Document) ResponseError(req *http.Request, status int, header http.Header, body []byte) error {
	route, params, err := findRoute(d.router, req)
	if route == nil {
		return err
	}
	where := fmt.Sprintf("OpenAPI document: %s %s (%s) -> %d", req.Method, req.URL.Path, route.Path, status)
	if status == http.StatusNotFound && isRoutingRefusal(body) {
		// The handler serving the request does not serve this route (it
		// was moved, or not configured): no operation answered.
		return nil
	}
	if route.Operation.Responses.Status(status) == nil {
		return fmt.Errorf("%s: status %d is not documented for this operation", where, status)
	}
	if req.Method == http.MethodHead {
		return nil
	}
	mediaType, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	if mediaType == "text/event-stream" {
		if mt := route.Operation.Responses.Status(status).Value.Content.Get(mediaType); mt == nil {
			return fmt.Errorf("%s: response Content-Type %q is not documented", where, mediaType)
		}
	}
	// A stream's frames are checked one by one: SSEFrameError.
	if err := checkResponse(route, params, req, status, header, body, mediaType == "text/event-stream"); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

// findRoute finds req's operation. A path or method the router does not
// describe gives a nil route and a nil error.
func findRoute(r routers.Router, req *http.Request) (*routers.Route, map[string]string, error) {
	route, params, err := r.FindRoute(req)
	if err != nil {
		if errors.Is(err, routers.ErrPathNotFound) || errors.Is(err, routers.ErrMethodNotAllowed) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("%s %s: finding route: %w", req.Method, req.URL.Path, err)
	}
	return route, params, nil
}

// checkResponse validates a response with a status the operation
// documents with openapi3filter: headers, and unless excludeBody, the
// Content-Type and body.
func checkResponse(route *routers.Route, params map[string]string, req *http.Request, status int, header http.Header, body []byte, excludeBody bool) error {
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route:      route,
		},
		Status: status,
		Header: header,
		Body:   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			ExcludeResponseBody:   excludeBody,
		},
	}
	return openapi3filter.ValidateResponse(context.Background(), in)
}

// ValidateResponse fails t unless the response to req conforms to d (see
// [Document.ResponseError]).
func (d *Document) ValidateResponse(t testing.TB, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	if err := d.ResponseError(req, status, header, body); err != nil {
		t.Fatalf("protocoltest: response does not match the OpenAPI document: %v\nbody: %s", err, excerpt(body))
	}
}

// RequestError checks a request (with its body, nil for none) against d
// with openapi3filter and returns why it does not conform, or nil: its
// path, query and header parameters, Content-Type and body. A request for
// a path or method d does not describe is not checked. It suits requests
// the server accepted (a 2xx answer): a request d refuses but the server
// accepted shows a document stricter than the server.
func (d *Document) RequestError(req *http.Request, body []byte) error {
	route, params, err := findRoute(d.router, req)
	if route == nil {
		return err
	}
	r := req.Clone(context.Background())
	r.Body = http.NoBody
	if body != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	}
	in := &openapi3filter.RequestValidationInput{
		Request:    r,
		PathParams: params,
		Route:      route,
		Options:    &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		return fmt.Errorf("OpenAPI document: request %s %s (%s): %w", req.Method, req.URL.Path, route.Path, err)
	}
	return nil
}

// servedResponseError checks a response against the served document.
func servedResponseError(req *http.Request, status int, header http.Header, body []byte) error {
	d, err := ServedDocument()
	if err != nil {
		return err
	}
	return d.ResponseError(req, status, header, body)
}

// isRoutingRefusal reports whether an error body is a router's answer
// for a path it does not serve: 404 INVALID_REQUEST, as opposed to an
// operation's 404 TASK_NOT_FOUND.
func isRoutingRefusal(body []byte) bool {
	var env struct {
		Code string `json:"code"`
	}
	return json.Unmarshal(body, &env) == nil && env.Code == "INVALID_REQUEST"
}

// SSE frame schemas: the extensions of the stream operation that name the
// schema of a frame with an id line (an event) and without one (a
// heartbeat).
const (
	sseEventFrameExt     = "x-taskbridge-sse-event-frame"
	sseHeartbeatFrameExt = "x-taskbridge-sse-heartbeat-frame"
	streamPath           = "/api/v1/tasks/{taskId}/events/stream"
)

// SSEFrameError validates the data of one SSE frame against the served
// document's stream operation: a frame with an id line must be an event
// (the schema named by x-taskbridge-sse-event-frame, and the v1 event
// schema) whose eventId is that id, and a frame without one a heartbeat
// (x-taskbridge-sse-heartbeat-frame). Frames without data (comments, the
// retry field) have nothing to check.
func SSEFrameError(id string, hasID bool, data []byte) error {
	if len(data) == 0 && !hasID {
		return nil
	}
	ext := sseHeartbeatFrameExt
	if hasID {
		ext = sseEventFrameExt
	}
	name, s, err := frameSchema(ext)
	if err != nil {
		return err
	}
	if err := visitJSON(name, s, data); err != nil {
		return err
	}
	if !hasID {
		return nil
	}
	if err := EventError(data); err != nil {
		return err
	}
	var ev struct {
		EventID string `json:"eventId"`
	}
	if err := json.Unmarshal(data, &ev); err != nil || ev.EventID != id {
		return fmt.Errorf("SSE frame id %q does not match the event's eventId %q", id, ev.EventID)
	}
	return nil
}

// ValidateSSEFrame fails t unless an SSE frame is valid (see
// [SSEFrameError]).
func ValidateSSEFrame(t testing.TB, id string, hasID bool, data []byte) {
	t.Helper()
	if err := SSEFrameError(id, hasID, data); err != nil {
		t.Fatalf("protocoltest: invalid SSE frame: %v\n%s", err, excerpt(data))
	}
}

// frameSchema resolves a frame extension of the stream operation to its
// component schema.
func frameSchema(ext string) (string, *openapi3.Schema, error) {
	d, err := ServedDocument()
	if err != nil {
		return "", nil, err
	}
	doc := d.doc
	item := doc.Paths.Value(streamPath)
	if item == nil || item.Get == nil {
		return "", nil, fmt.Errorf("protocoltest: the served document lacks GET %s", streamPath)
	}
	ref, _ := item.Get.Extensions[ext].(map[string]any)["$ref"].(string)
	name, ok := strings.CutPrefix(ref, "#/components/schemas/")
	if !ok || doc.Components.Schemas[name] == nil {
		return "", nil, fmt.Errorf("protocoltest: %s of GET %s names no component schema", ext, streamPath)
	}
	return name, doc.Components.Schemas[name].Value, nil
}
