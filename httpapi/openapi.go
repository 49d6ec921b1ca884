package httpapi

import (
	"bytes"
	"crypto/sha256"
	_ "embed" // the served OpenAPI document
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// servedDocument is the OpenAPI document of every route at its default
// path: the TaskBridge v1 document (protocol/openapi) merged with
// openapi/taskbridge-extensions.openapi.yaml. It is generated; see
// TestServedOpenAPIDocument.
//
//go:generate go test -run ^TestServedOpenAPIDocument$ -update .
//go:embed openapi/taskbridge-served.openapi.json
var servedDocument []byte

// openAPIDoc is a handler's OpenAPI document as served.
type openAPIDoc struct {
	body []byte
	etag string
}

// buildOpenAPI returns the document of routes: each route's operation,
// found in servedDocument under the route's default path, is listed at the
// route's configured path. Paths of the served document no route serves
// are left out. When serverURL is not empty it is the document's server.
func buildOpenAPI(routes []route, serverURL string) (*openAPIDoc, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(servedDocument, &doc); err != nil {
		return nil, fmt.Errorf("httpapi: reading the OpenAPI document: %w", err)
	}
	var all map[string]map[string]json.RawMessage
	if err := json.Unmarshal(doc["paths"], &all); err != nil {
		return nil, fmt.Errorf("httpapi: reading the OpenAPI document's paths: %w", err)
	}
	paths := make(map[string]map[string]json.RawMessage, len(routes))
	for _, rt := range routes {
		method := strings.ToLower(rt.method)
		from := all[rt.doc]
		if _, ok := from[method]; !ok {
			return nil, fmt.Errorf("httpapi: the OpenAPI document lacks %s %s", rt.method, rt.doc)
		}
		item := paths[rt.path]
		if item == nil {
			item = map[string]json.RawMessage{}
			paths[rt.path] = item
		}
		item[method] = from[method]
		// Path-level fields (the {taskId} parameter) come along; every
		// route's path has {taskId} exactly when its default path has.
		for k, v := range from {
			if _, ok := item[k]; !ok && !isMethod(k) {
				item[k] = v
			}
		}
	}
	var err error
	if doc["paths"], err = json.Marshal(paths); err != nil {
		return nil, err
	}
	if serverURL != "" {
		if doc["servers"], err = json.Marshal([]map[string]string{{
			"url":         serverURL,
			"description": "where this handler is mounted, relative to this document",
		}}); err != nil {
			return nil, err
		}
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, body, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	sum := sha256.Sum256(out.Bytes())
	return &openAPIDoc{body: out.Bytes(), etag: `"` + hex.EncodeToString(sum[:16]) + `"`}, nil
}

// isMethod reports whether a path item field is an operation.
func isMethod(field string) bool {
	switch field {
	case "get", "put", "post", "delete", "options", "head", "patch", "trace":
		return true
	}
	return false
}

// relativeRoot returns the URL of the mount point relative to a document
// served at path p (relative to the mount point itself): "." for
// "/openapi.json", ".." for "/api/openapi.json", and so on. Relative server
// URLs are resolved against the document's own URL, so the document stays
// right under any mount prefix.
func relativeRoot(p string) string {
	depth := strings.Count(strings.TrimPrefix(p, "/"), "/")
	if depth == 0 {
		return "."
	}
	return strings.TrimSuffix(strings.Repeat("../", depth), "/")
}

// OpenAPIDocument returns the OpenAPI 3.1 document (JSON) of the routes h
// serves, at their configured paths relative to where h is mounted: the
// TaskBridge v1 document and what the library adds to it (the SSE stream,
// the task snapshot and list routes, health, readiness, the error
// statuses beyond v1). Routes h does not serve (the stream without
// Config.Stream, the WebSocket route without Config.WebSocket) are left
// out. With Config.ServeOpenAPI the document also names the mount point as
// its server, relative to Paths.OpenAPI; without it it names no server.
// The caller must not modify the returned slice.
func (h *Handler) OpenAPIDocument() []byte { return h.openAPI.body }

// serveOpenAPI serves GET and HEAD Paths.OpenAPI: the document with an
// ETag, revalidated on every use (Cache-Control: no-cache), and 304 Not
// Modified when If-None-Match names the ETag.
func (h *Handler) serveOpenAPI(w http.ResponseWriter, r *http.Request, _ string) {
	doc := h.openAPI
	hdr := w.Header()
	hdr.Set("ETag", doc.etag)
	hdr.Set("Cache-Control", "no-cache")
	if etagMatch(r.Header.Get("If-None-Match"), doc.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", strconv.Itoa(len(doc.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(doc.body)
	}
}

// etagMatch reports whether an If-None-Match header names etag (weak
// comparison), or is "*".
func etagMatch(header, etag string) bool {
	for v := range strings.SplitSeq(header, ",") {
		v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
		if v == "*" || v == etag {
			return true
		}
	}
	return false
}
