package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
	"github.com/taskbridge-go/taskbridge/memstore"
)

// nopExecutor accepts every task and does nothing.
type nopExecutor struct{}

var _ taskbridge.TaskExecutor = nopExecutor{}

func (nopExecutor) Submit(context.Context, taskbridge.Task, taskbridge.Emitter) error { return nil }
func (nopExecutor) Cancel(context.Context, taskbridge.Task) error                     { return nil }

// registered lists "METHOD path" for every route h's router serves.
func registered(t *testing.T, h *Handler) []string {
	t.Helper()
	var routes []string
	require.NoError(t, chi.Walk(h.mux, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes = append(routes, method+" "+route)
		return nil
	}))
	sort.Strings(routes)
	return routes
}

// TestOpenAPIDocumentListsEveryRoute checks, for several configurations,
// that the routes a handler registers are exactly the operations of its
// OpenAPI document, and that kin-openapi accepts the document.
func TestOpenAPIDocumentListsEveryRoute(t *testing.T) {
	t.Parallel()
	store := memstore.New(memstore.Config{})
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: nopExecutor{}})
	require.NoError(t, err)
	stub := http.NotFoundHandler()
	auth := taskbridge.AuthFunc(func(*http.Request) (taskbridge.AuthContext, error) {
		return taskbridge.AuthContext{Subject: "u"}, nil
	})

	cases := map[string]struct {
		cfg        Config
		wantServer string
	}{
		"everything": {cfg: Config{Stream: stub, WebSocket: stub, ServeOpenAPI: true}, wantServer: "."},
		"no options": {cfg: Config{}},
		"custom paths sharing items": {cfg: Config{Stream: stub, ServeOpenAPI: true, Paths: Paths{
			Tasks: "/jobs", Task: "/jobs/{taskId}", Events: "/jobs/{taskId}/log", Cancel: "/jobs/{taskId}",
			Actions: "/jobs/{taskId}/answer", Health: "/", Ready: "/jobs/ready", OpenAPI: "/docs/api/openapi.json",
		}}, wantServer: "../.."},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.Auth = auth
			h, err := New(svc, cfg)
			require.NoError(t, err)
			doc := h.OpenAPIDocument()
			ops, err := protocoltest.Operations(doc)
			require.NoError(t, err)
			require.Equal(t, registered(t, h), ops)
			_, err = protocoltest.LoadDocument(doc)
			require.NoError(t, err)

			var parsed struct {
				Servers []struct {
					URL string `json:"url"`
				} `json:"servers"`
			}
			require.NoError(t, json.Unmarshal(doc, &parsed))
			if tc.wantServer == "" {
				require.Empty(t, parsed.Servers)
			} else {
				require.Len(t, parsed.Servers, 1)
				require.Equal(t, tc.wantServer, parsed.Servers[0].URL)
			}
		})
	}

	// With every route on at its default path, the handler serves exactly
	// the operations of the embedded served document: the document has no
	// route the library does not serve.
	h, err := New(svc, Config{Auth: auth, Stream: stub, WebSocket: stub, ServeOpenAPI: true})
	require.NoError(t, err)
	all, err := protocoltest.Operations(servedDocument)
	require.NoError(t, err)
	require.Equal(t, registered(t, h), all)
}

func TestRelativeRoot(t *testing.T) {
	t.Parallel()
	for p, want := range map[string]string{
		"/openapi.json":        ".",
		"/api/openapi.json":    "..",
		"/a/b/c/openapi.json":  "../../..",
		"/api/v1/openapi.yaml": "../..",
	} {
		require.Equal(t, want, relativeRoot(p), p)
	}
}
