package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/httpapi"
	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
	"github.com/taskbridge-go/taskbridge/memstore"
)

// fakeExec is a TaskExecutor that only records what it is asked to do.
type fakeExec struct {
	mu        sync.Mutex
	submitted []taskbridge.Task
	cancelled []string
	submitErr error
}

func (e *fakeExec) Submit(_ context.Context, task taskbridge.Task, _ taskbridge.Emitter) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.submitErr != nil {
		return e.submitErr
	}
	e.submitted = append(e.submitted, task)
	return nil
}

func (e *fakeExec) Cancel(_ context.Context, task taskbridge.Task) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cancelled = append(e.cancelled, task.ID)
	return nil
}

func (e *fakeExec) setSubmitErr(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.submitErr = err
}

func (e *fakeExec) tasks() []taskbridge.Task {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]taskbridge.Task(nil), e.submitted...)
}

func (e *fakeExec) cancels() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.cancelled...)
}

// testClock is a settable clock for the service.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// bearerAuth authenticates "Authorization: Bearer <subject>".
var bearerAuth = taskbridge.AuthFunc(func(r *http.Request) (taskbridge.AuthContext, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return taskbridge.AuthContext{}, taskbridge.ErrUnauthenticated
	}
	return taskbridge.AuthContext{Subject: tok}, nil
})

type options struct {
	cfg    httpapi.Config
	svc    taskbridge.Config
	store  memstore.Config
	prefix string
	// wrapStore, when set, wraps the memstore given to the service.
	wrapStore func(*memstore.Store) taskbridge.Store
	// mount wraps the handler as the host would; prefix is the path the
	// API lives under.
	mount func(h http.Handler) http.Handler
}

type option func(*options)

func withConfig(f func(*httpapi.Config)) option { return func(o *options) { f(&o.cfg) } }

func withService(f func(*taskbridge.Config)) option { return func(o *options) { f(&o.svc) } }

type env struct {
	t       *testing.T
	svc     *taskbridge.Service
	handler *httpapi.Handler
	srv     *httptest.Server
	exec    *fakeExec
	store   *memstore.Store
	clock   *testClock
	sinkDir string
	// alice and bob are clients for two users; anon sends no credentials.
	alice, bob, anon *client
}

// setup starts a service over a memstore, the handler and an httptest
// server, all torn down with the test.
func setup(t *testing.T, opts ...option) *env {
	t.Helper()
	o := options{}
	for _, f := range opts {
		f(&o)
	}
	e := &env{t: t, exec: &fakeExec{}, clock: &testClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	store := memstore.New(o.store)
	e.store = store
	svcCfg := o.svc
	svcCfg.Store = store
	if o.wrapStore != nil {
		svcCfg.Store = o.wrapStore(store)
	}
	svcCfg.Executor = e.exec
	if svcCfg.Logger == nil {
		svcCfg.Logger = slog.New(slog.DiscardHandler)
	}
	if svcCfg.Now == nil {
		svcCfg.Now = e.clock.now
	}
	svc, err := taskbridge.New(svcCfg)
	require.NoError(t, err)
	e.svc = svc

	cfg := o.cfg
	if cfg.Auth == nil {
		cfg.Auth = bearerAuth
	}
	if cfg.Sink == nil {
		e.sinkDir = t.TempDir()
		cfg.Sink = &httpapi.TempDirSink{Dir: e.sinkDir}
	}
	h, err := httpapi.New(svc, cfg)
	require.NoError(t, err)
	e.handler = h

	var root http.Handler = h
	if o.mount != nil {
		root = o.mount(h)
	}
	e.srv = httptest.NewServer(root)
	t.Cleanup(func() {
		e.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, svc.Shutdown(ctx))
		require.NoError(t, store.Close())
	})
	doc, err := protocoltest.LoadDocument(h.OpenAPIDocument())
	require.NoError(t, err)
	e.alice = &client{t: t, base: e.srv.URL, prefix: o.prefix, user: "alice", doc: doc}
	e.bob = &client{t: t, base: e.srv.URL, prefix: o.prefix, user: "bob", doc: doc}
	e.anon = &client{t: t, base: e.srv.URL, prefix: o.prefix, doc: doc}
	return e
}

// spooled lists the files left in the sink directory.
func (e *env) spooled() []string {
	e.t.Helper()
	entries, err := os.ReadDir(e.sinkDir)
	require.NoError(e.t, err)
	names := make([]string, 0, len(entries))
	for _, en := range entries {
		names = append(names, en.Name())
	}
	return names
}

// emit appends an event to a task as its executor would.
func (e *env) emit(taskID string, p taskbridge.Payload) taskbridge.TaskEvent {
	e.t.Helper()
	ev, err := e.svc.Emitter(taskID).Emit(context.Background(), p)
	require.NoError(e.t, err)
	return ev
}

// createTask creates a task for alice and returns its id.
func (e *env) createTask(clientRequestID string) string {
	e.t.Helper()
	resp := e.alice.postJSON("/api/v1/tasks", map[string]any{
		"clientRequestId": clientRequestID, "taskType": "demo", "input": map[string]any{}, "metadata": map[string]any{},
	})
	require.Equal(e.t, http.StatusCreated, resp.Status, "%s", resp.Body)
	var created taskbridge.CreateTaskResponse
	resp.decode(&created)
	return created.TaskID
}

// response is a fully read HTTP response.
type response struct {
	t      *testing.T
	Status int
	Header http.Header
	Body   []byte
}

func (r response) decode(v any) {
	r.t.Helper()
	require.NoError(r.t, json.Unmarshal(r.Body, v), "%s", r.Body)
}

// errorCode asserts an error response's status and returns its envelope.
func (r response) errorEnvelope(status int, code string) taskbridge.ErrorEnvelope {
	r.t.Helper()
	require.Equal(r.t, status, r.Status, "%s", r.Body)
	var env taskbridge.ErrorEnvelope
	r.decode(&env)
	require.Equal(r.t, code, env.Code, "%s", r.Body)
	require.NotNil(r.t, env.Details)
	require.False(r.t, env.Timestamp.IsZero())
	return env
}

// fieldErrors returns the field names in a 422 envelope's details.errors.
func (r response) fieldErrors() []string {
	r.t.Helper()
	r.errorEnvelope(http.StatusUnprocessableEntity, taskbridge.CodeValidation)
	var env struct {
		Details struct {
			Errors []taskbridge.FieldError `json:"errors"`
		} `json:"details"`
	}
	r.decode(&env)
	fields := make([]string, 0, len(env.Details.Errors))
	for _, f := range env.Details.Errors {
		require.NotEmpty(r.t, f.Message)
		fields = append(fields, f.Field)
	}
	return fields
}

// client sends requests as one user and validates every response against
// the v1 OpenAPI document and the handler's own (Handler.OpenAPIDocument),
// and every event it carries against the event schema.
type client struct {
	t      *testing.T
	base   string
	prefix string
	user   string
	doc    *protocoltest.Document
	// lenient skips the check of accepted requests against the document,
	// for tests of what the handler accepts beyond it.
	lenient bool
}

// beyondDocument returns c not checking the requests the handler accepts
// against its OpenAPI document: for requests the handler accepts
// deliberately although the document does not describe them (JSON null for
// optional members, which the Android SDK sends for a cancel's reason; any
// +json media type; a cancel body without a JSON type).
func (c *client) beyondDocument() *client {
	c2 := *c
	c2.lenient = true
	return &c2
}

// on returns c reporting to t, for use in subtests.
func (c *client) on(t *testing.T) *client {
	c2 := *c
	c2.t = t
	return &c2
}

func (c *client) newRequest(ctx context.Context, method, path string, body io.Reader, contentType string) *http.Request {
	c.t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, c.base+c.prefix+path, body)
	require.NoError(c.t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.user != "" {
		req.Header.Set("Authorization", "Bearer "+c.user)
	}
	return req
}

// send performs req without validating; safe from any goroutine.
func send(req *http.Request) (int, http.Header, []byte, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

// check validates a response to req (whose path may carry the mount
// prefix) against the protocol.
func (c *client) check(req *http.Request, status int, header http.Header, body []byte) response {
	c.t.Helper()
	validate(c.t, c.doc, c.unprefixed(req), status, header, body)
	return response{t: c.t, Status: status, Header: header, Body: body}
}

// unprefixed is a body-less copy of req without the mount prefix.
func (c *client) unprefixed(req *http.Request) *http.Request {
	vreq := req.Clone(context.Background())
	vreq.Body = nil
	vreq.URL.Path = strings.TrimPrefix(req.URL.Path, c.prefix)
	vreq.URL.RawPath = ""
	return vreq
}

// checkExchange is check for a request sent with reqBody: a request the
// handler accepted (2xx) must also be valid against the handler's OpenAPI
// document. Multipart creates are left out: the v1 document describes one
// file field, "attachment", while the Android SDK sends "attachments"
// (both are accepted), and the server ignores text parts it does not know.
func (c *client) checkExchange(req *http.Request, reqBody []byte, status int, header http.Header, body []byte) response {
	c.t.Helper()
	resp := c.check(req, status, header, body)
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if status >= 200 && status < 300 && mt != "multipart/form-data" && !c.lenient {
		require.NoError(c.t, c.doc.RequestError(c.unprefixed(req), reqBody), "request body: %s", reqBody)
	}
	return resp
}

// validate checks one response: the v1 OpenAPI document and the handler's
// own document where they describe the route, the error envelope for
// every error, the event schema for every event.
func validate(t *testing.T, doc *protocoltest.Document, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	require.NoError(t, protocoltest.V1ResponseError(req, status, header, body), "%s", body)
	doc.ValidateResponse(t, req, status, header, body)
	if req.Method == http.MethodHead || status == http.StatusNotModified {
		return
	}
	require.Equal(t, "application/json", header.Get("Content-Type"), "%s %s", req.Method, req.URL)
	if strings.HasSuffix(req.URL.Path, "/ready") && (status == http.StatusOK || status == http.StatusServiceUnavailable) {
		// The readiness report, not an error envelope, also when not ready.
		var rep taskbridge.ReadinessReport
		require.NoError(t, json.Unmarshal(body, &rep))
		require.Equal(t, status == http.StatusOK, rep.Status == "ready", "%s", body)
		require.NotEmpty(t, rep.Details)
		return
	}
	if status >= 400 {
		protocoltest.ValidateErrorResponse(t, body)
		return
	}
	var withEvents struct {
		Events []json.RawMessage `json:"events"`
	}
	if json.Unmarshal(body, &withEvents) == nil {
		for _, ev := range withEvents.Events {
			protocoltest.ValidateEvent(t, ev)
		}
	}
}

func (c *client) doCtx(ctx context.Context, method, path string, body io.Reader, contentType string) response {
	c.t.Helper()
	var reqBody []byte
	if body != nil {
		var err error
		reqBody, err = io.ReadAll(body)
		require.NoError(c.t, err)
		body = bytes.NewReader(reqBody)
	}
	req := c.newRequest(ctx, method, path, body, contentType)
	status, header, b, err := send(req)
	require.NoError(c.t, err)
	return c.checkExchange(req, reqBody, status, header, b)
}

func (c *client) do(method, path string, body io.Reader, contentType string) response {
	c.t.Helper()
	return c.doCtx(context.Background(), method, path, body, contentType)
}

func (c *client) get(path string) response {
	c.t.Helper()
	return c.do(http.MethodGet, path, nil, "")
}

func (c *client) postRaw(path, body string) response {
	c.t.Helper()
	return c.do(http.MethodPost, path, strings.NewReader(body), "application/json")
}

func (c *client) postJSON(path string, v any) response {
	c.t.Helper()
	b, err := json.Marshal(v)
	require.NoError(c.t, err)
	return c.do(http.MethodPost, path, bytes.NewReader(b), "application/json; charset=UTF-8")
}

// poll polls a task's events.
func (c *client) poll(taskID, query string) taskbridge.PollResponse {
	c.t.Helper()
	resp := c.get("/api/v1/tasks/" + taskID + "/events?" + query)
	require.Equal(c.t, http.StatusOK, resp.Status, "%s", resp.Body)
	var pr taskbridge.PollResponse
	resp.decode(&pr)
	return pr
}

// watchStore reports every Watch call: a long poll that is waiting for
// events has registered one.
type watchStore struct {
	*memstore.Store
	watched chan string
}

func (s *watchStore) Watch(taskID string, notify func()) func() {
	stop := s.Store.Watch(taskID, notify)
	select {
	case s.watched <- taskID:
	default:
	}
	return stop
}

func withWatchStore(ws **watchStore) option {
	return func(o *options) {
		o.wrapStore = func(s *memstore.Store) taskbridge.Store {
			*ws = &watchStore{Store: s, watched: make(chan string, 16)}
			return *ws
		}
	}
}

// waitWatched waits until a waiter registered for taskID.
func (s *watchStore) waitWatched(t *testing.T, taskID string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case id := <-s.watched:
			if id == taskID {
				return
			}
		case <-timeout:
			t.Fatalf("no waiter registered for task %s", taskID)
		}
	}
}

var errBlocked = errors.New("test reader released")
