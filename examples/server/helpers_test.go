package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
)

// testTimeout bounds every wait of a test.
const testTimeout = 15 * time.Second

// env is a demo server under test, served by httptest.
type env struct {
	app    *server
	ts     *httptest.Server // nil for a server in another process
	url    string
	client *http.Client
	seq    atomic.Int64
}

// remote returns an env for the server at url, running in another process.
func remote(url string) *env {
	return &env{url: url, client: &http.Client{}}
}

// testLogger sends the server's warnings and errors to the test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// setup starts a demo server; it is shut down when the test ends.
func setup(t testing.TB, cfgs ...config) *env {
	t.Helper()
	var cfg config
	if len(cfgs) > 0 {
		cfg = cfgs[0]
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.TaskGrace == 0 {
		cfg.TaskGrace = time.Millisecond // tasks still waiting when a test ends
	}
	app, err := newServer(cfg)
	require.NoError(t, err)
	return serve(t, app, app, nil)
}

// serve serves h (app's handler, possibly wrapped) with httptest, after
// configure (if set) adjusted the http.Server; app and the server are shut
// down when the test ends.
func serve(t testing.TB, app *server, h http.Handler, configure func(*http.Server)) *env {
	t.Helper()
	ts := httptest.NewUnstartedServer(h)
	ts.Config.RegisterOnShutdown(app.closeStreams)
	if configure != nil {
		configure(ts.Config)
	}
	ts.Start()
	t.Cleanup(ts.Close)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		require.NoError(t, app.shutdown(ctx))
	})
	return &env{app: app, ts: ts, url: ts.URL, client: ts.Client()}
}

// request sends an API request as user ("" sends no Authorization header),
// validates the response against the OpenAPI document and returns it with
// its body.
func (e *env) request(t testing.TB, method, path, user string, body any) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.url+path, rd)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+user)
	}
	resp, err := e.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	protocoltest.ValidateHTTP(t, resp, b)
	return resp, b
}

// requestJSON is request that also checks the status and decodes the body
// into a value of type T.
func requestJSON[T any](t testing.TB, e *env, method, path, user string, body any, wantStatus int) T {
	t.Helper()
	resp, b := e.request(t, method, path, user, body)
	require.Equal(t, wantStatus, resp.StatusCode, "body: %s", b)
	var v T
	require.NoError(t, json.Unmarshal(b, &v), "body: %s", b)
	return v
}

// requireError checks an error envelope's status and code.
func requireError(t testing.TB, resp *http.Response, body []byte, status int, code string) taskbridge.ErrorEnvelope {
	t.Helper()
	require.Equal(t, status, resp.StatusCode, "body: %s", body)
	protocoltest.ValidateErrorResponse(t, body)
	var env taskbridge.ErrorEnvelope
	require.NoError(t, json.Unmarshal(body, &env))
	require.Equal(t, code, env.Code, "body: %s", body)
	return env
}

// create creates a task as user and returns its id.
func (e *env) create(t testing.TB, user, taskType string, input any) string {
	t.Helper()
	resp := requestJSON[taskbridge.CreateTaskResponse](t, e, http.MethodPost, "/api/v1/tasks", user, map[string]any{
		"clientRequestId": fmt.Sprintf("test-%d", e.seq.Add(1)),
		"taskType":        taskType,
		"input":           input,
	}, http.StatusCreated)
	require.Equal(t, taskbridge.StatusAccepted, resp.Status)
	require.False(t, resp.Deduplicated)
	return resp.TaskID
}

// cancel requests cancellation of a task with an optional reason.
func (e *env) cancel(t testing.TB, user, taskID string, body any) taskbridge.CancelResponse {
	t.Helper()
	return requestJSON[taskbridge.CancelResponse](t, e, http.MethodPost,
		"/api/v1/tasks/"+taskID+"/cancel", user, body, http.StatusAccepted)
}

// act submits an action for a suspension.
func (e *env) act(t testing.TB, user, taskID, suspendID, actionType string) taskbridge.ActionResponse {
	t.Helper()
	resp, b := e.request(t, http.MethodPost, "/api/v1/tasks/"+taskID+"/actions", user, map[string]any{
		"clientActionId": fmt.Sprintf("action-%d", e.seq.Add(1)),
		"suspendId":      suspendID,
		"actionType":     actionType,
	})
	require.Contains(t, []int{http.StatusOK, http.StatusAccepted}, resp.StatusCode, "body: %s", b)
	protocoltest.ValidateActionResponse(t, b)
	var ar taskbridge.ActionResponse
	require.NoError(t, json.Unmarshal(b, &ar))
	return ar
}

// event is a received event with its payload decoded into a map.
type event struct {
	taskbridge.TaskEvent
	fields map[string]any
}

// decodeEvent validates raw against the event schema and decodes it.
func decodeEvent(t testing.TB, raw []byte) event {
	t.Helper()
	protocoltest.ValidateEvent(t, raw)
	var ev event
	require.NoError(t, json.Unmarshal(raw, &ev.TaskEvent))
	require.NoError(t, json.Unmarshal(ev.Payload, &ev.fields))
	_, err := taskbridge.DecodePayload(ev.TaskEvent)
	require.NoError(t, err, "payload %s", ev.Payload)
	return ev
}

// reader delivers a task's events over one transport.
type reader interface {
	// next returns the next event, failing the test when none comes in
	// time or the transport ends before the task's terminal event.
	next(t testing.TB) event
	close()
}

// transports are the ways a client can follow a task.
var transports = []string{"poll", "sse", "ws"}

// follow opens a reader for the task's events over transport.
func (e *env) follow(t testing.TB, transport, user, taskID string) reader {
	t.Helper()
	var r reader
	switch transport {
	case "poll":
		r = &pollReader{e: e, user: user, taskID: taskID}
	case "sse":
		r = e.openSSE(t, user, taskID, "", http.Header{"Authorization": {"Bearer " + user}})
	case "ws":
		r = e.openWS(t, user, taskID, nil)
	default:
		t.Fatalf("unknown transport %q", transport)
	}
	t.Cleanup(r.close)
	return r
}

// readUntil reads events until one satisfies stop (or is terminal) and
// returns them all.
func readUntil(t testing.TB, r reader, stop func(event) bool) []event {
	t.Helper()
	var evs []event
	for {
		ev := r.next(t)
		evs = append(evs, ev)
		if ev.Terminal() || (stop != nil && stop(ev)) {
			return evs
		}
	}
}

func isType(typ taskbridge.EventType) func(event) bool {
	return func(ev event) bool { return ev.Type == typ }
}

// pollReader long-polls GET .../events with the cursor of the last event.
type pollReader struct {
	e       *env
	user    string
	taskID  string
	cursor  string
	pending []event
}

func (p *pollReader) next(t testing.TB) event {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for len(p.pending) == 0 {
		require.True(t, time.Now().Before(deadline), "no event within %s", testTimeout)
		q := url.Values{"waitTimeoutMs": {"5000"}}
		if p.cursor != "" {
			q.Set("afterEventId", p.cursor)
		}
		resp, b := p.e.request(t, http.MethodGet, "/api/v1/tasks/"+p.taskID+"/events?"+q.Encode(), p.user, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
		var batch struct {
			TaskID           string            `json:"taskId"`
			Events           []json.RawMessage `json:"events"`
			NextAfterEventID *string           `json:"nextAfterEventId"`
		}
		require.NoError(t, json.Unmarshal(b, &batch))
		require.Equal(t, p.taskID, batch.TaskID)
		for _, raw := range batch.Events {
			p.pending = append(p.pending, decodeEvent(t, raw))
		}
		if len(batch.Events) > 0 {
			require.NotNil(t, batch.NextAfterEventID)
			p.cursor = *batch.NextAfterEventID
		}
	}
	ev := p.pending[0]
	p.pending = p.pending[1:]
	return ev
}

func (p *pollReader) close() {}

// sseReader reads GET .../events/stream.
type sseReader struct {
	resp       *http.Response
	br         *bufio.Reader
	cancel     context.CancelFunc
	heartbeats int
}

// openSSE opens a task's SSE stream with the given query and headers and
// checks that it started.
func (e *env) openSSE(t testing.TB, user, taskID, query string, hdr http.Header) *sseReader {
	t.Helper()
	resp, cancel := e.getSSE(t, taskID, query, hdr)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		cancel()
		t.Fatalf("SSE stream answered %d: %s", resp.StatusCode, b)
	}
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	protocoltest.ValidateHTTP(t, resp, nil) // the head, against the served document
	return &sseReader{resp: resp, br: bufio.NewReader(resp.Body), cancel: cancel}
}

// getSSE sends the stream request and returns the response unread; the
// returned cancel ends the request.
func (e *env) getSSE(t testing.TB, taskID, query string, hdr http.Header) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	u := e.url + "/api/v1/tasks/" + taskID + "/events/stream"
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := e.client.Do(req)
	if err != nil {
		cancel()
		require.NoError(t, err)
	}
	return resp, func() {
		cancel()
		_ = resp.Body.Close()
	}
}

func (s *sseReader) next(t testing.TB) event {
	t.Helper()
	for {
		f, err := streamtest.ReadSSE(s.br)
		require.NoError(t, err, "SSE stream ended before the terminal event")
		protocoltest.ValidateSSEFrame(t, f.ID, f.HasID, []byte(f.Data))
		if f.Data == "" {
			continue // a comment
		}
		if !f.HasID {
			var hb struct {
				Type    string `json:"type"`
				Payload struct {
					Live bool `json:"live"`
				} `json:"payload"`
			}
			require.NoError(t, json.Unmarshal([]byte(f.Data), &hb), "frame %q", f.Data)
			require.Equal(t, "HEARTBEAT", hb.Type, "frame without id: %q", f.Data)
			require.True(t, hb.Payload.Live)
			s.heartbeats++
			continue
		}
		ev := decodeEvent(t, []byte(f.Data))
		require.Equal(t, ev.EventID, f.ID, "the SSE id must be the eventId")
		return ev
	}
}

// end reads what follows the terminal event: the stream must end cleanly.
func (s *sseReader) end(t testing.TB) {
	t.Helper()
	_, err := streamtest.ReadSSE(s.br)
	require.ErrorIs(t, err, io.EOF)
}

func (s *sseReader) close() { s.cancel() }

// wsReader reads a WebSocket subscription.
type wsReader struct {
	c          *websocket.Conn
	taskID     string
	heartbeats int
}

// openWS dials the WebSocket as user (through the Authorization header
// unless query carries access_token), subscribes to the task from the
// cursor and checks the confirmation.
func (e *env) openWS(t testing.TB, user, taskID string, lastEventID *string) *wsReader {
	t.Helper()
	c := e.dialWS(t, user, "")
	frame := map[string]any{"action": "subscribe", "taskId": taskID}
	if lastEventID != nil {
		frame["lastEventId"] = *lastEventID
	}
	b, err := json.Marshal(frame)
	require.NoError(t, err)
	protocoltest.ValidateSubscribeFrame(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	require.NoError(t, c.Write(ctx, websocket.MessageText, b))
	_, msg, err := c.Read(ctx)
	require.NoError(t, err)
	protocoltest.ValidateSubscriptionConfirmed(t, msg)
	var conf taskbridge.SubscriptionConfirmedFrame
	require.NoError(t, json.Unmarshal(msg, &conf))
	require.Equal(t, taskID, conf.TaskID)
	return &wsReader{c: c, taskID: taskID}
}

// dialWS opens the WebSocket, authenticated by the Authorization header
// (user set) and/or the query.
func (e *env) dialWS(t testing.TB, user, query string) *websocket.Conn {
	t.Helper()
	c, resp, err := e.tryDialWS(user, query)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	require.NoError(t, err)
	return c
}

func (e *env) tryDialWS(user, query string) (*websocket.Conn, *http.Response, error) {
	u := "ws" + strings.TrimPrefix(e.url, "http") + "/api/v1/tasks/ws"
	if query != "" {
		u += "?" + query
	}
	hdr := http.Header{}
	if user != "" {
		hdr.Set("Authorization", "Bearer "+user)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	return websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: hdr, HTTPClient: e.client})
}

func (w *wsReader) next(t testing.TB) event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for {
		typ, msg, err := w.c.Read(ctx)
		require.NoError(t, err, "WebSocket ended before the terminal event")
		require.Equal(t, websocket.MessageText, typ)
		require.NoError(t, protocoltest.ServerFrameError(msg), "frame %s", msg)
		var head struct {
			Type string `json:"type"`
		}
		require.NoError(t, json.Unmarshal(msg, &head))
		if head.Type == taskbridge.FrameHeartbeat {
			w.heartbeats++
			continue
		}
		ev := decodeEvent(t, msg)
		require.Equal(t, w.taskID, ev.TaskID)
		return ev
	}
}

// closeStatus reads until the socket closes and returns the close code.
func (w *wsReader) closeStatus(t testing.TB) websocket.StatusCode {
	t.Helper()
	code, err := w.readClose()
	require.NoError(t, err)
	return code
}

// readClose is closeStatus for other goroutines than the test's.
func (w *wsReader) readClose() (websocket.StatusCode, error) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for {
		_, _, err := w.c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) {
				return 0, fmt.Errorf("want a close frame, got %w", err)
			}
			return ce.Code, nil
		}
	}
}

func (w *wsReader) close() { _ = w.c.CloseNow() }

// requireLog checks the invariants of a task's event log as a client saw
// it: ids 1, 2, 3, ... without gaps or repeats, all for the task, types as
// listed, the last one terminal.
func requireLog(t testing.TB, taskID string, evs []event, types ...taskbridge.EventType) {
	t.Helper()
	got := make([]taskbridge.EventType, len(evs))
	for i, ev := range evs {
		got[i] = ev.Type
		require.Equal(t, taskID, ev.TaskID)
		require.Equal(t, taskbridge.FormatEventID(int64(i+1)), ev.EventID, "event %d", i)
	}
	require.Equal(t, types, got)
}

// repeat returns n copies of typ.
func repeat(typ taskbridge.EventType, n int) []taskbridge.EventType {
	out := make([]taskbridge.EventType, n)
	for i := range out {
		out[i] = typ
	}
	return out
}

// concat joins event type lists.
func concat(parts ...[]taskbridge.EventType) []taskbridge.EventType {
	var out []taskbridge.EventType
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func types(ts ...taskbridge.EventType) []taskbridge.EventType { return ts }
