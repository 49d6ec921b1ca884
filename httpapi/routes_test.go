package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/httpapi"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/sse"
)

func TestNewConfigErrors(t *testing.T) {
	t.Parallel()
	svc, err := taskbridge.New(taskbridge.Config{Store: memstore.New(memstore.Config{}), Executor: &fakeExec{}})
	require.NoError(t, err)

	_, err = httpapi.New(nil, httpapi.Config{Auth: bearerAuth})
	require.Error(t, err)
	_, err = httpapi.New(svc, httpapi.Config{})
	require.ErrorContains(t, err, "Auth")

	for name, mod := range map[string]func(*httpapi.Config){
		"relative":            func(c *httpapi.Config) { c.Paths.Health = "health" },
		"trailing slash":      func(c *httpapi.Config) { c.Paths.Tasks = "/api/tasks/" },
		"empty segment":       func(c *httpapi.Config) { c.Paths.Ready = "/a//ready" },
		"other parameter":     func(c *httpapi.Config) { c.Paths.Events = "/t/{id}/events" },
		"regexp parameter":    func(c *httpapi.Config) { c.Paths.Events = "/t/{taskId:[a-z]+}/events" },
		"partial segment":     func(c *httpapi.Config) { c.Paths.Events = "/t/x{taskId}/events" },
		"parameter twice":     func(c *httpapi.Config) { c.Paths.Cancel = "/t/{taskId}/{taskId}" },
		"missing parameter":   func(c *httpapi.Config) { c.Paths.Actions = "/t/actions" },
		"unexpected param":    func(c *httpapi.Config) { c.Paths.Tasks = "/t/{taskId}" },
		"wildcard":            func(c *httpapi.Config) { c.Paths.WebSocket = "/ws/*" },
		"duplicate route":     func(c *httpapi.Config) { c.Paths.Events = "/api/v1/tasks/{taskId}" },
		"negative file limit": func(c *httpapi.Config) { c.Uploads.MaxFileBytes = -1 },
		"negative json limit": func(c *httpapi.Config) { c.MaxJSONBytes = -1 },
		"bad content type":    func(c *httpapi.Config) { c.Uploads.AllowedContentTypes = []string{"png"} },
	} {
		cfg := httpapi.Config{Auth: bearerAuth}
		mod(&cfg)
		_, err := httpapi.New(svc, cfg)
		require.Error(t, err, name)
	}

	// Same path, different methods is fine; so are custom paths.
	_, err = httpapi.New(svc, httpapi.Config{Auth: bearerAuth, Paths: httpapi.Paths{
		Tasks: "/jobs", Task: "/jobs/{taskId}", Events: "/jobs/{taskId}/log", Cancel: "/jobs/{taskId}",
		Actions: "/jobs/{taskId}/answer", Health: "/", Ready: "/jobs/ready",
	}})
	require.NoError(t, err)
}

func TestCustomPaths(t *testing.T) {
	t.Parallel()
	e := setup(t, withConfig(func(c *httpapi.Config) {
		c.Paths = httpapi.Paths{Tasks: "/jobs", Task: "/jobs/{taskId}", Events: "/jobs/{taskId}/log", Cancel: "/jobs/{taskId}",
			Health: "/healthz", Ready: "/jobs/ready"}
	}))
	resp := e.alice.do(http.MethodPost, "/jobs", strings.NewReader(`{"clientRequestId":"a","taskType":"t"}`), "application/json")
	require.Equal(t, http.StatusCreated, resp.Status)
	var created taskbridge.CreateTaskResponse
	resp.decode(&created)
	e.emit(created.TaskID, taskbridge.StartedPayload{})
	resp = e.alice.get("/jobs/" + created.TaskID + "/log?waitTimeoutMs=0")
	require.Equal(t, http.StatusOK, resp.Status)
	require.Contains(t, string(resp.Body), "TASK_STARTED")
	resp = e.alice.do(http.MethodPost, "/jobs/"+created.TaskID, nil, "")
	require.Equal(t, http.StatusAccepted, resp.Status)
	// "ready" is a literal and wins over {taskId}.
	require.Equal(t, http.StatusOK, e.anon.get("/jobs/ready").Status)
	require.Equal(t, http.StatusOK, e.anon.get("/healthz").Status)
	e.alice.get("/api/v1/tasks").errorEnvelope(http.StatusNotFound, taskbridge.CodeInvalidRequest)
}

func TestUnknownRoutesAndMethods(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.createTask("req-1")
	for _, path := range []string{"/", "/nope", "/api/v1", "/api/v1/tasks/", "/api/v1/tasks/" + id + "/unknown",
		"/api/v1/tasks/" + id + "/events/stream", "/api/v1/tasks//events", "/health/x"} {
		e.alice.get(path).errorEnvelope(http.StatusNotFound, taskbridge.CodeInvalidRequest)
	}
	e.alice.do("PROPFIND", "/nope", nil, "").errorEnvelope(http.StatusNotFound, taskbridge.CodeInvalidRequest)
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodDelete, "/api/v1/tasks", "GET, POST"},
		{http.MethodPut, "/api/v1/tasks/" + id, "GET"},
		{http.MethodPost, "/api/v1/tasks/" + id + "/events", "GET"},
		{http.MethodGet, "/api/v1/tasks/" + id + "/cancel", "POST"},
		{http.MethodGet, "/api/v1/tasks/" + id + "/actions", "POST"},
		{http.MethodPost, "/health", "GET, HEAD"},
		{http.MethodOptions, "/ready", "GET, HEAD"},
		{"PROPFIND", "/api/v1/tasks", "GET, POST"}, // a method chi does not know
	} {
		resp := e.anon.do(tc.method, tc.path, nil, "")
		resp.errorEnvelope(http.StatusMethodNotAllowed, taskbridge.CodeInvalidRequest)
		require.Equal(t, tc.allow, resp.Header.Get("Allow"), tc.method+" "+tc.path)
	}
	// Without a WebSocket handler, ws is just a task id nobody has.
	e.alice.get("/api/v1/tasks/ws").errorEnvelope(http.StatusNotFound, taskbridge.CodeTaskNotFound)
}

// TestStreamRoutesAcceptGETOnly: the stream and WebSocket routes answer
// every other method, HEAD and OPTIONS included, with a 405 envelope and
// Allow: GET, without reaching the streaming handlers.
func TestStreamRoutesAcceptGETOnly(t *testing.T) {
	t.Parallel()
	sse, ws := &stub{}, &stub{}
	e := setup(t, withConfig(func(c *httpapi.Config) { c.Stream, c.WebSocket = sse, ws }))
	id := e.createTask("req-1")
	for _, path := range []string{"/api/v1/tasks/" + id + "/events/stream", "/api/v1/tasks/ws"} {
		for _, method := range []string{http.MethodHead, http.MethodOptions, http.MethodPost, http.MethodPut, http.MethodDelete} {
			resp := e.alice.do(method, path, nil, "")
			require.Equal(t, "GET", resp.Header.Get("Allow"), method+" "+path)
			if method == http.MethodHead {
				require.Equal(t, http.StatusMethodNotAllowed, resp.Status)
				require.Empty(t, resp.Body)
				continue
			}
			resp.errorEnvelope(http.StatusMethodNotAllowed, taskbridge.CodeInvalidRequest)
		}
	}
	require.Empty(t, sse.requests())
	require.Empty(t, ws.requests())
	// Unknown routes next to them are 404 envelopes.
	for _, path := range []string{"/api/v1/tasks/" + id + "/events/stream/x", "/api/v1/tasks/ws/x"} {
		e.alice.get(path).errorEnvelope(http.StatusNotFound, taskbridge.CodeInvalidRequest)
	}
}

func TestHealthAndReady(t *testing.T) {
	t.Parallel()
	var failing atomic.Bool
	e := setup(t, withService(func(c *taskbridge.Config) {
		c.Probes = taskbridge.Readiness{"cache": taskbridge.ProbeFunc(func(context.Context) error {
			if failing.Load() {
				return errors.New("cache unreachable")
			}
			return nil
		})}
	}))
	resp := e.anon.get("/health")
	require.Equal(t, http.StatusOK, resp.Status)
	require.JSONEq(t, `{"status":"ok"}`, string(resp.Body))
	head := e.anon.do(http.MethodHead, "/health", nil, "")
	require.Equal(t, http.StatusOK, head.Status)
	require.Empty(t, head.Body)

	resp = e.anon.get("/ready")
	require.Equal(t, http.StatusOK, resp.Status)
	require.JSONEq(t, `{"status":"ready","details":{"service":{"status":"ready"},"store":{"status":"ready"},"cache":{"status":"ready"}}}`, string(resp.Body))

	failing.Store(true)
	resp = e.anon.get("/ready")
	failing.Store(false)
	require.Equal(t, http.StatusServiceUnavailable, resp.Status)
	var rep taskbridge.ReadinessReport
	resp.decode(&rep)
	require.Equal(t, "not_ready", rep.Status)
	require.Equal(t, taskbridge.ProbeResult{Status: "not_ready", Message: "cache unreachable"}, rep.Details["cache"])
	require.Equal(t, "ready", rep.Details["store"].Status)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, e.svc.Shutdown(ctx))
	resp = e.anon.get("/ready")
	require.Equal(t, http.StatusServiceUnavailable, resp.Status)
	require.Equal(t, http.StatusOK, e.anon.get("/health").Status)
}

func TestReadyTimeout(t *testing.T) {
	t.Parallel()
	e := setup(t,
		withConfig(func(c *httpapi.Config) { c.ReadyTimeout = 50 * time.Millisecond }),
		withService(func(c *taskbridge.Config) {
			c.Probes = taskbridge.Readiness{"stuck": taskbridge.ProbeFunc(func(ctx context.Context) error {
				<-ctx.Done()
				return ctx.Err()
			})}
		}))
	start := time.Now()
	resp := e.anon.get("/ready")
	require.Equal(t, http.StatusServiceUnavailable, resp.Status)
	require.Less(t, time.Since(start), 10*time.Second)
	require.Contains(t, string(resp.Body), "deadline exceeded")
}

// stub stands in for the sse and ws handlers and records what it received.
type stub struct {
	mu   sync.Mutex
	seen []string // "path taskId"
}

func (s *stub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.seen = append(s.seen, r.URL.Path+" "+r.PathValue("taskId"))
	s.mu.Unlock()
	w.Header().Set("X-Stub", "yes")
	w.WriteHeader(http.StatusTeapot)
}

func (s *stub) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

// hostMiddleware is the host's own middleware around the mounted handler.
func hostMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Host", "seen")
		next.ServeHTTP(w, r)
	})
}

func hostRoute(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("host")) }

func TestMounting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		prefix string
		mount  func(h http.Handler) http.Handler
		// streamPath is the URL path the stream handler sees.
		streamPath string
	}{
		{"chi at root", "", func(h http.Handler) http.Handler {
			r := chi.NewRouter()
			r.Use(hostMiddleware)
			r.Get("/host", hostRoute)
			r.Mount("/", h)
			return r
		}, "/api/v1/tasks/%s/events/stream"},
		{"chi under prefix", "/tb", func(h http.Handler) http.Handler {
			r := chi.NewRouter()
			r.Use(hostMiddleware)
			r.Get("/host", hostRoute)
			r.Mount("/tb", h)
			return r
		}, "/tb/api/v1/tasks/%s/events/stream"},
		{"chi nested route", "/v/tb", func(h http.Handler) http.Handler {
			r := chi.NewRouter()
			r.Get("/host", hostRoute)
			r.Route("/v", func(r chi.Router) {
				r.Use(hostMiddleware)
				r.Mount("/tb", h)
			})
			return r
		}, "/v/tb/api/v1/tasks/%s/events/stream"},
		{"chi Mount and StripPrefix", "/x/tb", func(h http.Handler) http.Handler {
			sub := chi.NewRouter()
			sub.Handle("/tb/*", http.StripPrefix("/x/tb", h))
			r := chi.NewRouter()
			r.Use(hostMiddleware)
			r.Get("/host", hostRoute)
			r.Mount("/x", sub)
			return r
		}, "/api/v1/tasks/%s/events/stream"},
		{"ServeMux at root", "", func(h http.Handler) http.Handler {
			mux := http.NewServeMux()
			mux.HandleFunc("GET /host", hostRoute)
			mux.Handle("/", h)
			return hostMiddleware(mux)
		}, "/api/v1/tasks/%s/events/stream"},
		{"ServeMux with StripPrefix", "/tb", func(h http.Handler) http.Handler {
			mux := http.NewServeMux()
			mux.HandleFunc("GET /host", hostRoute)
			mux.Handle("/tb/", http.StripPrefix("/tb", h))
			return hostMiddleware(mux)
		}, "/api/v1/tasks/%s/events/stream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sse, ws := &stub{}, &stub{}
			e := setup(t,
				withConfig(func(c *httpapi.Config) { c.Stream, c.WebSocket = sse, ws }),
				func(o *options) { o.prefix, o.mount = tc.prefix, tc.mount })

			id := e.createTask("req-1")
			e.emit(id, taskbridge.StartedPayload{})
			resp := e.alice.get("/api/v1/tasks/" + id + "/events?waitTimeoutMs=0")
			require.Equal(t, http.StatusOK, resp.Status)
			require.Equal(t, "seen", resp.Header.Get("X-Host"), "the host's middleware runs")
			require.Equal(t, http.StatusOK, e.alice.get("/api/v1/tasks/"+id).Status)
			require.Equal(t, http.StatusAccepted, e.alice.postRaw("/api/v1/tasks/"+id+"/cancel", "").Status)
			require.Equal(t, http.StatusOK, e.anon.get("/health").Status)
			e.alice.get("/api/v1/nothing").errorEnvelope(http.StatusNotFound, taskbridge.CodeInvalidRequest)

			// A percent-encoded task id is the same task id.
			enc := percentEncodeFirst(id)
			resp = e.alice.get("/api/v1/tasks/" + enc + "/events?waitTimeoutMs=0")
			require.Equal(t, http.StatusOK, resp.Status, "%s", resp.Body)
			require.Contains(t, string(resp.Body), "TASK_STARTED")
			require.Equal(t, http.StatusOK, e.alice.get("/api/v1/tasks/"+enc).Status)

			// The streaming handlers get the request as routed, with the
			// decoded task id as a path value; ws wins over {taskId}.
			for _, p := range []string{"/api/v1/tasks/" + id + "/events/stream", "/api/v1/tasks/" + enc + "/events/stream", "/api/v1/tasks/ws"} {
				req := e.alice.newRequest(context.Background(), http.MethodGet, p, nil, "")
				status, header, _, err := send(req)
				require.NoError(t, err)
				require.Equal(t, http.StatusTeapot, status, p)
				require.Equal(t, "yes", header.Get("X-Stub"))
			}
			streamed := strings.Replace(tc.streamPath, "%s", id, 1) + " " + id
			require.Equal(t, []string{streamed, streamed}, sse.requests())
			require.Len(t, ws.requests(), 1)
			require.True(t, strings.HasSuffix(ws.requests()[0], "/api/v1/tasks/ws "), ws.requests()[0])
			// Streams accept GET only.
			req := e.alice.newRequest(context.Background(), http.MethodPost, "/api/v1/tasks/ws", nil, "")
			status, header, body, err := send(req)
			require.NoError(t, err)
			e.alice.check(req, status, header, body).errorEnvelope(http.StatusMethodNotAllowed, taskbridge.CodeInvalidRequest)

			// A method the host's own route lacks reaches the API, which
			// has no such route.
			if tc.prefix == "" {
				e.anon.do(http.MethodPost, "/host", nil, "").errorEnvelope(http.StatusNotFound, taskbridge.CodeInvalidRequest)
			}

			// The host's own routes still work.
			hreq, err := http.NewRequest(http.MethodGet, e.srv.URL+"/host", nil)
			require.NoError(t, err)
			status, _, body, err = send(hreq)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, status)
			require.Equal(t, "host", string(body))
		})
	}
}

// TestLogging checks the log fields of HTTP operations, and that payload
// contents never reach the log.
func TestLogging(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{mu: &mu, w: &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := setup(t, withService(func(c *taskbridge.Config) { c.Logger = logger }))

	resp := e.alice.postJSON("/api/v1/tasks", map[string]any{
		"clientRequestId": "req-log", "taskType": "t", "input": map[string]any{"secret": "PAYLOAD-SECRET"},
	})
	require.Equal(t, http.StatusCreated, resp.Status)
	var created taskbridge.CreateTaskResponse
	resp.decode(&created)
	e.alice.postJSON("/api/v1/tasks", map[string]any{"clientRequestId": "req-log", "taskType": "t", "input": map[string]any{"secret": "OTHER-SECRET"}})
	e.alice.postRaw("/api/v1/tasks/"+created.TaskID+"/actions", `{"clientActionId":"a","suspendId":"s","actionType":"x","payload":{"p":"ACTION-SECRET"}}`)

	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, secret := range []string{"PAYLOAD-SECRET", "OTHER-SECRET", "ACTION-SECRET"} {
		require.NotContains(t, out, secret)
	}
	var httpLines []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		if rec["transport"] == "http" {
			httpLines = append(httpLines, rec)
		}
	}
	require.Len(t, httpLines, 3)
	for _, rec := range httpLines {
		require.Equal(t, "alice", rec["userId"])
	}
	require.Equal(t, "created", httpLines[0]["outcome"])
	require.Equal(t, created.TaskID, httpLines[0]["taskId"])
	require.Equal(t, "req-log", httpLines[0]["clientRequestId"])
	require.Equal(t, taskbridge.CodeIdempotencyConflict, httpLines[1]["outcome"])
	require.EqualValues(t, http.StatusConflict, httpLines[1]["status"])
	require.Equal(t, taskbridge.CodeTaskNotFound, httpLines[2]["outcome"])
	require.Equal(t, created.TaskID, httpLines[2]["taskId"])
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// percentEncodeFirst percent-encodes the first byte of s, which no client
// needs to do but any may.
func percentEncodeFirst(s string) string { return fmt.Sprintf("%%%02X", s[0]) + s[1:] }

// TestEncodedTaskIDs: route parameters are matched on the escaped path and
// then decoded, so an encoded "/" stays inside its segment and an encoded
// valid id reaches its task.
func TestEncodedTaskIDs(t *testing.T) {
	t.Parallel()
	sse := &stub{}
	e := setup(t, withConfig(func(c *httpapi.Config) { c.Stream = sse }))
	id := e.createTask("req-1")
	e.emit(id, taskbridge.StartedPayload{})

	enc := percentEncodeFirst(id)
	require.Len(t, e.alice.poll(enc, "waitTimeoutMs=0").Events, 1)
	require.Equal(t, http.StatusAccepted, e.alice.postRaw("/api/v1/tasks/"+enc+"/cancel", "").Status)
	require.Equal(t, []string{id}, e.exec.cancels())
	resp := e.alice.postRaw("/api/v1/tasks/"+enc+"/actions", `{"clientActionId":"a","suspendId":"s","actionType":"x"}`)
	resp.errorEnvelope(http.StatusNotFound, taskbridge.CodeTaskNotFound) // routed: the task has no such suspension

	// An encoded "/" or "%" is part of the id, which is then no valid id.
	for _, bad := range []string{id[:4] + "%2F" + id[4:], id + "%25", "%2E%2E"} {
		e.alice.get("/api/v1/tasks/"+bad+"/events").errorEnvelope(http.StatusNotFound, taskbridge.CodeTaskNotFound)
		e.alice.get("/api/v1/tasks/"+bad).errorEnvelope(http.StatusNotFound, taskbridge.CodeTaskNotFound)
	}
	// A double-encoded id is decoded once: "%2533..." is the id "%33...".
	e.alice.get("/api/v1/tasks/"+url.PathEscape(enc)).errorEnvelope(http.StatusNotFound, taskbridge.CodeTaskNotFound)

	req := e.alice.newRequest(context.Background(), http.MethodGet, "/api/v1/tasks/"+id[:4]+"%2F"+id[4:]+"/events/stream", nil, "")
	status, _, _, err := send(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusTeapot, status)
	require.Equal(t, []string{"/api/v1/tasks/" + id[:4] + "/" + id[4:] + "/events/stream " + id[:4] + "/" + id[4:]}, sse.requests())
}

// TestChiRoutePattern: mounted with chi's Mount, the handler is a chi
// sub-router, so the host's middleware sees the full route pattern.
func TestChiRoutePattern(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var patterns []string
	e := setup(t, func(o *options) {
		o.prefix = "/tb"
		o.mount = func(h http.Handler) http.Handler {
			r := chi.NewRouter()
			r.Use(func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					next.ServeHTTP(w, r)
					mu.Lock()
					patterns = append(patterns, chi.RouteContext(r.Context()).RoutePattern())
					mu.Unlock()
				})
			})
			r.Mount("/tb", h)
			return r
		}
	})
	id := e.createTask("req-1")
	e.alice.poll(id, "waitTimeoutMs=0")
	e.alice.get("/api/v1/tasks/" + id + "/nope")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"/tb/api/v1/tasks", "/tb/api/v1/tasks/{taskId}/events", "/tb/*"}, patterns)
}

// TestCustomPathsMounted: configured paths work under a prefix too.
func TestCustomPathsMounted(t *testing.T) {
	t.Parallel()
	for name, mount := range map[string]func(h http.Handler) http.Handler{
		"chi": func(h http.Handler) http.Handler {
			r := chi.NewRouter()
			r.Mount("/tb", h)
			return r
		},
		"ServeMux": func(h http.Handler) http.Handler {
			mux := http.NewServeMux()
			mux.Handle("/tb/", http.StripPrefix("/tb", h))
			return mux
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sse := &stub{}
			e := setup(t, func(o *options) {
				o.prefix, o.mount = "/tb", mount
				o.cfg.Stream = sse
				o.cfg.Paths = httpapi.Paths{Tasks: "/jobs", Task: "/jobs/{taskId}", Events: "/jobs/{taskId}/log",
					Stream: "/live/{taskId}", Health: "/healthz"}
			})
			resp := e.alice.postJSON("/jobs", map[string]any{"clientRequestId": "a", "taskType": "t"})
			require.Equal(t, http.StatusCreated, resp.Status, "%s", resp.Body)
			var created taskbridge.CreateTaskResponse
			resp.decode(&created)
			e.emit(created.TaskID, taskbridge.StartedPayload{})
			require.Contains(t, string(e.alice.get("/jobs/"+percentEncodeFirst(created.TaskID)+"/log?waitTimeoutMs=0").Body), "TASK_STARTED")
			require.Equal(t, http.StatusOK, e.alice.get("/jobs/"+created.TaskID).Status)
			require.Equal(t, http.StatusOK, e.anon.get("/healthz").Status)
			e.anon.get("/health").errorEnvelope(http.StatusNotFound, taskbridge.CodeInvalidRequest)
			resp = e.anon.do(http.MethodDelete, "/jobs", nil, "")
			resp.errorEnvelope(http.StatusMethodNotAllowed, taskbridge.CodeInvalidRequest)
			require.Equal(t, "GET, POST", resp.Header.Get("Allow"))

			req := e.alice.newRequest(context.Background(), http.MethodGet, "/live/"+percentEncodeFirst(created.TaskID), nil, "")
			status, _, _, err := send(req)
			require.NoError(t, err)
			require.Equal(t, http.StatusTeapot, status)
			require.Len(t, sse.requests(), 1)
			require.True(t, strings.HasSuffix(sse.requests()[0], "/live/"+created.TaskID+" "+created.TaskID), sse.requests()[0])
		})
	}
}

// TestStreamHandlerTaskID: the sse package's handler, mounted through
// Config.Stream, reads the decoded task id from r.PathValue("taskId").
func TestStreamHandlerTaskID(t *testing.T) {
	t.Parallel()
	var streams atomic.Pointer[sse.Handler]
	e := setup(t,
		withConfig(func(c *httpapi.Config) {
			c.Stream = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { streams.Load().ServeHTTP(w, r) })
		}),
		func(o *options) {
			o.prefix = "/tb"
			o.mount = func(h http.Handler) http.Handler {
				r := chi.NewRouter()
				r.Mount("/tb", h)
				return r
			}
		})
	h, err := sse.NewHandler(e.svc, sse.Config{Auth: bearerAuth})
	require.NoError(t, err)
	streams.Store(h)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, h.Shutdown(ctx))
	})

	id := e.createTask("req-1")
	e.emit(id, taskbridge.StartedPayload{})
	e.emit(id, taskbridge.CompletedPayload{Result: "done"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := e.alice.newRequest(ctx, http.MethodGet, "/api/v1/tasks/"+percentEncodeFirst(id)+"/events/stream", nil, "")
	status, header, body, err := send(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.Equal(t, "text/event-stream", header.Get("Content-Type"))
	require.Contains(t, string(body), "TASK_STARTED")
	require.Contains(t, string(body), "TASK_COMPLETED")
	require.Contains(t, string(body), `"taskId":"`+id+`"`)
}
