package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"
)

const taskIDParam = "{taskId}"

// routeFunc handles a matched route; taskID is the {taskId} segment or "".
type routeFunc func(w http.ResponseWriter, r *http.Request, taskID string)

// pattern is one path with its handlers by method.
type pattern struct {
	path    string
	segs    []string // literal segments; taskIDParam marks the parameter
	methods map[string]routeFunc
}

// router matches request paths against a small fixed set of patterns. A
// path matching several patterns goes to the most specific one: at the first
// segment where they differ, a literal beats {taskId} (so "/tasks/ws" wins
// over "/tasks/{taskId}"). A matching pattern without a handler for the
// method gives 405.
type router struct {
	patterns []*pattern
}

// checkPath validates a configured route path.
func checkPath(p string, wantParam bool) error {
	if !strings.HasPrefix(p, "/") {
		return errors.New("must start with /")
	}
	if p != "/" && strings.HasSuffix(p, "/") {
		return errors.New("must not end with /")
	}
	params := 0
	for _, s := range splitPath(p) {
		switch {
		case s == "":
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

// splitPath splits "/a/b" into ["a", "b"]; "/" gives [].
func splitPath(p string) []string {
	p = strings.TrimPrefix(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// handle registers fn for method on path; it fails on a duplicate.
func (rt *router) handle(method, path string, fn routeFunc) error {
	for _, p := range rt.patterns {
		if p.path == path {
			if _, dup := p.methods[method]; dup {
				return fmt.Errorf("httpapi: two routes for %s %s", method, path)
			}
			p.methods[method] = fn
			return nil
		}
	}
	rt.patterns = append(rt.patterns, &pattern{path: path, segs: splitPath(path), methods: map[string]routeFunc{method: fn}})
	// Most specific first, so the first match wins.
	// Patterns of different lengths never match the same path; order by
	// length first to keep the order consistent.
	slices.SortStableFunc(rt.patterns, func(a, b *pattern) int {
		if len(a.segs) != len(b.segs) {
			return len(a.segs) - len(b.segs)
		}
		for i := range a.segs {
			ap, bp := a.segs[i] == taskIDParam, b.segs[i] == taskIDParam
			if ap != bp {
				if ap {
					return 1
				}
				return -1
			}
		}
		return 0
	})
	return nil
}

// match finds the pattern for path and the {taskId} segment it matched.
func (rt *router) match(path string) (*pattern, string) {
	segs := splitPath(path)
next:
	for _, p := range rt.patterns {
		if len(p.segs) != len(segs) {
			continue
		}
		taskID := ""
		for i, s := range p.segs {
			switch {
			case s == taskIDParam:
				if segs[i] == "" {
					continue next
				}
				taskID = segs[i]
			case s != segs[i]:
				continue next
			}
		}
		return p, taskID
	}
	return nil, ""
}

// allow lists a pattern's methods for the Allow header.
func (p *pattern) allow() string {
	ms := make([]string, 0, len(p.methods))
	for m := range p.methods {
		ms = append(ms, m)
	}
	slices.Sort(ms)
	return strings.Join(ms, ", ")
}

// routePaths are the paths to route r on, relative to where the handler is
// mounted: chi's remaining route path when mounted with chi's Mount, then
// the (escaped) URL path, which http.StripPrefix has already trimmed. The
// first that matches a route wins, so a handler behind both chi's Mount and
// http.StripPrefix still routes.
func routePaths(r *http.Request) []string {
	urlPath := r.URL.Path
	if r.URL.RawPath != "" {
		urlPath = r.URL.RawPath
	}
	if urlPath == "" {
		urlPath = "/"
	}
	if rctx := chi.RouteContext(r.Context()); rctx != nil && rctx.RoutePath != "" && rctx.RoutePath != urlPath {
		return []string{rctx.RoutePath, urlPath}
	}
	return []string{urlPath}
}
