package ws_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
	"github.com/taskbridge-go/taskbridge/internal/wsframe"
	"github.com/taskbridge-go/taskbridge/ws"
)

type fixture struct {
	env     *streamtest.Env
	h       *ws.Handler
	srv     *httptest.Server
	metrics *taskbridge.MemoryMetrics
}

// setup serves a ws.Handler at ws.DefaultPath of a ServeMux.
func setup(t *testing.T, cfg ws.Config) *fixture {
	t.Helper()
	return setupWith(t, cfg, streamtest.Options{})
}

func setupWith(t *testing.T, cfg ws.Config, opts streamtest.Options) *fixture {
	t.Helper()
	metrics := &taskbridge.MemoryMetrics{}
	opts.Metrics = metrics
	env := streamtest.New(t, opts)
	h := newHandler(t, env, cfg)
	mux := http.NewServeMux()
	mux.Handle("GET "+ws.DefaultPath, h)
	// Small socket buffers, so that slow-consumer tests fill them quickly.
	srv := streamtest.SmallBufferServer(t, mux)
	t.Cleanup(func() { require.NoError(t, h.Shutdown(context.Background())) })
	return &fixture{env: env, h: h, srv: srv, metrics: metrics}
}

func newHandler(t *testing.T, env *streamtest.Env, cfg ws.Config) *ws.Handler {
	t.Helper()
	if cfg.Auth == nil {
		cfg.Auth = streamtest.Auth
	}
	h, err := ws.NewHandler(env.Svc, cfg)
	require.NoError(t, err)
	return h
}

func wsURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") + ws.DefaultPath }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dial opens a socket as subject (none when "") with extra headers.
func dial(t *testing.T, url, subject string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	for k, v := range hdr {
		h[k] = v
	}
	if subject != "" {
		h.Set("Authorization", "Bearer "+subject)
	}
	c, resp, err := websocket.Dial(testCtx(t), url, &websocket.DialOptions{HTTPHeader: h})
	if c != nil {
		t.Cleanup(func() { _ = c.CloseNow() })
	}
	return c, resp, err
}

func (f *fixture) dial(t *testing.T, subject string) *websocket.Conn {
	t.Helper()
	c, _, err := dial(t, wsURL(f.srv.URL), subject, nil)
	require.NoError(t, err)
	return c
}

// subscribed dials as alice and subscribes to task from the start.
func (f *fixture) subscribed(t *testing.T, task string) *websocket.Conn {
	t.Helper()
	c := f.dial(t, "alice")
	subscribe(t, c, task, nil)
	readConfirm(t, c, task, nil)
	return c
}

func send(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	require.NoError(t, c.Write(testCtx(t), websocket.MessageText, b))
}

func subscribe(t *testing.T, c *websocket.Conn, taskID string, cursor *string) {
	t.Helper()
	send(t, c, taskbridge.SubscribeFrame{Action: "subscribe", TaskID: taskID, LastEventID: cursor})
}

// read reads one text message and checks it is a valid server frame.
func read(t *testing.T, c *websocket.Conn) []byte {
	t.Helper()
	typ, b, err := c.Read(testCtx(t))
	require.NoError(t, err)
	require.Equal(t, websocket.MessageText, typ)
	protocoltest.ValidateServerFrame(t, b)
	return b
}

func readConfirm(t *testing.T, c *websocket.Conn, taskID string, cursor *string) {
	t.Helper()
	b := read(t, c)
	protocoltest.ValidateSubscriptionConfirmed(t, b)
	var got taskbridge.SubscriptionConfirmedFrame
	require.NoError(t, json.Unmarshal(b, &got))
	require.Equal(t, taskbridge.SubscriptionConfirmedFrame{
		Type: "SUBSCRIPTION_CONFIRMED", TaskID: taskID, ReplayStartedAfterEventID: cursor, Live: true,
	}, got)
	if cursor == nil {
		require.Contains(t, string(b), `"replayStartedAfterEventId":null`)
	}
}

func readEvent(t *testing.T, c *websocket.Conn) taskbridge.TaskEvent {
	t.Helper()
	b := read(t, c)
	protocoltest.ValidateEvent(t, b)
	var ev taskbridge.TaskEvent
	require.NoError(t, json.Unmarshal(b, &ev))
	return ev
}

func requireClose(t *testing.T, c *websocket.Conn, code websocket.StatusCode) {
	t.Helper()
	_, b, err := c.Read(testCtx(t))
	require.Error(t, err, "expected close %d, got message %s", code, b)
	require.Equal(t, code, websocket.CloseStatus(err), "%v", err)
}

func ptr(s string) *string { return &s }

func (f *fixture) active() int64 {
	return f.metrics.Value(taskbridge.MetricStreamsActive, taskbridge.Label{Name: "transport", Value: "ws"})
}

func TestNewHandlerValidatesConfig(t *testing.T) {
	t.Parallel()
	env := streamtest.New(t, streamtest.Options{})
	_, err := ws.NewHandler(env.Svc, ws.Config{})
	require.Error(t, err)
	_, err = ws.NewHandler(nil, ws.Config{Auth: streamtest.Auth})
	require.Error(t, err)
	_, err = ws.NewHandler(env.Svc, ws.Config{Auth: streamtest.Auth, WriteTimeout: -1})
	require.Error(t, err)
}

// TestHeartbeatIntervalIsBounded: the TaskBridge SDK reconnects after 60s
// without a frame, so an interval whose heartbeats could come later, or a
// negative one, is refused with an error that says why; heartbeats are
// turned off only explicitly.
func TestHeartbeatIntervalIsBounded(t *testing.T) {
	t.Parallel()
	env := streamtest.New(t, streamtest.Options{})
	for _, tc := range []struct {
		cfg ws.Config
		err string // "" for none
	}{
		{ws.Config{}, ""},
		{ws.Config{HeartbeatInterval: time.Millisecond}, ""},
		{ws.Config{HeartbeatInterval: ws.MaxHeartbeatInterval}, ""},
		{ws.Config{HeartbeatInterval: ws.MaxHeartbeatInterval + 1}, "the TaskBridge SDK reconnects after 60s"},
		{ws.Config{HeartbeatInterval: 5 * time.Minute}, "exceeds 40s"},
		{ws.Config{HeartbeatInterval: -1}, "set DisableHeartbeats"},
		{ws.Config{DisableHeartbeats: true}, ""},
		{ws.Config{DisableHeartbeats: true, HeartbeatInterval: time.Second}, "leave the interval zero"},
	} {
		tc.cfg.Auth = streamtest.Auth
		h, err := ws.NewHandler(env.Svc, tc.cfg)
		if tc.err == "" {
			require.NoError(t, err, "%+v", tc.cfg)
			require.NoError(t, h.Shutdown(testCtx(t)))
			continue
		}
		require.ErrorContains(t, err, tc.err, "%+v", tc.cfg)
	}
}

func TestHandshakeRequiresAuthentication(t *testing.T) {
	t.Parallel()
	f := setup(t, ws.Config{})
	c, resp, err := dial(t, wsURL(f.srv.URL), "", nil)
	require.Error(t, err)
	require.Nil(t, c)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	protocoltest.ValidateErrorResponse(t, body)
	require.Contains(t, string(body), taskbridge.CodeAuthentication)
}

func TestOriginChecking(t *testing.T) {
	t.Parallel()
	f := setup(t, ws.Config{})
	// A page on another site must not ride the user's credentials.
	_, resp, err := dial(t, wsURL(f.srv.URL), "alice", http.Header{"Origin": {"https://evil.example"}})
	require.Error(t, err)
	env := requireEnvelope(t, resp, http.StatusForbidden, ws.CodeOriginNotAllowed)
	require.Equal(t, map[string]any{"origin": "https://evil.example"}, env.Details)
	// Same-origin pages and native clients (no Origin) are accepted.
	_, _, err = dial(t, wsURL(f.srv.URL), "alice", http.Header{"Origin": {f.srv.URL}})
	require.NoError(t, err)
	_, _, err = dial(t, wsURL(f.srv.URL), "alice", nil)
	require.NoError(t, err)

	allowed := setup(t, ws.Config{OriginPatterns: []string{"app.example", "https://*.trusted.example"}})
	for _, origin := range []string{"https://app.example", "http://app.example", "https://a.trusted.example"} {
		_, _, err = dial(t, wsURL(allowed.srv.URL), "alice", http.Header{"Origin": {origin}})
		require.NoError(t, err, origin)
	}
	for _, origin := range []string{"https://evil.example", "http://a.trusted.example", "null"} {
		_, resp, err = dial(t, wsURL(allowed.srv.URL), "alice", http.Header{"Origin": {origin}})
		require.Error(t, err, origin)
		requireEnvelope(t, resp, http.StatusForbidden, ws.CodeOriginNotAllowed)
	}

	_, err = ws.NewHandler(f.env.Svc, ws.Config{Auth: streamtest.Auth, OriginPatterns: []string{"[app.example"}})
	require.Error(t, err, "malformed pattern")
	_, err = ws.NewHandler(f.env.Svc, ws.Config{Auth: streamtest.Auth, OriginPatterns: []string{""}})
	require.Error(t, err, "empty pattern")
}

// TestOriginSchemeCounts: an http page may not open a socket to its own
// host when the socket comes over TLS, whether the handler serves TLS
// itself or a trusted proxy says so; https pages and native clients may.
func TestOriginSchemeCounts(t *testing.T) {
	t.Parallel()
	env := streamtest.New(t, streamtest.Options{})
	h := newHandler(t, env, ws.Config{})
	t.Cleanup(func() { require.NoError(t, h.Shutdown(context.Background())) })
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "https://")
	dialTLS := func(origin string) (*http.Response, error) {
		hdr := streamtest.Bearer("alice")
		if origin != "" {
			hdr.Set("Origin", origin)
		}
		c, resp, err := websocket.Dial(testCtx(t), "wss://"+host+ws.DefaultPath, &websocket.DialOptions{
			HTTPClient: srv.Client(), HTTPHeader: hdr,
		})
		if c != nil {
			_ = c.CloseNow()
		}
		return resp, err
	}
	_, err := dialTLS("https://" + host)
	require.NoError(t, err)
	_, err = dialTLS("")
	require.NoError(t, err)
	resp, err := dialTLS("http://" + host)
	require.Error(t, err)
	requireEnvelope(t, resp, http.StatusForbidden, ws.CodeOriginNotAllowed)

	// Behind a TLS-terminating proxy: the handler sees plain HTTP.
	for _, trust := range []bool{false, true} {
		f := setup(t, ws.Config{TrustForwardedProto: trust})
		host := strings.TrimPrefix(f.srv.URL, "http://")
		proxied := http.Header{"X-Forwarded-Proto": {"https"}}
		_, _, err := dial(t, wsURL(f.srv.URL), "alice", http.Header{"X-Forwarded-Proto": {"https"}, "Origin": {"https://" + host}})
		require.NoError(t, err)
		proxied.Set("Origin", "http://"+host)
		_, resp, err := dial(t, wsURL(f.srv.URL), "alice", proxied)
		if !trust {
			// The handler cannot tell: as without a proxy.
			require.NoError(t, err)
			continue
		}
		require.Error(t, err)
		requireEnvelope(t, resp, http.StatusForbidden, ws.CodeOriginNotAllowed)
	}
}

// requireEnvelope checks that resp is a protocol error envelope with status
// and code, and returns it.
func requireEnvelope(t *testing.T, resp *http.Response, status int, code string) taskbridge.ErrorEnvelope {
	t.Helper()
	require.NotNil(t, resp)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, status, resp.StatusCode, "body: %s", body)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	protocoltest.ValidateErrorResponse(t, body)
	if resp.Request != nil { // an HTTP client's answer: status and headers against the OpenAPI documents
		protocoltest.ValidateHTTP(t, resp, body)
	}
	var env taskbridge.ErrorEnvelope
	require.NoError(t, json.Unmarshal(body, &env))
	require.Equal(t, code, env.Code)
	return env
}

// handshakeHeader is a valid WebSocket handshake's headers, authenticated
// as alice.
func handshakeHeader() http.Header {
	return http.Header{
		"Connection":            {"Upgrade"},
		"Upgrade":               {"websocket"},
		"Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
		"Authorization":         {"Bearer alice"},
	}
}

// TestHandshakeRefusalsAreEnvelopes: every answer of the handler other
// than the 101 is a protocol error envelope, with the headers its status
// calls for.
func TestHandshakeRefusalsAreEnvelopes(t *testing.T) {
	t.Parallel()
	f := setup(t, ws.Config{})
	// Served without a method pattern, so every method reaches the handler.
	srv := httptest.NewServer(f.h)
	t.Cleanup(srv.Close)

	cases := []struct {
		name   string
		method string
		edit   func(h http.Header)
		status int
		code   string
		header http.Header // headers the answer must carry
	}{
		{"POST", http.MethodPost, nil, 405, taskbridge.CodeInvalidRequest, http.Header{"Allow": {"GET"}}},
		{"OPTIONS", http.MethodOptions, nil, 405, taskbridge.CodeInvalidRequest, http.Header{"Allow": {"GET"}}},
		{"HEAD", http.MethodHead, nil, 405, taskbridge.CodeInvalidRequest, http.Header{"Allow": {"GET"}}},
		{"plain GET", http.MethodGet, func(h http.Header) { h.Del("Connection"); h.Del("Upgrade") }, 426, taskbridge.CodeInvalidRequest,
			http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}}},
		{"upgrade to another protocol", http.MethodGet, func(h http.Header) { h.Set("Upgrade", "h2c") }, 426, taskbridge.CodeInvalidRequest,
			http.Header{"Upgrade": {"websocket"}}},
		{"old protocol version", http.MethodGet, func(h http.Header) { h.Set("Sec-Websocket-Version", "8") }, 426, taskbridge.CodeInvalidRequest,
			http.Header{"Sec-Websocket-Version": {"13"}}},
		{"missing key", http.MethodGet, func(h http.Header) { h.Del("Sec-Websocket-Key") }, 400, taskbridge.CodeInvalidRequest, nil},
		{"malformed key", http.MethodGet, func(h http.Header) { h.Set("Sec-Websocket-Key", "short") }, 400, taskbridge.CodeInvalidRequest, nil},
		{"two keys", http.MethodGet, func(h http.Header) { h.Add("Sec-Websocket-Key", "dGhlIHNhbXBsZSBub25jZQ==") }, 400, taskbridge.CodeInvalidRequest, nil},
		{"foreign origin", http.MethodGet, func(h http.Header) { h.Set("Origin", "https://evil.example") }, 403, ws.CodeOriginNotAllowed, nil},
		{"foreign origin, no credentials", http.MethodGet, func(h http.Header) {
			h.Set("Origin", "https://evil.example")
			h.Del("Authorization")
		}, 403, ws.CodeOriginNotAllowed, nil},
		{"no credentials", http.MethodGet, func(h http.Header) { h.Del("Authorization") }, 401, taskbridge.CodeAuthentication,
			http.Header{"Www-Authenticate": {"Bearer"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequestWithContext(testCtx(t), tc.method, wsURL(srv.URL), nil)
			require.NoError(t, err)
			req.URL.Scheme = "http"
			req.Header = handshakeHeader()
			if tc.edit != nil {
				tc.edit(req.Header)
			}
			resp, err := srv.Client().Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			for k := range tc.header {
				require.Equal(t, tc.header.Get(k), resp.Header.Get(k), k)
			}
			if tc.method == http.MethodHead {
				require.Equal(t, tc.status, resp.StatusCode)
				require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
				return
			}
			requireEnvelope(t, resp, tc.status, tc.code)
		})
	}

	t.Run("connection that cannot be hijacked", func(t *testing.T) {
		t.Parallel()
		// A ResponseWriter without http.Hijacker (middleware hiding it):
		// a server fault, answered with 500 once the handshake is checked.
		req := httptest.NewRequest(http.MethodGet, ws.DefaultPath, nil)
		req.Header = handshakeHeader()
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		requireEnvelope(t, rec.Result(), http.StatusInternalServerError, taskbridge.CodeInternal)
		require.Equal(t, int64(0), f.active())
	})
}

func TestInvalidSubscriptionsArePolicyViolations(t *testing.T) {
	t.Parallel()
	f := setupWith(t, ws.Config{}, streamtest.Options{MaxEventsPerTask: 3})
	task := f.env.CreateTask(t, "alice")
	f.env.Started(t, task)
	expired := f.env.CreateTask(t, "alice")
	f.env.Started(t, expired)
	for i := range 4 {
		f.env.Progress(t, expired, float64(i)/10)
	}

	text := func(s string) func(*testing.T, *websocket.Conn) {
		return func(t *testing.T, c *websocket.Conn) {
			require.NoError(t, c.Write(testCtx(t), websocket.MessageText, []byte(s)))
		}
	}
	cases := []struct {
		name  string
		send  func(*testing.T, *websocket.Conn)
		close websocket.StatusCode
	}{
		{"malformed JSON", text(`{"action":`), websocket.StatusPolicyViolation},
		{"not an object", text(`["subscribe"]`), websocket.StatusPolicyViolation},
		{"wrong action", text(`{"action":"unsubscribe","taskId":"` + task + `"}`), websocket.StatusPolicyViolation},
		{"missing taskId", text(`{"action":"subscribe"}`), websocket.StatusPolicyViolation},
		{"taskId not a string", text(`{"action":"subscribe","taskId":42}`), websocket.StatusPolicyViolation},
		{"binary frame", func(t *testing.T, c *websocket.Conn) {
			b, _ := json.Marshal(taskbridge.SubscribeFrame{Action: "subscribe", TaskID: task})
			require.NoError(t, c.Write(testCtx(t), websocket.MessageBinary, b))
		}, websocket.StatusPolicyViolation},
		{"unknown task", text(`{"action":"subscribe","taskId":"no-such-task"}`), websocket.StatusPolicyViolation},
		{"malformed cursor", text(`{"action":"subscribe","taskId":"` + task + `","lastEventId":"x"}`), websocket.StatusPolicyViolation},
		{"cursor beyond the log", text(`{"action":"subscribe","taskId":"` + task + `","lastEventId":"9"}`), websocket.StatusPolicyViolation},
		{"expired cursor", text(`{"action":"subscribe","taskId":"` + expired + `","lastEventId":"1"}`), ws.CloseEventsExpired},
		{"duplicate taskId", text(`{"action":"subscribe","taskId":"no-such-task","taskId":"` + task + `"}`), websocket.StatusPolicyViolation},
		{"duplicate lastEventId", text(`{"action":"subscribe","taskId":"` + task + `","lastEventId":"x","lastEventId":"1"}`), websocket.StatusPolicyViolation},
		{"NUL in cursor", text(`{"action":"subscribe","taskId":"` + task + `","lastEventId":"1\u0000"}`), websocket.StatusPolicyViolation},
		{"control character in taskId", text(`{"action":"subscribe","taskId":"` + task + `\u001f"}`), websocket.StatusPolicyViolation},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := f.dial(t, "alice")
			tc.send(t, c)
			// No confirmation: the close is the first thing received.
			requireClose(t, c, tc.close)
		})
	}
	t.Run("other user's task", func(t *testing.T) {
		t.Parallel()
		c := f.dial(t, "bob")
		subscribe(t, c, task, nil)
		requireClose(t, c, websocket.StatusPolicyViolation)
	})
	t.Run("invalid second frame", func(t *testing.T) {
		t.Parallel()
		c := f.subscribed(t, task)
		require.Equal(t, "1", readEvent(t, c).EventID)
		text(`hello`)(t, c)
		requireClose(t, c, websocket.StatusPolicyViolation)
	})
}

func TestSubscribeReplayLiveAndClose(t *testing.T) {
	t.Parallel()
	f := setup(t, ws.Config{})
	task := f.env.CreateTask(t, "alice")
	f.env.Started(t, task)
	f.env.Progress(t, task, 0.2)

	for _, cursor := range []*string{nil, ptr(""), ptr("0"), ptr("1")} {
		c := f.dial(t, "alice")
		subscribe(t, c, task, cursor)
		readConfirm(t, c, task, cursor)
		from := 1
		if cursor != nil && *cursor == "1" {
			from = 2
		}
		for i := from; i <= 2; i++ {
			require.Equal(t, taskbridge.FormatEventID(int64(i)), readEvent(t, c).EventID)
		}
		require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
	}

	c := f.dial(t, "alice")
	subscribe(t, c, task, ptr("2"))
	readConfirm(t, c, task, ptr("2"))
	require.Equal(t, "3", f.env.Progress(t, task, 0.5).EventID)
	require.Equal(t, "3", readEvent(t, c).EventID)
	f.env.Complete(t, task)
	ev := readEvent(t, c)
	require.Equal(t, taskbridge.EventTaskCompleted, ev.Type)
	// Nothing follows the terminal event but the normal close.
	requireClose(t, c, websocket.StatusNormalClosure)

	// A cursor at the terminal event: confirmation, then the close.
	c = f.dial(t, "alice")
	subscribe(t, c, task, ptr(ev.EventID))
	readConfirm(t, c, task, ptr(ev.EventID))
	requireClose(t, c, websocket.StatusNormalClosure)
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	f := setup(t, ws.Config{HeartbeatInterval: 20 * time.Millisecond})
	task := f.env.CreateTask(t, "alice")
	c := f.subscribed(t, task)
	for range 3 {
		b := read(t, c)
		protocoltest.ValidateHeartbeat(t, b)
		require.JSONEq(t, `{"type":"HEARTBEAT","taskId":"`+task+`","live":true}`, string(b))
	}
	f.env.Started(t, task)
	for {
		b := read(t, c)
		if !strings.Contains(string(b), `"HEARTBEAT"`) {
			protocoltest.ValidateEvent(t, b)
			break
		}
	}
}

func TestMultiplexing(t *testing.T) {
	t.Parallel()
	f := setup(t, ws.Config{})
	a, b := f.env.CreateTask(t, "alice"), f.env.CreateTask(t, "alice")
	f.env.Started(t, a)
	f.env.Started(t, b)
	f.env.Progress(t, b, 0.5)

	c := f.dial(t, "alice")
	subscribe(t, c, a, nil)
	readConfirm(t, c, a, nil)
	ev := readEvent(t, c)
	require.Equal(t, [2]string{a, "1"}, [2]string{ev.TaskID, ev.EventID})

	subscribe(t, c, b, ptr("1"))
	readConfirm(t, c, b, ptr("1"))
	ev = readEvent(t, c)
	require.Equal(t, [2]string{b, "2"}, [2]string{ev.TaskID, ev.EventID})

	f.env.Progress(t, a, 0.1)
	ev = readEvent(t, c)
	require.Equal(t, [2]string{a, "2"}, [2]string{ev.TaskID, ev.EventID})

	// b ends; the socket stays open for a.
	f.env.Complete(t, b)
	ev = readEvent(t, c)
	require.Equal(t, [2]string{b, "3"}, [2]string{ev.TaskID, ev.EventID})
	f.env.Progress(t, a, 0.2)
	ev = readEvent(t, c)
	require.Equal(t, [2]string{a, "3"}, [2]string{ev.TaskID, ev.EventID})

	// Subscribing again to a task restarts it from the new cursor.
	subscribe(t, c, a, ptr("1"))
	readConfirm(t, c, a, ptr("1"))
	require.Equal(t, "2", readEvent(t, c).EventID)
	require.Equal(t, "3", readEvent(t, c).EventID)

	// The last subscribed task ends: close 1000.
	f.env.Complete(t, a)
	ev = readEvent(t, c)
	require.Equal(t, [2]string{a, "4"}, [2]string{ev.TaskID, ev.EventID})
	requireClose(t, c, websocket.StatusNormalClosure)
}

func TestTooManySubscriptions(t *testing.T) {
	t.Parallel()
	f := setup(t, ws.Config{MaxSubscriptions: 2})
	c := f.dial(t, "alice")
	for i := range 3 {
		task := f.env.CreateTask(t, "alice")
		subscribe(t, c, task, nil)
		if i < 2 {
			readConfirm(t, c, task, nil)
		}
	}
	requireClose(t, c, websocket.StatusPolicyViolation)
}

func TestSubscribeTimeout(t *testing.T) {
	t.Parallel()
	f := setup(t, ws.Config{SubscribeTimeout: 20 * time.Millisecond})
	c := f.dial(t, "alice")
	requireClose(t, c, websocket.StatusPolicyViolation)
	// The connection's goroutines are gone.
	require.NoError(t, f.h.Shutdown(testCtx(t)))
}

func TestPingsAreAnswered(t *testing.T) {
	t.Parallel()
	f := setup(t, ws.Config{})
	task := f.env.CreateTask(t, "alice")
	c := f.subscribed(t, task)
	// The client must read for its pong to be processed.
	readDone := make(chan error, 1)
	go func() {
		_, _, err := c.Read(context.Background())
		readDone <- err
	}()
	require.NoError(t, c.Ping(testCtx(t)))
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
	<-readDone
}

func TestShutdownClosesWithGoingAway(t *testing.T) {
	t.Parallel()
	for _, by := range []string{"handler", "service"} {
		t.Run(by, func(t *testing.T) {
			t.Parallel()
			f := setup(t, ws.Config{})
			task := f.env.CreateTask(t, "alice")
			c := f.subscribed(t, task)

			errc := make(chan error, 1)
			go func() {
				if by == "handler" {
					errc <- f.h.Shutdown(testCtx(t))
				} else {
					errc <- f.env.Svc.Shutdown(testCtx(t))
				}
			}()
			requireClose(t, c, websocket.StatusGoingAway)
			require.NoError(t, <-errc)
			require.NoError(t, f.h.Shutdown(testCtx(t)))

			_, resp, err := dial(t, wsURL(f.srv.URL), "alice", nil)
			require.Error(t, err)
			requireEnvelope(t, resp, http.StatusServiceUnavailable, taskbridge.CodeUnavailable)
		})
	}
}

// TestShutdownClosesSocketsNotYetSubscribed: a socket waiting for its first
// subscribe frame is closed with 1001 at once, not after SubscribeTimeout.
func TestShutdownClosesSocketsNotYetSubscribed(t *testing.T) {
	t.Parallel()
	f := setup(t, ws.Config{SubscribeTimeout: time.Minute})
	c := f.dial(t, "alice")
	errc := make(chan error, 1)
	go func() { errc <- f.h.Shutdown(testCtx(t)) }()
	requireClose(t, c, websocket.StatusGoingAway)
	require.NoError(t, <-errc)
}

func TestClientDisconnectReleasesTheConnection(t *testing.T) {
	t.Parallel()
	f := setup(t, ws.Config{})
	task := f.env.CreateTask(t, "alice")
	c := f.subscribed(t, task)
	require.Equal(t, int64(1), f.active())
	require.NoError(t, c.CloseNow())
	require.Eventually(t, func() bool { return f.active() == 0 }, 5*time.Second, time.Millisecond)
}

// TestFirstFrameInTheHandshakePacket sends the subscribe frame in the same
// write as the upgrade request, so the server has read it into its buffer
// before the upgrade.
func TestFirstFrameInTheHandshakePacket(t *testing.T) {
	t.Parallel()
	f := setup(t, ws.Config{})
	task := f.env.CreateTask(t, "alice")
	f.env.Started(t, task)
	_, br := rawDial(t, f, task, true)
	op, payload, err := streamtest.ReadServerFrame(br)
	require.NoError(t, err)
	require.Equal(t, byte(1), op)
	protocoltest.ValidateSubscriptionConfirmed(t, payload)
	op, payload, err = streamtest.ReadServerFrame(br)
	require.NoError(t, err)
	require.Equal(t, byte(1), op)
	protocoltest.ValidateEvent(t, payload)
}

// rawDial upgrades a plain TCP connection and subscribes to task, in the
// same write when together is set.
func rawDial(t *testing.T, f *fixture, task string, together bool) (net.Conn, *bufio.Reader) {
	t.Helper()
	frame := subscribeFrames(t, task)
	if together {
		c := f.rawClient(t, frame)
		return c.conn, c.br
	}
	c := f.rawClient(t, nil)
	c.write(t, frame)
	return c.conn, c.br
}

// TestSlowConsumerIsDisconnected: a client that stops reading is dropped
// after the write timeout, and a client of the same task that reads gets
// every event.
func TestSlowConsumerIsDisconnected(t *testing.T) {
	t.Parallel()
	f := setup(t, ws.Config{WriteTimeout: 2 * time.Second})
	task := f.env.CreateTask(t, "alice")
	stalled, _ := rawDial(t, f, task, false)
	require.NoError(t, stalled.(*net.TCPConn).SetReadBuffer(4096))
	require.Eventually(t, func() bool { return f.active() == 1 }, 5*time.Second, time.Millisecond)

	c := f.dial(t, "alice")
	c.SetReadLimit(1 << 20)
	subscribe(t, c, task, nil)
	readConfirm(t, c, task, nil)

	big := strings.Repeat("x", 60_000)
	const n = 60 // ~3.6 MB
	f.env.Started(t, task)
	require.Equal(t, "1", readEvent(t, c).EventID)
	for i := range n {
		f.env.Emit(t, task, taskbridge.MessagePayload{Message: big})
		_, b, err := c.Read(testCtx(t))
		require.NoError(t, err)
		var ev taskbridge.TaskEvent
		require.NoError(t, json.Unmarshal(b, &ev))
		require.Equal(t, taskbridge.FormatEventID(int64(i+2)), ev.EventID)
	}
	require.Eventually(t, func() bool { return f.active() == 1 }, 5*time.Second, time.Millisecond)
	require.EqualValues(t, 1, f.metrics.Value(taskbridge.MetricSlowConsumerDisconnects, taskbridge.Label{Name: "transport", Value: "ws"}))
}

func TestMountOnChi(t *testing.T) {
	t.Parallel()
	env := streamtest.New(t, streamtest.Options{})
	h := newHandler(t, env, ws.Config{})
	r := chi.NewRouter()
	r.Route("/api/v1", func(r chi.Router) {
		r.Get("/tasks/ws", h.ServeHTTP)
	})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { require.NoError(t, h.Shutdown(context.Background())) })

	task := env.CreateTask(t, "alice")
	env.Started(t, task)
	c, _, err := dial(t, wsURL(srv.URL), "alice", nil)
	require.NoError(t, err)
	subscribe(t, c, task, nil)
	readConfirm(t, c, task, nil)
	require.Equal(t, "1", readEvent(t, c).EventID)
}

// TestShutdownDropsUnresponsiveClients: a client that never answers the
// close handshake holds Shutdown until its context ends; the connection is
// then dropped, and Shutdown returns once its goroutines have exited. Not
// parallel: it checks for leaked goroutines.
func TestShutdownDropsUnresponsiveClients(t *testing.T) {
	f := setup(t, ws.Config{})
	task := f.env.CreateTask(t, "alice")
	before := goleak.IgnoreCurrent()
	rawDial(t, f, task, false) // never reads, never answers
	require.Eventually(t, func() bool { return f.active() == 1 }, 5*time.Second, time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, f.h.Shutdown(ctx), context.DeadlineExceeded)
	require.Equal(t, int64(0), f.active())
	require.NoError(t, goleak.Find(before))
	require.NoError(t, f.h.Shutdown(testCtx(t)))
}

// TestCompressionIsNeverNegotiated: a client offering permessage-deflate
// gets an uncompressed connection (the ws package writes its frames itself;
// see ws/netconn.go).
func TestCompressionIsNeverNegotiated(t *testing.T) {
	t.Parallel()
	f := setup(t, ws.Config{})
	for _, mode := range []websocket.CompressionMode{websocket.CompressionContextTakeover, websocket.CompressionNoContextTakeover} {
		task := f.env.CreateTask(t, "alice")
		f.env.Started(t, task)
		c, resp, err := websocket.Dial(testCtx(t), wsURL(f.srv.URL), &websocket.DialOptions{
			HTTPHeader: streamtest.Bearer("alice"), CompressionMode: mode,
		})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.CloseNow() })
		require.Empty(t, resp.Header.Values("Sec-WebSocket-Extensions"), "mode %v", mode)
		subscribe(t, c, task, nil)
		readConfirm(t, c, task, nil)
		require.Equal(t, taskbridge.EventTaskStarted, readEvent(t, c).Type)
		f.env.Emit(t, task, taskbridge.MessagePayload{Message: strings.Repeat("z", 4000)}) // over any compression threshold
		require.Equal(t, taskbridge.EventTaskMessage, readEvent(t, c).Type)
		f.env.Complete(t, task)
		require.Equal(t, taskbridge.EventTaskCompleted, readEvent(t, c).Type)
		requireClose(t, c, websocket.StatusNormalClosure)
	}

	// The offer made by hand, as a browser makes it.
	hdr := handshakeHeader()
	hdr.Set("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, f.srv.URL+ws.DefaultPath, nil)
	require.NoError(t, err)
	req.Header = hdr
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	require.Empty(t, resp.Header.Values("Sec-WebSocket-Extensions"))
}

// TestMessageSizes sends events whose messages need each of the three
// WebSocket payload-length encodings (7-bit, 16-bit, 64-bit), in one batch
// and live, and checks that a standard client reads them intact.
func TestMessageSizes(t *testing.T) {
	t.Parallel()
	f := setup(t, ws.Config{})
	task := f.env.CreateTask(t, "alice")
	f.env.Started(t, task)
	sizes := []int{0, 1, 125 - 90, 126, 200, 65535 - 100, 65535, 70000, 200000}
	want := map[string]string{}
	for i, n := range sizes[:5] { // replayed: one batch
		msg := strings.Repeat(string(rune('a'+i)), n)
		want[f.env.Emit(t, task, taskbridge.MessagePayload{Message: msg}).EventID] = msg
	}
	c := f.dial(t, "alice")
	c.SetReadLimit(1 << 20)
	subscribe(t, c, task, ptr("1"))
	readConfirm(t, c, task, ptr("1"))
	check := func() {
		ev := readEvent(t, c)
		var p taskbridge.MessagePayload
		require.NoError(t, json.Unmarshal(ev.Payload, &p))
		require.Equal(t, want[ev.EventID], p.Message, "event %s", ev.EventID)
	}
	for range sizes[:5] {
		check()
	}
	for i, n := range sizes[5:] { // live, one at a time
		msg := strings.Repeat(string(rune('A'+i)), n)
		want[f.env.Emit(t, task, taskbridge.MessagePayload{Message: msg}).EventID] = msg
		check()
	}
	f.env.Complete(t, task)
	require.Equal(t, taskbridge.EventTaskCompleted, readEvent(t, c).Type)
	requireClose(t, c, websocket.StatusNormalClosure)
}

// TestOverTLS: over TLS the reader cannot look at the socket (see
// TestBufferedFramesReadOffTheReader for a plain one) and the library
// reads every frame on the reading goroutine; frames that arrive together
// or one by one are handled all the same: pings answered in order,
// subscriptions confirmed, events delivered, the client's close answered.
func TestOverTLS(t *testing.T) {
	t.Parallel()
	env := streamtest.New(t, streamtest.Options{})
	h := newHandler(t, env, ws.Config{DisableHeartbeats: true})
	t.Cleanup(func() { require.NoError(t, h.Shutdown(context.Background())) })
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	tasks := []string{env.CreateTask(t, "alice"), env.CreateTask(t, "alice"), env.CreateTask(t, "alice")}
	ping := func(p string) []byte { return wsframe.AppendClientFrame(nil, wsframe.OpPing, []byte(p)) }

	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), srv.Client().Transport.(*http.Transport).TLSClientConfig)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(20*time.Second)))
	hs := streamtest.HandshakeRequest(srv.Listener.Addr().String(), ws.DefaultPath, streamtest.Bearer("alice"))
	_, err = conn.Write(slices.Concat(hs, subscribeFrames(t, tasks[0]), ping("with the handshake"), subscribeFrames(t, tasks[1])))
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	c := &rawClient{conn: conn, br: br}
	require.Equal(t, []string{"with the handshake"}, readConfirmedAndPongs(t, c, 2, 1))

	c.write(t, ping("alone"))
	require.Equal(t, []string{"alone"}, readConfirmedAndPongs(t, c, 0, 1))
	c.write(t, slices.Concat(subscribeFrames(t, tasks[2]), ping("after a subscribe frame")))
	require.Equal(t, []string{"after a subscribe frame"}, readConfirmedAndPongs(t, c, 1, 1))

	env.Started(t, tasks[2])
	op, payload, err := streamtest.ReadServerFrame(br)
	require.NoError(t, err)
	require.Equal(t, byte(wsframe.OpText), op)
	protocoltest.ValidateEvent(t, payload)
	require.Contains(t, string(payload), tasks[2])

	c.write(t, wsframe.AppendClientFrame(nil, wsframe.OpClose, binary.BigEndian.AppendUint16(nil, 1000)))
	op, payload, err = streamtest.ReadServerFrame(br)
	require.NoError(t, err)
	require.Equal(t, byte(wsframe.OpClose), op, "%q", payload)
	require.Equal(t, uint16(1000), binary.BigEndian.Uint16(payload))
}
