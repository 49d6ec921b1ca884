package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/httpapi"
	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
)

// getWith sends GET or HEAD path with extra headers, validating the answer.
func (c *client) getWith(method, path string, hdr http.Header) response {
	c.t.Helper()
	req := c.newRequest(context.Background(), method, path, nil, "")
	for k, v := range hdr {
		req.Header[k] = v
	}
	status, header, b, err := send(req)
	require.NoError(c.t, err)
	return c.check(req, status, header, b)
}

func TestOpenAPIRoute(t *testing.T) {
	t.Parallel()
	e := setup(t,
		withConfig(func(c *httpapi.Config) { c.ServeOpenAPI, c.Stream, c.WebSocket = true, &stub{}, &stub{} }),
		func(o *options) {
			o.prefix = "/tb"
			o.mount = func(h http.Handler) http.Handler {
				r := chi.NewRouter()
				r.Mount("/tb", h)
				return r
			}
		})

	// Unauthenticated, like the probes.
	resp := e.anon.get("/openapi.json")
	require.Equal(t, http.StatusOK, resp.Status)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
	etag := resp.Header.Get("ETag")
	require.Regexp(t, `^"[0-9a-f]{32}"$`, etag)
	require.Equal(t, string(e.handler.OpenAPIDocument()), string(resp.Body))

	ops, err := protocoltest.Operations(resp.Body)
	require.NoError(t, err)
	require.Contains(t, ops, "GET /api/v1/tasks/{taskId}/events/stream")
	require.Contains(t, ops, "GET /api/v1/tasks/ws")
	require.Contains(t, ops, "HEAD /openapi.json")

	// The server URL is relative to the document, so it names the mount
	// point wherever that is. (Clients drop the trailing slash of a server
	// URL before they append a path.)
	var doc struct {
		Servers []struct {
			URL string `json:"url"`
		} `json:"servers"`
	}
	require.NoError(t, json.Unmarshal(resp.Body, &doc))
	require.Len(t, doc.Servers, 1)
	base, err := url.Parse(e.srv.URL + "/tb/openapi.json")
	require.NoError(t, err)
	server, err := url.Parse(doc.Servers[0].URL)
	require.NoError(t, err)
	require.Equal(t, e.srv.URL+"/tb/api/v1/tasks", strings.TrimSuffix(base.ResolveReference(server).String(), "/")+"/api/v1/tasks")

	// Revalidation.
	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
		resp = e.anon.getWith(http.MethodGet, "/openapi.json", http.Header{"If-None-Match": {inm}})
		require.Equal(t, http.StatusNotModified, resp.Status, inm)
		require.Empty(t, resp.Body)
		require.Equal(t, etag, resp.Header.Get("ETag"))
	}
	resp = e.anon.getWith(http.MethodGet, "/openapi.json", http.Header{"If-None-Match": {`"other"`}})
	require.Equal(t, http.StatusOK, resp.Status)

	resp = e.anon.getWith(http.MethodHead, "/openapi.json", nil)
	require.Equal(t, http.StatusOK, resp.Status)
	require.Empty(t, resp.Body)
	require.Equal(t, strconv.Itoa(len(e.handler.OpenAPIDocument())), resp.Header.Get("Content-Length"))
	require.Equal(t, etag, resp.Header.Get("ETag"))
}

func TestOpenAPIRouteIsOffByDefault(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.anon.get("/openapi.json").errorEnvelope(http.StatusNotFound, taskbridge.CodeInvalidRequest)

	// The document is there all the same, without the route and without a
	// server (where the host serves it is not known).
	doc := e.handler.OpenAPIDocument()
	ops, err := protocoltest.Operations(doc)
	require.NoError(t, err)
	require.NotContains(t, ops, "GET /openapi.json")
	require.NotContains(t, ops, "GET /api/v1/tasks/{taskId}/events/stream") // no Config.Stream
	require.NotContains(t, string(doc), `"servers"`)
}
