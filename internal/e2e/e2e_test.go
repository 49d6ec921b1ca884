package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/httpapi"
	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
	"github.com/taskbridge-go/taskbridge/sse"
	"github.com/taskbridge-go/taskbridge/ws"
)

// server is the host: the HTTP API with the SSE and WebSocket handlers
// mounted in it.
type server struct {
	env     *streamtest.Env
	srv     *httptest.Server
	metrics *taskbridge.MemoryMetrics
}

func setup(t *testing.T, mods ...func(*streamtest.Options, *sse.Config)) *server {
	t.Helper()
	metrics := &taskbridge.MemoryMetrics{}
	opts, sseCfg := streamtest.Options{Metrics: metrics}, sse.Config{Auth: streamtest.Auth}
	for _, m := range mods {
		m(&opts, &sseCfg)
	}
	env := streamtest.New(t, opts)
	streams, err := sse.NewHandler(env.Svc, sseCfg)
	require.NoError(t, err)
	sockets, err := ws.NewHandler(env.Svc, ws.Config{Auth: streamtest.Auth})
	require.NoError(t, err)
	api, err := httpapi.New(env.Svc, httpapi.Config{Auth: streamtest.Auth, Stream: streams, WebSocket: sockets})
	require.NoError(t, err)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, streams.Shutdown(ctx))
		require.NoError(t, sockets.Shutdown(ctx))
	})
	return &server{env: env, srv: srv, metrics: metrics}
}

// client behaves like the Android SDK's stream transport: it keeps the id
// of the last event it delivered as its cursor and resumes from it on
// whatever transport it falls back to.
type client struct {
	t      *testing.T
	s      *server
	user   string
	taskID string
	cursor *string
	seen   []taskbridge.TaskEvent
	polls  int // poll requests sent with a cursor
}

// deliver validates an event frame and records it; every event must arrive
// exactly once, in order.
func (c *client) deliver(raw []byte) taskbridge.TaskEvent {
	c.t.Helper()
	protocoltest.ValidateEvent(c.t, raw)
	var ev taskbridge.TaskEvent
	require.NoError(c.t, json.Unmarshal(raw, &ev))
	require.Equal(c.t, c.taskID, ev.TaskID)
	want := taskbridge.FormatEventID(int64(len(c.seen) + 1))
	require.Equal(c.t, want, ev.EventID, "events must arrive exactly once, in order")
	c.seen = append(c.seen, ev)
	c.cursor = &ev.EventID
	return ev
}

func (c *client) do(method, path string, hdr http.Header, body any) (*http.Response, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(c.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.s.srv.URL+path, rd)
	require.NoError(c.t, err)
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.user)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.s.srv.Client().Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	protocoltest.ValidateHTTP(c.t, resp, b)
	return resp, b
}

func (c *client) createTask() {
	c.t.Helper()
	resp, b := c.do(http.MethodPost, "/api/v1/tasks", nil, map[string]any{
		"clientRequestId": "sdk-1", "taskType": "demo", "input": map[string]any{}, "metadata": map[string]any{},
	})
	require.Equal(c.t, http.StatusCreated, resp.StatusCode, string(b))
	var created taskbridge.CreateTaskResponse
	require.NoError(c.t, json.Unmarshal(b, &created))
	c.taskID = created.TaskID
}

// websocket subscribes from the cursor and delivers n events, then the
// connection is lost.
func (c *client) websocket(ctx context.Context, n int, during func()) {
	c.t.Helper()
	url := "ws" + strings.TrimPrefix(c.s.srv.URL, "http") + ws.DefaultPath
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: streamtest.Bearer(c.user)})
	require.NoError(c.t, err)
	defer conn.CloseNow()
	sub, err := json.Marshal(taskbridge.SubscribeFrame{Action: "subscribe", TaskID: c.taskID, LastEventID: c.cursor})
	require.NoError(c.t, err)
	protocoltest.ValidateSubscribeFrame(c.t, sub)
	require.NoError(c.t, conn.Write(ctx, websocket.MessageText, sub))
	_, confirm, err := conn.Read(ctx)
	require.NoError(c.t, err)
	protocoltest.ValidateSubscriptionConfirmed(c.t, confirm)
	during()
	for got := 0; got < n; {
		_, msg, err := conn.Read(ctx)
		require.NoError(c.t, err)
		protocoltest.ValidateServerFrame(c.t, msg)
		if bytes.Contains(msg, []byte(`"type":"HEARTBEAT"`)) {
			continue
		}
		c.deliver(msg)
		got++
	}
}

// sse resumes with Last-Event-ID and delivers events until stop returns
// true for the last one; then the connection is lost.
func (c *client) sse(ctx context.Context, stop func(ev taskbridge.TaskEvent) bool) {
	c.t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.s.srv.URL+"/api/v1/tasks/"+c.taskID+"/events/stream", nil)
	require.NoError(c.t, err)
	req.Header.Set("Authorization", "Bearer "+c.user)
	req.Header.Set("Accept", "text/event-stream")
	if c.cursor != nil {
		req.Header.Set("Last-Event-ID", *c.cursor)
	}
	resp, err := c.s.srv.Client().Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	require.Equal(c.t, http.StatusOK, resp.StatusCode)
	protocoltest.ValidateHTTP(c.t, resp, nil) // the head, against the served document
	br := bufio.NewReader(resp.Body)
	for {
		f, err := streamtest.ReadSSE(br)
		require.NoError(c.t, err)
		protocoltest.ValidateSSEFrame(c.t, f.ID, f.HasID, []byte(f.Data))
		if !f.HasID {
			continue // heartbeat or comment
		}
		ev := c.deliver([]byte(f.Data))
		require.Equal(c.t, f.ID, ev.EventID)
		if stop(ev) {
			return
		}
	}
}

// poll long-polls from the cursor until the terminal event.
func (c *client) poll() {
	c.t.Helper()
	for {
		path := "/api/v1/tasks/" + c.taskID + "/events?waitTimeoutMs=1000&maxEvents=2"
		if c.cursor != nil {
			path += "&afterEventId=" + *c.cursor
			c.polls++
		}
		resp, b := c.do(http.MethodGet, path, nil, nil)
		require.Equal(c.t, http.StatusOK, resp.StatusCode, string(b))
		var page struct {
			Events []json.RawMessage `json:"events"`
		}
		require.NoError(c.t, json.Unmarshal(b, &page))
		for _, raw := range page.Events {
			if c.deliver(raw).Terminal() {
				return
			}
		}
	}
}

// TestSDKFallbackSeesEveryEventOnce follows a client through WebSocket,
// then SSE, then long polling, losing the connection each time while the
// task goes on; resuming with its cursor, it sees every event exactly once
// and in order, each valid against the protocol schema.
func TestSDKFallbackSeesEveryEventOnce(t *testing.T) {
	t.Parallel()
	s := setup(t)
	c := &client{t: t, s: s, user: "alice"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c.createTask()
	emit := func(p taskbridge.Payload) { s.env.Emit(t, c.taskID, p) }

	// WebSocket: two live events, then the connection drops.
	c.websocket(ctx, 2, func() {
		emit(taskbridge.StartedPayload{Message: "go"})
		emit(taskbridge.ProgressPayload{Progress: 0.1, Stage: "upload"})
	})
	require.Equal(t, "2", *c.cursor)
	emit(taskbridge.ProgressPayload{Progress: 0.3})
	emit(taskbridge.MessagePayload{Message: "halfway", Level: "info"})

	// SSE: the two missed events are replayed; then the task suspends and
	// the client's action is accepted, live.
	var suspendID string
	c.sse(ctx, func(ev taskbridge.TaskEvent) bool {
		switch ev.EventID {
		case "4":
			require.EqualValues(t, 1, s.metrics.Value(taskbridge.MetricStreamsActive, sseLabel))
			susp, err := s.env.Svc.Emitter(c.taskID).Suspend(ctx, taskbridge.SuspendOpts{
				ReasonCode: "CONFIRM", AllowedActions: []string{"approve", "reject"},
			})
			require.NoError(t, err)
			suspendID = susp.SuspendID
		case "5":
			require.Equal(t, taskbridge.EventTaskSuspended, ev.Type)
			resp, b := c.do(http.MethodPost, "/api/v1/tasks/"+c.taskID+"/actions", nil, taskbridge.ActionRequest{
				ClientActionID: "act-1", SuspendID: suspendID, ActionType: "approve",
			})
			require.Equal(t, http.StatusAccepted, resp.StatusCode, string(b))
		case "6":
			require.Equal(t, taskbridge.EventTaskActionAccepted, ev.Type)
			return true
		}
		return false
	})
	emit(taskbridge.ProgressPayload{Progress: 0.9})
	emit(taskbridge.MessagePayload{Message: "almost"})
	emit(taskbridge.CompletedPayload{Result: map[string]any{"url": "https://example.com/out"}})

	// Long polling picks up the rest, up to the terminal event.
	c.poll()

	// The client saw exactly the task's log.
	log, err := s.env.Svc.PollEvents(ctx, taskbridge.AuthContext{Subject: "alice"}, c.taskID,
		taskbridge.PollRequest{MaxEvents: taskbridge.MaxMaxEvents})
	require.NoError(t, err)
	require.Len(t, c.seen, 9)
	require.Equal(t, len(log.Events), len(c.seen))
	for i, ev := range log.Events {
		require.Equal(t, ev.EventID, c.seen[i].EventID)
		require.Equal(t, ev.Type, c.seen[i].Type)
		require.JSONEq(t, string(ev.Payload), string(c.seen[i].Payload))
		require.True(t, ev.CreatedAt.Equal(c.seen[i].CreatedAt))
	}

	// Each metric counted once, whatever the transport.
	m := s.metrics
	require.EqualValues(t, 1, m.Value(taskbridge.MetricTaskStarts))
	require.Zero(t, m.Value(taskbridge.MetricDuplicates))
	require.EqualValues(t, 1, m.Value(taskbridge.MetricActions, taskbridge.Label{Name: "status", Value: "ACCEPTED"}))
	require.EqualValues(t, 1, m.Value(taskbridge.MetricActionsAccepted))
	require.Zero(t, m.Value(taskbridge.MetricActionsResumePending))
	// Resumes: the SSE reconnect and every poll that carried a cursor (the
	// first WebSocket subscribe had none).
	require.EqualValues(t, 1+c.polls, m.Value(taskbridge.MetricReplays))
	require.Eventually(t, func() bool {
		return m.Value(taskbridge.MetricStreamsActive, sseLabel) == 0 &&
			m.Value(taskbridge.MetricStreamsActive, taskbridge.Label{Name: "transport", Value: "ws"}) == 0
	}, 5*time.Second, 5*time.Millisecond, "streams_active returns to zero")
}

var sseLabel = taskbridge.Label{Name: "transport", Value: "sse"}

// TestTransportsAgree subscribes to one finished task over all three
// transports: the event frames are identical.
func TestTransportsAgree(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	creator := &client{t: t, s: s, user: "bob"}
	creator.createTask()
	for _, p := range []taskbridge.Payload{
		taskbridge.StartedPayload{}, taskbridge.ProgressPayload{Progress: 0.5, Message: "ünïcödé <&>"},
		taskbridge.FailedPayload{Code: "BOOM", Message: "it broke", Retryable: true},
	} {
		s.env.Emit(t, creator.taskID, p)
	}

	viaWS := &client{t: t, s: s, user: "bob", taskID: creator.taskID}
	viaWS.websocket(ctx, 3, func() {})
	viaSSE := &client{t: t, s: s, user: "bob", taskID: creator.taskID}
	viaSSE.sse(ctx, taskbridge.TaskEvent.Terminal)
	viaPoll := &client{t: t, s: s, user: "bob", taskID: creator.taskID}
	viaPoll.poll()
	require.Equal(t, viaWS.seen, viaSSE.seen)
	require.Equal(t, viaWS.seen, viaPoll.seen)
}
