package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/httpx"
	"github.com/taskbridge-go/taskbridge/internal/offstack"
)

// taskIDParam is the only route parameter; taskIDKey is its name.
const (
	taskIDParam = "{" + taskIDKey + "}"
	taskIDKey   = "taskId"
)

// routeFunc handles a matched route; taskID is the decoded {taskId} segment,
// or "" on routes without one.
type routeFunc func(w http.ResponseWriter, r *http.Request, taskID string)

// route is one method on one configured path; doc is the route's default
// path, under which the OpenAPI document describes it.
type route struct {
	method, path, doc string
	fn                routeFunc
}

// checkPath validates a configured route path: only whole-segment {taskId}
// parameters, no wildcards, regular expressions or empty segments, so every
// path is a plain chi pattern.
func checkPath(p string, wantParam bool) error {
	if !strings.HasPrefix(p, "/") {
		return errors.New("must start with /")
	}
	if p != "/" && strings.HasSuffix(p, "/") {
		return errors.New("must not end with /")
	}
	params := 0
	for s := range strings.SplitSeq(strings.TrimPrefix(p, "/"), "/") {
		switch {
		case s == "" && p != "/":
			return errors.New("must not contain empty segments")
		case s == taskIDParam:
			params++
		case strings.ContainsAny(s, "{}*?#%"):
			return fmt.Errorf("segment %q: only {taskId} may be a parameter", s)
		}
	}
	if wantParam && params != 1 {
		return errors.New("must contain {taskId} exactly once, as a whole segment")
	}
	if !wantParam && params != 0 {
		return errors.New("must not contain {taskId}")
	}
	return nil
}

// newRouter builds the chi router for routes. Unknown paths get a 404 and
// known paths with another method a 405 (with Allow), both protocol error
// envelopes. It fails when two routes share a method and path.
func (h *Handler) newRouter(routes []route) (*chi.Mux, error) {
	mux := chi.NewMux()
	mux.NotFound(h.notFound)
	mux.MethodNotAllowed(h.methodNotAllowed)
	seen := make(map[string]bool, len(routes))
	for _, rt := range routes {
		key := rt.method + " " + rt.path
		if seen[key] {
			return nil, fmt.Errorf("httpapi: two routes for %s", key)
		}
		seen[key] = true
		if !slices.Contains(h.methods, rt.method) {
			h.methods = append(h.methods, rt.method)
		}
		mux.Method(rt.method, rt.path, h.withTaskID(rt.fn, strings.Contains(rt.path, taskIDParam)))
	}
	slices.Sort(h.methods)
	return mux, nil
}

// ServeHTTP implements http.Handler.
//
// Mounted with chi's Mount, the handler routes on the path chi left for it,
// as any chi sub-router does, and the host's routing context records the
// matched pattern (chi.RouteContext(ctx).RoutePattern()). A handler between
// the host's chi router and this one that rewrote the path
// (http.StripPrefix) leaves that path stale; then the handler routes on the
// request's URL path with a routing context of its own.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rctx := chi.RouteContext(r.Context())
	if rctx != nil && !routesOnURL(rctx.RoutePath, r) {
		r = r.WithContext(context.WithValue(r.Context(), chi.RouteCtxKey, (*chi.Context)(nil)))
		rctx = nil
	}
	if r.Method == http.MethodGet && h.isStreamPath(urlPath(r)) {
		if next, w, r := h.routeOffStack(w, r, rctx); next != nil {
			next.ServeHTTP(w, r)
		}
		return
	}
	h.mux.ServeHTTP(w, r)
}

// offload is a stream request routed by routeOffStack: the streaming
// handler the route found and what to call it with.
type offload struct {
	w    http.ResponseWriter
	r    *http.Request
	next http.Handler
}

// isStreamPath reports whether path may be the stream route's.
func (h *Handler) isStreamPath(path string) bool {
	return h.streamTail != "" && strings.HasSuffix(path, h.streamTail)
}

// routeOffStack routes a request that may open a stream on a short-lived
// goroutine and returns the streaming handler it found, with what to call
// it with, for the calling goroutine to run (nil when the router answered
// the request itself).
//
// A stream keeps the connection's goroutine, parked in ServeHTTP, for as
// long as it is open (see package internal/offstack). chi's route matching
// recurses once per tree node (about 430 bytes a level), enough to grow the
// connection's goroutine from 4 to 8 KiB before the handler runs. Routed
// here, an idle stream keeps 4 KiB of stack instead of 8.
//
// Without a parent chi router, routing uses a pooled routing context and
// the stream's request does not carry it (nobody outside sees it, and the
// task id is a path value), so an open stream does not hold one.
//
// Anything else the router answers (404, 405) is written by the routing
// goroutine while this one waits; a panic there is raised again here.
func (h *Handler) routeOffStack(w http.ResponseWriter, r *http.Request, rctx *chi.Context) (http.Handler, http.ResponseWriter, *http.Request) {
	orig := r
	pooled := rctx == nil
	if pooled {
		// What chi's ServeHTTP would do, with a routing context of our
		// own pool: chi would put its own back when routing returns.
		rctx = h.rctxPool.Get().(*chi.Context)
		rctx.Reset()
		rctx.Routes = h.mux
		r = r.WithContext(context.WithValue(r.Context(), chi.RouteCtxKey, rctx))
	}
	o := &offload{}
	h.offloads.Store(rctx, o)
	defer h.offloads.Delete(rctx)
	if pooled {
		defer h.rctxPool.Put(rctx)
	}
	offstack.Run(func() { h.mux.ServeHTTP(w, r) })
	if o.next == nil {
		return nil, nil, nil
	}
	if pooled {
		// The routed request without the routing context: its path
		// values and pattern stay.
		return o.next, o.w, o.r.WithContext(orig.Context())
	}
	return o.next, o.w, o.r
}

// routesOnURL reports whether a parent chi router's remaining route path is
// the tail of r's URL path, that is, whether the URL was left alone since
// that router shifted past its mount point. "/" (the mount point itself)
// always is.
func routesOnURL(routePath string, r *http.Request) bool {
	return routePath == "" || routePath == "/" || strings.HasSuffix(urlPath(r), routePath)
}

// urlPath is the path chi routes on without a parent router: the escaped
// path when the URL has one, so an encoded "/" stays inside its segment.
func urlPath(r *http.Request) string {
	switch {
	case r.URL.RawPath != "":
		return r.URL.RawPath
	case r.URL.Path != "":
		return r.URL.Path
	}
	return "/"
}

// routePath is the path chi routed r on.
func routePath(r *http.Request) string {
	if rctx := chi.RouteContext(r.Context()); rctx != nil && rctx.RoutePath != "" {
		return rctx.RoutePath
	}
	return urlPath(r)
}

// withTaskID adapts fn to chi. On a route with {taskId} it passes the
// decoded segment to fn: chi matches the escaped path when there is one, so
// the segment may be percent-encoded. The decoded id is what
// r.PathValue("taskId") returns from then on. An empty segment
// ("/tasks//events") is no route.
func (h *Handler) withTaskID(fn routeFunc, hasParam bool) http.HandlerFunc {
	if !hasParam {
		return func(w http.ResponseWriter, r *http.Request) { fn(w, r, "") }
	}
	return func(w http.ResponseWriter, r *http.Request) {
		raw := r.PathValue(taskIDKey)
		id := raw
		if r.URL.RawPath != "" {
			if dec, err := url.PathUnescape(raw); err == nil {
				id = dec
			}
		}
		if id == "" {
			h.notFound(w, r)
			return
		}
		if id != raw {
			r = r.Clone(r.Context()) // leave the caller's request (and its path values) alone
			r.SetPathValue(taskIDKey, id)
		}
		fn(w, r, id)
	}
}

// notFound answers a request for no route.
func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.writeError(w, r, &statusError{
		status: http.StatusNotFound, code: taskbridge.CodeInvalidRequest,
		msg: "No such route",
	})
}

// methodNotAllowed answers a request for a route without its method. chi
// does not tell a custom handler the allowed methods, so they are found by
// asking the router about each method in use; a path none of them match
// (chi also calls here for methods it does not know) is no route.
func (h *Handler) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	path := routePath(r)
	var allow []string
	for _, m := range h.methods {
		if h.mux.Match(chi.NewRouteContext(), m, path) {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		h.notFound(w, r)
		return
	}
	httpx.MethodNotAllowed(w, r, strings.Join(allow, ", "), svcHooks.Now(h.svc))
}
