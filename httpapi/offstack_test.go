package httpapi_test

import (
	"bytes"
	"net/http"
	"runtime"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/httpapi"
)

// goroutineStack returns the calling goroutine's id line ("goroutine 7")
// and its stack trace.
func goroutineStack() (string, string) {
	buf := make([]byte, 64<<10)
	buf = buf[:runtime.Stack(buf, false)]
	id, _, _ := bytes.Cut(buf, []byte(" ["))
	return string(id), string(buf)
}

// onStack records, for each request it serves, the goroutine and the stack
// the streaming handler ran on.
type onStack struct {
	mu          sync.Mutex
	ids, stacks []string
}

func (s *onStack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, stack := goroutineStack()
	s.mu.Lock()
	s.ids = append(s.ids, id+" "+r.PathValue("taskId"))
	s.stacks = append(s.stacks, stack)
	s.mu.Unlock()
	w.WriteHeader(http.StatusTeapot)
}

// TestStreamRoutedOffStack: a stream request is routed on a short-lived
// goroutine and its handler then runs on the goroutine that called
// ServeHTTP, so chi's recursive route matching never grows the stack that
// an idle stream keeps for its lifetime. Host middleware around the handler
// sees the stream on its own goroutine, and a host chi router still records
// the route pattern.
func TestStreamRoutedOffStack(t *testing.T) {
	t.Parallel()
	for _, mounted := range []bool{false, true} {
		t.Run(map[bool]string{false: "root", true: "chi"}[mounted], func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var hostIDs, patterns []string
			stream := &onStack{}
			e := setup(t, withConfig(func(c *httpapi.Config) { c.Stream = stream }), func(o *options) {
				host := func(next http.Handler) http.Handler {
					return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						id, _ := goroutineStack()
						next.ServeHTTP(w, r)
						mu.Lock()
						defer mu.Unlock()
						hostIDs = append(hostIDs, id+" "+r.URL.Path)
						if rctx := chi.RouteContext(r.Context()); rctx != nil {
							patterns = append(patterns, rctx.RoutePattern())
						}
					})
				}
				if !mounted {
					o.mount = host
					return
				}
				o.prefix = "/tb"
				o.mount = func(h http.Handler) http.Handler {
					r := chi.NewRouter()
					r.Use(host)
					r.Mount("/tb", h)
					return r
				}
			})
			id := e.createTask("req-1")
			prefix := map[bool]string{false: "", true: "/tb"}[mounted]
			path := "/api/v1/tasks/" + id + "/events/stream"
			status, _, _, err := send(e.alice.newRequest(t.Context(), http.MethodGet, path, nil, ""))
			require.NoError(t, err)
			require.Equal(t, http.StatusTeapot, status)

			mu.Lock()
			defer mu.Unlock()
			require.Len(t, stream.ids, 1)
			hostID := hostIDs[len(hostIDs)-1]
			require.Equal(t, prefix+path, hostID[len(hostID)-len(prefix+path):])
			streamGoroutine, _, _ := cutLast(stream.ids[0], " ")
			hostGoroutine, _, _ := cutLast(hostID, " ")
			require.Equal(t, hostGoroutine, streamGoroutine, "the stream runs on the goroutine that called the handler")
			require.Contains(t, stream.stacks[0], "httpapi.(*Handler).ServeHTTP")
			require.NotContains(t, stream.stacks[0], "httpapi.(*Handler).withTaskID",
				"the handler's own route matching ran on another goroutine")
			if !mounted {
				require.NotContains(t, stream.stacks[0], "go-chi", "no chi frames under the stream")
			}
			require.Equal(t, streamGoroutine+" "+id, stream.ids[0], "the task id is a path value")
			if mounted {
				require.Equal(t, "/tb/api/v1/tasks/{taskId}/events/stream", patterns[len(patterns)-1])
			}
		})
	}
}

// cutLast splits s around the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	i := bytes.LastIndex([]byte(s), []byte(sep))
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// TestStreamLikePathsRoutedOffStack: GET requests whose path ends like a
// stream route's are routed off the connection's goroutine whatever they
// match; their answers (another route's, 404, 405) are unchanged, and a
// panic there reaches the host's recovery middleware with its value.
func TestStreamLikePathsRoutedOffStack(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var recovered []any
	e := setup(t,
		withConfig(func(c *httpapi.Config) {
			c.Stream = &onStack{}
			// The stream path ends like the events and cancel routes.
			c.Paths = httpapi.Paths{Stream: "/live/{taskId}/events", Cancel: "/api/v1/tasks/{taskId}/cancel/events"}
			auth := taskbridge.AuthContextResolver(bearerAuth)
			c.Auth = taskbridge.AuthFunc(func(r *http.Request) (taskbridge.AuthContext, error) {
				if r.Header.Get("X-Panic") != "" {
					panic("auth exploded")
				}
				return auth.ResolveAuth(r)
			})
		}),
		func(o *options) {
			o.mount = func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					defer func() {
						if v := recover(); v != nil {
							mu.Lock()
							recovered = append(recovered, v)
							mu.Unlock()
							w.WriteHeader(http.StatusInternalServerError)
						}
					}()
					h.ServeHTTP(w, r)
				})
			}
		})
	id := e.createTask("req-1")
	e.emit(id, taskbridge.StartedPayload{})

	// Another route (a poll) answered from the routing goroutine.
	resp := e.alice.get("/api/v1/tasks/" + id + "/events?waitTimeoutMs=0")
	require.Equal(t, http.StatusOK, resp.Status, "%s", resp.Body)
	require.Contains(t, string(resp.Body), "TASK_STARTED")
	// 405 with Allow, and 404 for an empty task id.
	resp = e.alice.get("/api/v1/tasks/" + id + "/cancel/events")
	resp.errorEnvelope(http.StatusMethodNotAllowed, taskbridge.CodeInvalidRequest)
	require.Equal(t, "POST", resp.Header.Get("Allow"))
	e.alice.get("/live//events").errorEnvelope(http.StatusNotFound, taskbridge.CodeInvalidRequest)

	req := e.alice.newRequest(t.Context(), http.MethodGet, "/api/v1/tasks/"+id+"/events?waitTimeoutMs=0", nil, "")
	req.Header.Set("X-Panic", "1")
	status, _, _, err := send(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusInternalServerError, status)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []any{"auth exploded"}, recovered)
}
