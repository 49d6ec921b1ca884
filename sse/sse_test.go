package sse_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
	"github.com/taskbridge-go/taskbridge/sse"
)

type fixture struct {
	env *streamtest.Env
	h   *sse.Handler
	srv *httptest.Server
}

// setup serves an sse.Handler at sse.DefaultPattern of a ServeMux.
func setup(t *testing.T, cfg sse.Config, opts streamtest.Options) *fixture {
	t.Helper()
	env := streamtest.New(t, opts)
	h := newHandler(t, env, cfg)
	mux := http.NewServeMux()
	mux.Handle(sse.DefaultPattern, h)
	return &fixture{env: env, h: h, srv: serve(t, h, mux)}
}

func newHandler(t *testing.T, env *streamtest.Env, cfg sse.Config) *sse.Handler {
	t.Helper()
	if cfg.Auth == nil {
		cfg.Auth = streamtest.Auth
	}
	h, err := sse.NewHandler(env.Svc, cfg)
	require.NoError(t, err)
	return h
}

// serve starts a server for handler, after configure has adjusted it (with
// TLS when it enables HTTP/2); on cleanup the sse.Handler is shut down
// first, so the server's Close does not wait for open streams.
func serve(t *testing.T, h *sse.Handler, handler http.Handler, configure ...func(*httptest.Server)) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(handler)
	for _, c := range configure {
		c(srv)
	}
	if srv.EnableHTTP2 {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	t.Cleanup(func() { require.NoError(t, h.Shutdown(context.Background())) })
	return srv
}

func streamURL(base, taskID string) string {
	return base + "/api/v1/tasks/" + taskID + "/events/stream"
}

// get sends GET url as subject (none when ""), with extra headers.
func get(t *testing.T, client *http.Client, url, subject string, hdr http.Header) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header[k] = v
	}
	if subject != "" {
		req.Header.Set("Authorization", "Bearer "+subject)
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// open opens a stream that must succeed.
func (f *fixture) open(t *testing.T, taskID, subject string, hdr http.Header, query string) *bufio.Reader {
	t.Helper()
	url := streamURL(f.srv.URL, taskID)
	if query != "" {
		url += "?" + query
	}
	resp := get(t, f.srv.Client(), url, subject, hdr)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	protocoltest.ValidateHTTP(t, resp, nil) // the head, against the served document
	return bufio.NewReader(resp.Body)
}

// openCancelable opens a stream as alice; cancel drops the connection.
func (f *fixture) openCancelable(t *testing.T, taskID string) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, streamURL(f.srv.URL, taskID), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer alice")
	resp, err := f.srv.Client().Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp, cancel
}

// readEvent reads the next frame and checks it is a valid event frame whose
// id line matches its eventId.
func readEvent(t *testing.T, br *bufio.Reader) taskbridge.TaskEvent {
	t.Helper()
	f, err := streamtest.ReadSSE(br)
	require.NoError(t, err)
	require.True(t, f.HasID, "event frame without id line: %+v", f)
	protocoltest.ValidateSSEFrame(t, f.ID, f.HasID, []byte(f.Data))
	var ev taskbridge.TaskEvent
	require.NoError(t, json.Unmarshal([]byte(f.Data), &ev))
	require.Equal(t, f.ID, ev.EventID)
	return ev
}

// nextEventID skips heartbeats and returns the id of the next event frame.
func nextEventID(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	for {
		fr, err := streamtest.ReadSSE(br)
		require.NoError(t, err)
		protocoltest.ValidateSSEFrame(t, fr.ID, fr.HasID, []byte(fr.Data))
		if fr.HasID {
			return fr.ID
		}
	}
}

func requireEnd(t *testing.T, br *bufio.Reader) {
	t.Helper()
	f, err := streamtest.ReadSSE(br)
	require.ErrorIs(t, err, io.EOF, "expected the stream to end, got %+v", f)
}

func ids(evs ...taskbridge.TaskEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.EventID
	}
	return out
}

// mode is one way of serving streams.
type mode struct {
	name string
	cfg  sse.Config
}

// modes returns cfg for each way of serving a stream: inside ServeHTTP
// (the default) and on the hijacked connection (Config.Hijack).
func modes(cfg sse.Config) []mode {
	hijacked := cfg
	hijacked.Hijack = true
	cfg.Hijack = false
	return []mode{{"in ServeHTTP", cfg}, {"hijacked", hijacked}}
}

// forEachMode runs test in parallel subtests, one per mode (see modes).
func forEachMode(t *testing.T, cfg sse.Config, test func(t *testing.T, cfg sse.Config)) {
	t.Helper()
	for _, m := range modes(cfg) {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			test(t, m.cfg)
		})
	}
}

func TestNewHandlerValidatesConfig(t *testing.T) {
	t.Parallel()
	env := streamtest.New(t, streamtest.Options{})
	for name, cfg := range map[string]sse.Config{
		"no auth":           {},
		"negative timeout":  {Auth: streamtest.Auth, WriteTimeout: -time.Second},
		"huge preamble":     {Auth: streamtest.Auth, Preamble: sse.MaxPreamble + 1},
		"negative preamble": {Auth: streamtest.Auth, Preamble: -1},
	} {
		_, err := sse.NewHandler(env.Svc, cfg)
		require.Error(t, err, name)
	}
	_, err := sse.NewHandler(nil, sse.Config{Auth: streamtest.Auth})
	require.Error(t, err)
}

// TestHeartbeatIntervalIsBounded: the TaskBridge SDK reconnects after 60s
// without a data frame, so an interval whose heartbeats could come later,
// or a negative one, is refused with an error that says why; heartbeats are
// turned off only explicitly.
func TestHeartbeatIntervalIsBounded(t *testing.T) {
	t.Parallel()
	env := streamtest.New(t, streamtest.Options{})
	for _, tc := range []struct {
		cfg sse.Config
		err string // "" for none
	}{
		{sse.Config{}, ""},
		{sse.Config{HeartbeatInterval: time.Millisecond}, ""},
		{sse.Config{HeartbeatInterval: sse.MaxHeartbeatInterval}, ""},
		{sse.Config{HeartbeatInterval: sse.MaxHeartbeatInterval + 1}, "the TaskBridge SDK reconnects after 60s"},
		{sse.Config{HeartbeatInterval: 5 * time.Minute}, "exceeds 40s"},
		{sse.Config{HeartbeatInterval: -1}, "set DisableHeartbeats"},
		{sse.Config{DisableHeartbeats: true}, ""},
		{sse.Config{DisableHeartbeats: true, HeartbeatInterval: time.Second}, "leave the interval zero"},
	} {
		tc.cfg.Auth = streamtest.Auth
		h, err := sse.NewHandler(env.Svc, tc.cfg)
		if tc.err == "" {
			require.NoError(t, err, "%+v", tc.cfg)
			require.NoError(t, h.Shutdown(t.Context()))
			continue
		}
		require.ErrorContains(t, err, tc.err, "%+v", tc.cfg)
		require.ErrorContains(t, err, "sse: ", "%+v", tc.cfg)
	}
}

func TestErrorsAreAnsweredBeforeTheStream(t *testing.T) {
	t.Parallel()
	forEachMode(t, sse.Config{}, testErrorsAreAnsweredBeforeTheStream)
}

func testErrorsAreAnsweredBeforeTheStream(t *testing.T, cfg sse.Config) {
	f := setup(t, cfg, streamtest.Options{MaxEventsPerTask: 2})
	own := f.env.CreateTask(t, "alice")
	f.env.Started(t, own)
	f.env.Progress(t, own, 0.5)
	expired := f.env.CreateTask(t, "alice")
	f.env.Started(t, expired)
	for i := range 3 {
		f.env.Progress(t, expired, float64(i)/10)
	}

	cases := []struct {
		name, subject, taskID, query string
		hdr                          http.Header
		status                       int
		code                         string
	}{
		{"no credentials", "", own, "", nil, 401, taskbridge.CodeAuthentication},
		{"unknown task", "alice", "no-such-task", "", nil, 404, taskbridge.CodeTaskNotFound},
		{"other user's task", "bob", own, "", nil, 404, taskbridge.CodeTaskNotFound},
		{"invalid task id", "alice", "-bad", "", nil, 404, taskbridge.CodeTaskNotFound},
		{"malformed Last-Event-ID", "alice", own, "", http.Header{"Last-Event-Id": {"x1"}}, 400, taskbridge.CodeInvalidRequest},
		{"malformed lastEventId query", "alice", own, "lastEventId=01", nil, 400, taskbridge.CodeInvalidRequest},
		{"cursor beyond the log", "alice", own, "", http.Header{"Last-Event-Id": {"99"}}, 400, taskbridge.CodeInvalidRequest},
		{"expired cursor", "alice", expired, "", http.Header{"Last-Event-Id": {"1"}}, 410, taskbridge.CodeEventsExpired},
		{"Last-Event-ID twice", "alice", own, "", http.Header{"Last-Event-Id": {"99", "1"}}, 400, taskbridge.CodeInvalidRequest},
		{"lastEventId twice", "alice", own, "lastEventId=99&lastEventId=1", nil, 400, taskbridge.CodeInvalidRequest},
		{"malformed query string", "alice", own, "lastEventId=%zz", nil, 400, taskbridge.CodeInvalidRequest},
		{"';' in the query string", "alice", own, "lastEventId=1;x=2", nil, 400, taskbridge.CodeInvalidRequest},
		{"NUL in Last-Event-ID", "alice", own, "lastEventId=1%00", nil, 400, taskbridge.CodeInvalidRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := streamURL(f.srv.URL, tc.taskID)
			if tc.query != "" {
				url += "?" + tc.query
			}
			resp := get(t, f.srv.Client(), url, tc.subject, tc.hdr)
			requireEnvelope(t, resp, tc.status, tc.code)
			if tc.status == 401 {
				require.Equal(t, "Bearer", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}

	t.Run("method not allowed", func(t *testing.T) {
		t.Parallel()
		// Served without a method pattern, the handler itself refuses;
		// a ServeMux "GET" pattern also passes HEAD on to it.
		srv := httptest.NewServer(f.h)
		t.Cleanup(srv.Close)
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodOptions, http.MethodHead} {
			req, err := http.NewRequest(m, streamURL(srv.URL, own), nil)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer alice")
			resp, err := srv.Client().Do(req)
			require.NoError(t, err)
			require.Equal(t, http.MethodGet, resp.Header.Get("Allow"), m)
			if m == http.MethodHead {
				// No body, but the envelope's status and type.
				require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
				require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			} else {
				requireEnvelope(t, resp, http.StatusMethodNotAllowed, taskbridge.CodeInvalidRequest)
			}
			_ = resp.Body.Close()
		}
		req, err := http.NewRequest(http.MethodHead, streamURL(f.srv.URL, own), nil)
		require.NoError(t, err)
		resp, err := f.srv.Client().Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "HEAD through the ServeMux pattern")
		require.Equal(t, http.MethodGet, resp.Header.Get("Allow"))
	})
}

func requireEnvelope(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, status, resp.StatusCode, "body: %s", body)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	protocoltest.ValidateErrorResponse(t, body)
	var env taskbridge.ErrorEnvelope
	require.NoError(t, json.Unmarshal(body, &env))
	require.Equal(t, code, env.Code)
}

func TestHeadersReplayAndLive(t *testing.T) {
	t.Parallel()
	forEachMode(t, sse.Config{}, func(t *testing.T, cfg sse.Config) {
		f := setup(t, cfg, streamtest.Options{})
		task := f.env.CreateTask(t, "alice")
		want := []taskbridge.TaskEvent{f.env.Started(t, task), f.env.Progress(t, task, 0.25)}

		resp := get(t, f.srv.Client(), streamURL(f.srv.URL, task), "alice", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
		require.Equal(t, "no-cache, no-transform", resp.Header.Get("Cache-Control"))
		require.Equal(t, "no", resp.Header.Get("X-Accel-Buffering"))
		// Not chunked: the stream ends with its connection, as net/http
		// writes an HTTP/1.1 response with Transfer-Encoding identity.
		require.Empty(t, resp.TransferEncoding)
		require.True(t, resp.Close, "Connection: close")
		require.Equal(t, int64(-1), resp.ContentLength)
		br := bufio.NewReader(resp.Body)

		for _, w := range want {
			ev := readEvent(t, br)
			require.Equal(t, w.EventID, ev.EventID)
			require.Equal(t, w.Type, ev.Type)
		}
		live := f.env.Progress(t, task, 0.75)
		require.Equal(t, live.EventID, readEvent(t, br).EventID)
		done := f.env.Complete(t, task)
		ev := readEvent(t, br)
		require.Equal(t, done.EventID, ev.EventID)
		require.Equal(t, taskbridge.EventTaskCompleted, ev.Type)
		requireEnd(t, br)
	})
}

func TestHeadersAreFlushedBeforeAnyEvent(t *testing.T) {
	t.Parallel()
	forEachMode(t, sse.Config{}, func(t *testing.T, cfg sse.Config) {
		f := setup(t, cfg, streamtest.Options{})
		task := f.env.CreateTask(t, "alice")
		// The client returns the response once the headers arrive; the
		// task has no events, so only an immediate flush lets it return.
		br := f.open(t, task, "alice", nil, "")
		f.env.Started(t, task)
		require.Equal(t, "1", readEvent(t, br).EventID)
	})
}

func TestReplayStartsStrictlyAfterTheCursor(t *testing.T) {
	t.Parallel()
	forEachMode(t, sse.Config{}, testReplayStartsStrictlyAfterTheCursor)
}

func testReplayStartsStrictlyAfterTheCursor(t *testing.T, cfg sse.Config) {
	f := setup(t, cfg, streamtest.Options{})
	task := f.env.CreateTask(t, "alice")
	all := []taskbridge.TaskEvent{
		f.env.Started(t, task), f.env.Progress(t, task, 0.3), f.env.Progress(t, task, 0.6), f.env.Complete(t, task),
	}
	cases := []struct {
		name  string
		hdr   http.Header
		query string
		from  int
	}{
		{"no cursor", nil, "", 0},
		{"zero cursor", http.Header{"Last-Event-Id": {"0"}}, "", 0},
		{"Last-Event-ID header", http.Header{"Last-Event-Id": {"1"}}, "", 1},
		{"lastEventId query", nil, "lastEventId=2", 2},
		{"header wins over query", http.Header{"Last-Event-Id": {"3"}}, "lastEventId=1", 3},
		{"cursor at the terminal event", http.Header{"Last-Event-Id": {"4"}}, "", 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			br := f.open(t, task, "alice", tc.hdr, tc.query)
			var got []taskbridge.TaskEvent
			for range all[tc.from:] {
				got = append(got, readEvent(t, br))
			}
			require.Equal(t, ids(all[tc.from:]...), ids(got...))
			requireEnd(t, br)
		})
	}
}

func TestHeartbeats(t *testing.T) {
	t.Parallel()
	for _, ping := range []bool{false, true} {
		t.Run(map[bool]string{false: "data only", true: "with comment ping"}[ping], func(t *testing.T) {
			t.Parallel()
			forEachMode(t, sse.Config{HeartbeatInterval: 20 * time.Millisecond, CommentPing: ping}, testHeartbeats)
		})
	}
}

func testHeartbeats(t *testing.T, cfg sse.Config) {
	f := setup(t, cfg, streamtest.Options{})
	task := f.env.CreateTask(t, "alice")
	br := f.open(t, task, "alice", nil, "")

	seen := map[string]bool{}
	for range 3 {
		if cfg.CommentPing {
			fr, err := streamtest.ReadSSE(br)
			require.NoError(t, err)
			require.Equal(t, []string{"ping"}, fr.Comments)
			require.Empty(t, fr.Data)
		}
		hb := readHeartbeat(t, br, task)
		require.False(t, seen[hb], "heartbeat id %s repeated", hb)
		seen[hb] = true
	}
	// Heartbeats are not events: the log is still empty.
	resp, err := f.env.Svc.PollEvents(context.Background(), taskbridge.AuthContext{Subject: "alice"}, task, taskbridge.PollRequest{})
	require.NoError(t, err)
	require.Empty(t, resp.Events)
	// Events still flow, with their own ids.
	f.env.Started(t, task)
	require.Equal(t, "1", nextEventID(t, br))
}

// readHeartbeat reads a heartbeat frame and checks its shape; it returns
// its eventId.
func readHeartbeat(t *testing.T, br *bufio.Reader, taskID string) string {
	t.Helper()
	fr, err := streamtest.ReadSSE(br)
	require.NoError(t, err)
	require.False(t, fr.HasID, "heartbeat must not carry an id line: %+v", fr)
	var hb map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(fr.Data), &hb), fr.Data)
	require.Len(t, hb, 5, fr.Data)
	require.JSONEq(t, `"HEARTBEAT"`, string(hb["type"]))
	require.JSONEq(t, `"`+taskID+`"`, string(hb["taskId"]))
	require.JSONEq(t, `{"live":true}`, string(hb["payload"]))
	var id, created string
	require.NoError(t, json.Unmarshal(hb["eventId"], &id))
	require.True(t, strings.HasPrefix(id, "hb-"), id)
	require.NoError(t, json.Unmarshal(hb["createdAt"], &created))
	_, err = time.Parse(time.RFC3339Nano, created)
	require.NoError(t, err)
	return id
}

func TestResumeAfterDisconnectSeesEveryEventOnce(t *testing.T) {
	t.Parallel()
	forEachMode(t, sse.Config{}, func(t *testing.T, cfg sse.Config) {
		f := setup(t, cfg, streamtest.Options{})
		task := f.env.CreateTask(t, "alice")

		resp, cancel := f.openCancelable(t, task)
		br := bufio.NewReader(resp.Body)

		want := []taskbridge.TaskEvent{f.env.Started(t, task), f.env.Progress(t, task, 0.1), f.env.Progress(t, task, 0.2)}
		var got []taskbridge.TaskEvent
		for range 2 {
			got = append(got, readEvent(t, br))
		}
		// The client drops the connection having seen two of three events.
		cancel()
		_ = resp.Body.Close()
		for i := range 3 {
			want = append(want, f.env.Progress(t, task, 0.3+float64(i)/10))
		}

		br = f.open(t, task, "alice", http.Header{"Last-Event-Id": {got[len(got)-1].EventID}}, "")
		for range want[len(got):] {
			got = append(got, readEvent(t, br))
		}
		want = append(want, f.env.Complete(t, task))
		got = append(got, readEvent(t, br))
		requireEnd(t, br)
		require.Equal(t, ids(want...), ids(got...))
	})
}

func TestMountings(t *testing.T) {
	t.Parallel()
	env := streamtest.New(t, streamtest.Options{})
	task := env.CreateTask(t, "alice")
	env.Started(t, task)

	type mounting struct {
		name    string
		cfg     sse.Config
		handler func(h http.Handler) http.Handler
		path    string
	}
	mountings := []mounting{
		{"ServeMux default pattern", sse.Config{}, func(h http.Handler) http.Handler {
			mux := http.NewServeMux()
			mux.Handle(sse.DefaultPattern, h)
			return mux
		}, "/api/v1/tasks/" + task + "/events/stream"},
		{"ServeMux own pattern", sse.Config{}, func(h http.Handler) http.Handler {
			mux := http.NewServeMux()
			mux.Handle("GET /streams/{taskId}", h)
			return mux
		}, "/streams/" + task},
		{"ServeMux prefix without wildcard", sse.Config{}, func(h http.Handler) http.Handler {
			mux := http.NewServeMux()
			mux.Handle("/legacy/", h)
			return mux
		}, "/legacy/api/v1/tasks/" + task + "/events/stream"},
		{"chi route", sse.Config{}, func(h http.Handler) http.Handler {
			r := chi.NewRouter()
			r.Method(http.MethodGet, "/api/v1/tasks/{taskId}/events/stream", h)
			return r
		}, "/api/v1/tasks/" + task + "/events/stream"},
		{"chi Mount", sse.Config{}, func(h http.Handler) http.Handler {
			r := chi.NewRouter()
			r.Mount("/api/v1/tasks/{taskId}/events/stream", h)
			return r
		}, "/api/v1/tasks/" + task + "/events/stream"},
		{"chi sub-router with middleware", sse.Config{}, func(h http.Handler) http.Handler {
			r := chi.NewRouter()
			r.Route("/v2", func(r chi.Router) {
				r.Use(func(next http.Handler) http.Handler {
					return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						w.Header().Set("X-Host-Middleware", "yes")
						next.ServeHTTP(w, r)
					})
				})
				r.Get("/jobs/{taskId}/feed", h.ServeHTTP)
			})
			return r
		}, "/v2/jobs/" + task + "/feed"},
		{"custom TaskID", sse.Config{TaskID: func(r *http.Request) string { return r.URL.Query().Get("task") }},
			func(h http.Handler) http.Handler { return h }, "/anything?task=" + task},
	}
	for _, m := range mountings {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			forEachMode(t, m.cfg, func(t *testing.T, cfg sse.Config) {
				h := newHandler(t, env, cfg)
				srv := serve(t, h, m.handler(h))
				resp := get(t, srv.Client(), srv.URL+m.path, "alice", nil)
				require.Equal(t, http.StatusOK, resp.StatusCode)
				if strings.HasPrefix(m.path, "/v2/") {
					require.Equal(t, "yes", resp.Header.Get("X-Host-Middleware"))
				}
				require.Equal(t, "1", readEvent(t, bufio.NewReader(resp.Body)).EventID)

				other := strings.Replace(m.path, task, "no-such-task", 1)
				requireEnvelope(t, get(t, srv.Client(), srv.URL+other, "alice", nil), 404, taskbridge.CodeTaskNotFound)
			})
		})
	}
}

func TestTaskIDFromPath(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]string{
		"/api/v1/tasks/abc/events/stream":  "abc",
		"/api/v1/tasks/abc/events/stream/": "abc",
		"/x/a.b@c-d/events/stream":         "a.b@c-d",
		"/api/v1/tasks/abc/events":         "",
		"/events/stream":                   "",
	} {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		require.Equal(t, want, sse.TaskIDFromPath(r), path)
	}
	r := httptest.NewRequest(http.MethodGet, "/whatever", nil)
	r.SetPathValue("taskId", "from-pattern")
	require.Equal(t, "from-pattern", sse.TaskIDFromPath(r))
}

func TestPreamble(t *testing.T) {
	t.Parallel()
	forEachMode(t, sse.Config{Preamble: 2048}, func(t *testing.T, cfg sse.Config) {
		f := setup(t, cfg, streamtest.Options{})
		task := f.env.CreateTask(t, "alice")
		f.env.Started(t, task)
		br := f.open(t, task, "alice", nil, "")
		fr, err := streamtest.ReadSSE(br)
		require.NoError(t, err)
		require.Len(t, fr.Comments, 1)
		require.Equal(t, "preamble "+strings.Repeat(" ", 2048), fr.Comments[0])
		require.False(t, fr.HasID)
		require.Equal(t, "1", readEvent(t, br).EventID)
	})
}

func TestRetry(t *testing.T) {
	t.Parallel()
	forEachMode(t, sse.Config{Retry: 1500 * time.Millisecond}, func(t *testing.T, cfg sse.Config) {
		f := setup(t, cfg, streamtest.Options{})
		task := f.env.CreateTask(t, "alice")
		f.env.Started(t, task)
		br := f.open(t, task, "alice", nil, "")
		fr, err := streamtest.ReadSSE(br)
		require.NoError(t, err)
		require.Equal(t, "1500", fr.Retry)
		require.False(t, fr.HasID)
		require.Equal(t, "1", readEvent(t, br).EventID)
	})
	env := streamtest.New(t, streamtest.Options{})
	_, err := sse.NewHandler(env.Svc, sse.Config{Auth: streamtest.Auth, Retry: -time.Second})
	require.ErrorContains(t, err, "Retry")
}

// TestServerTimeoutsDoNotCutStreams serves streams from a server with short
// ReadTimeout and WriteTimeout: the stream must outlive both.
func TestServerTimeoutsDoNotCutStreams(t *testing.T) {
	t.Parallel()
	forEachMode(t, sse.Config{HeartbeatInterval: 20 * time.Millisecond}, func(t *testing.T, cfg sse.Config) {
		env := streamtest.New(t, streamtest.Options{})
		h := newHandler(t, env, cfg)
		const timeout = 100 * time.Millisecond
		srv := serve(t, h, h, func(srv *httptest.Server) {
			srv.Config.ReadTimeout = timeout
			srv.Config.WriteTimeout = timeout
		})

		task := env.CreateTask(t, "alice")
		resp := get(t, srv.Client(), streamURL(srv.URL, task), "alice", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		br := bufio.NewReader(resp.Body)
		start := time.Now()
		for time.Since(start) < 4*timeout {
			readHeartbeat(t, br, task)
		}
		env.Started(t, task)
		require.Equal(t, "1", nextEventID(t, br))
	})
}

// TestSlowConsumerIsDisconnected: a client that stops reading is dropped
// after the write timeout, while another client of the same task gets
// every event.
func TestSlowConsumerIsDisconnected(t *testing.T) {
	t.Parallel()
	forEachMode(t, sse.Config{WriteTimeout: 2 * time.Second}, func(t *testing.T, cfg sse.Config) {
		metrics := &taskbridge.MemoryMetrics{}
		env := streamtest.New(t, streamtest.Options{Metrics: metrics})
		h := newHandler(t, env, cfg)
		srv := streamtest.SmallBufferServer(t, h)
		t.Cleanup(func() { require.NoError(t, h.Shutdown(context.Background())) })
		task := env.CreateTask(t, "alice")
		active := activeStreams(metrics)
		dialStalled(t, srv, task)
		require.Eventually(t, func() bool { return active() == 1 }, 5*time.Second, time.Millisecond)

		resp := get(t, srv.Client(), streamURL(srv.URL, task), "alice", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		br := bufio.NewReader(resp.Body)
		big := strings.Repeat("x", 60_000)
		const n = 30 // ~1.8 MB, far more than the socket buffers hold
		// The healthy client reads each event as it is published (were it
		// to wait for all of them, its own writes would stall for as long
		// as publishing takes, which may exceed the write timeout).
		env.Started(t, task)
		require.Equal(t, "1", nextEventID(t, br))
		for i := range n {
			env.Emit(t, task, taskbridge.MessagePayload{Message: big})
			require.Equal(t, strconv.Itoa(i+2), nextEventID(t, br))
		}
		env.Complete(t, task)
		require.Equal(t, strconv.Itoa(n+2), nextEventID(t, br))
		requireEnd(t, br)
		// The stalled stream was dropped by its write deadline.
		require.Eventually(t, func() bool { return active() == 0 }, 5*time.Second, time.Millisecond)
		// The stalled stream counts as a slow consumer, the healthy one
		// ended at the terminal event.
		require.EqualValues(t, 1, metrics.Value(taskbridge.MetricSlowConsumerDisconnects, taskbridge.Label{Name: "transport", Value: "sse"}))
	})
}

// activeStreams returns a function reporting the open SSE streams.
func activeStreams(metrics *taskbridge.MemoryMetrics) func() int64 {
	return func() int64 {
		return metrics.Value(taskbridge.MetricStreamsActive, taskbridge.Label{Name: "transport", Value: "sse"})
	}
}

// dialStalled opens a stream of task as alice from a client with a small
// socket buffer that sends its request and never reads.
func dialStalled(t *testing.T, srv *httptest.Server, task string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.(*net.TCPConn).SetReadBuffer(4096))
	_, err = conn.Write([]byte("GET /api/v1/tasks/" + task + "/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice\r\n\r\n"))
	require.NoError(t, err)
	return conn
}

// TestShutdown ends streams by Handler.Shutdown, Handler.Close and the
// service's Shutdown; new requests then get 503.
func TestShutdown(t *testing.T) {
	t.Parallel()
	for _, by := range []string{"handler", "close", "service"} {
		t.Run(by, func(t *testing.T) {
			t.Parallel()
			forEachMode(t, sse.Config{}, func(t *testing.T, cfg sse.Config) {
				f := setup(t, cfg, streamtest.Options{})
				task := f.env.CreateTask(t, "alice")
				br := f.open(t, task, "alice", nil, "")

				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				errc := make(chan error, 1)
				go func() {
					switch by {
					case "handler":
						errc <- f.h.Shutdown(ctx)
					case "close":
						f.h.Close()
						errc <- nil
					default:
						errc <- f.env.Svc.Shutdown(ctx)
					}
				}()
				requireEnd(t, br)
				require.NoError(t, <-errc)
				requireEnvelope(t, get(t, f.srv.Client(), streamURL(f.srv.URL, task), "alice", nil), 503, taskbridge.CodeUnavailable)
				require.NoError(t, f.h.Shutdown(ctx), "Shutdown after shutdown")
			})
		})
	}
}

func TestClientDisconnectEndsTheHandler(t *testing.T) {
	t.Parallel()
	forEachMode(t, sse.Config{}, func(t *testing.T, cfg sse.Config) {
		metrics := &taskbridge.MemoryMetrics{}
		f := setup(t, cfg, streamtest.Options{Metrics: metrics})
		task := f.env.CreateTask(t, "alice")
		resp, cancel := f.openCancelable(t, task)
		active := activeStreams(metrics)
		require.Equal(t, int64(1), active())
		cancel()
		_, err := io.ReadAll(resp.Body)
		require.True(t, errors.Is(err, context.Canceled) || err == nil, "%v", err)
		_ = resp.Body.Close()
		require.Eventually(t, func() bool { return active() == 0 }, 5*time.Second, time.Millisecond)
	})
}

// TestHandlerLifetime: a stream's ServeHTTP returns when the stream ends;
// with Hijack it returns once the stream has started. Headers set by host
// middleware reach the client either way.
func TestHandlerLifetime(t *testing.T) {
	t.Parallel()
	forEachMode(t, sse.Config{}, func(t *testing.T, cfg sse.Config) {
		env := streamtest.New(t, streamtest.Options{})
		h := newHandler(t, env, cfg)
		returned := make(chan struct{}, 1)
		srv := serve(t, h, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Access-Control-Allow-Origin", "https://app.example")
			h.ServeHTTP(w, r)
			returned <- struct{}{}
		}))
		task := env.CreateTask(t, "alice")
		env.Started(t, task)
		resp := get(t, srv.Client(), streamURL(srv.URL, task), "alice", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "https://app.example", resp.Header.Get("Access-Control-Allow-Origin"))
		br := bufio.NewReader(resp.Body)
		require.Equal(t, "1", readEvent(t, br).EventID)
		if cfg.Hijack {
			<-returned // the stream is still open
		}
		env.Complete(t, task)
		require.Equal(t, "2", readEvent(t, br).EventID)
		requireEnd(t, br)
		if !cfg.Hijack {
			<-returned
		}
	})
}

// TestHTTP2 serves a stream over HTTP/2, which cannot be hijacked: it
// stays in ServeHTTP even with Hijack set.
func TestHTTP2(t *testing.T) {
	t.Parallel()
	forEachMode(t, sse.Config{}, func(t *testing.T, cfg sse.Config) {
		env := streamtest.New(t, streamtest.Options{})
		h := newHandler(t, env, cfg)
		returned := make(chan struct{}, 1)
		srv := serve(t, h, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r)
			returned <- struct{}{}
		}), func(srv *httptest.Server) { srv.EnableHTTP2 = true })

		task := env.CreateTask(t, "alice")
		env.Started(t, task)
		resp := get(t, srv.Client(), streamURL(srv.URL, task), "alice", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, 2, resp.ProtoMajor)
		require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
		br := bufio.NewReader(resp.Body)
		require.Equal(t, "1", readEvent(t, br).EventID)
		select {
		case <-returned:
			t.Fatal("ServeHTTP returned while the stream was open")
		default:
		}
		env.Complete(t, task)
		require.Equal(t, "2", readEvent(t, br).EventID)
		requireEnd(t, br)
		<-returned
	})
}

// TestShutdownEndsStalledStreams: a client that never reads keeps its
// stream blocked in a write. When Shutdown's context ends, the stream is
// forced to end (a hijacked connection is closed; inside ServeHTTP the
// deadlines move into the past) and Shutdown returns once it has finished,
// long before the write deadline. Not parallel: it checks for leaked
// goroutines.
func TestShutdownEndsStalledStreams(t *testing.T) {
	for _, m := range modes(sse.Config{WriteTimeout: time.Minute, DisableHeartbeats: true}) {
		t.Run(m.name, func(t *testing.T) { testShutdownEndsStalledStreams(t, m.cfg) })
	}
}

func testShutdownEndsStalledStreams(t *testing.T, cfg sse.Config) {
	metrics := &taskbridge.MemoryMetrics{}
	env := streamtest.New(t, streamtest.Options{Metrics: metrics})
	h := newHandler(t, env, cfg)
	srv := streamtest.SmallBufferServer(t, h)
	active := activeStreams(metrics)
	// ~1.2 MB of events, replayed in one batch, far more than the socket
	// buffers hold: the stream's first write blocks, and it does not look
	// at the handler's shutdown signal until the batch is written.
	task := env.CreateTask(t, "alice")
	env.Started(t, task)
	big := strings.Repeat("x", 60_000)
	for range 20 {
		env.Emit(t, task, taskbridge.MessagePayload{Message: big})
	}
	before := goleak.IgnoreCurrent()
	conn := dialStalled(t, srv, task)
	require.Eventually(t, func() bool { return active() == 1 }, 5*time.Second, time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	require.ErrorIs(t, h.Shutdown(ctx), context.DeadlineExceeded)
	require.Less(t, time.Since(start), 30*time.Second, "Shutdown waited for the write deadline")
	// The subscription was released before Shutdown returned.
	require.Equal(t, int64(0), active())

	// The client sees the connection end, and no goroutine of the stream
	// (net/http's included) is left.
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err := io.Copy(io.Discard, conn)
	var nerr net.Error
	require.False(t, errors.As(err, &nerr) && nerr.Timeout(), "the connection was not closed: %v", err)
	require.NoError(t, goleak.Find(before))
	require.NoError(t, h.Shutdown(context.Background()), "Shutdown after shutdown")
}
