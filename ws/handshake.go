package ws

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/taskbridge-go/taskbridge/internal/httpx"
)

// CodeOriginNotAllowed is the protocol error code of a WebSocket handshake
// refused with HTTP 403 because its Origin is neither the request's own
// host nor allowed by [Config.OriginPatterns]. Its details carry the
// refused origin under "origin".
const CodeOriginNotAllowed = "ORIGIN_NOT_ALLOWED"

// originPattern is a compiled Config.OriginPatterns entry.
type originPattern struct {
	pattern    string // lower case, path.Match syntax
	withScheme bool   // matched against "scheme://host", not just "host"
}

// compileOrigins validates and lower-cases the origin patterns.
func compileOrigins(patterns []string) ([]originPattern, error) {
	out := make([]originPattern, 0, len(patterns))
	for _, p := range patterns {
		lp := strings.ToLower(p)
		// Match checks the whole pattern's syntax, whatever the name.
		if _, err := path.Match(lp, ""); err != nil || p == "" {
			return nil, fmt.Errorf("ws: Config.OriginPatterns: malformed pattern %q", p)
		}
		out = append(out, originPattern{pattern: lp, withScheme: strings.Contains(lp, "://")})
	}
	return out, nil
}

// originAllowed reports whether r may open a socket: it has no Origin
// header, or its Origin is the request's own (see sameOrigin), or a pattern
// matches. trustProto is Config.TrustForwardedProto.
func originAllowed(r *http.Request, patterns []originPattern, trustProto bool) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	host := strings.ToLower(u.Host)
	scheme := strings.ToLower(u.Scheme)
	if host == strings.ToLower(r.Host) && sameScheme(scheme, r, trustProto) {
		return true
	}
	withScheme := scheme + "://" + host
	for _, p := range patterns {
		name := host
		if p.withScheme {
			name = withScheme
		}
		if ok, _ := path.Match(p.pattern, name); ok {
			return true
		}
	}
	return false
}

// sameScheme reports whether an Origin with this (lower-case) scheme and
// the request's host is the request's own origin. A secure page (https, or
// wss from a non-browser client) is: on a request that came over TLS it is
// the same scheme, and on one that did not it came through a
// TLS-terminating proxy, since browsers do not open insecure sockets from
// secure pages. An insecure page (http, ws) is, only on a request that did
// not come over TLS: the connection's own TLS state says so, or, with
// trustProto, the first value of X-Forwarded-Proto (set by the proxy).
// Other schemes never are.
func sameScheme(scheme string, r *http.Request, trustProto bool) bool {
	switch scheme {
	case "https", "wss":
		return true
	case "http", "ws":
		return r.TLS == nil && !(trustProto && forwardedSecure(r))
	}
	return false
}

// forwardedSecure reports whether the first value of r's X-Forwarded-Proto
// header is https (or wss).
func forwardedSecure(r *http.Request) bool {
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	proto = strings.TrimSpace(proto)
	return strings.EqualFold(proto, "https") || strings.EqualFold(proto, "wss")
}

// originRefused answers 403 ORIGIN_NOT_ALLOWED.
func originRefused(w http.ResponseWriter, r *http.Request, now time.Time) {
	httpx.WriteErrorCode(w, http.StatusForbidden, CodeOriginNotAllowed,
		"This origin may not open a WebSocket here",
		map[string]any{"origin": r.Header.Get("Origin")}, now)
}

// checkHandshake checks that r is a WebSocket handshake the library will
// accept (RFC 6455 section 4.2.1; the method is checked by the caller). It
// returns 0, or the status and message to refuse it with, having set the
// headers that go with the refusal on hdr: 426 Upgrade Required, with
// Upgrade and Sec-WebSocket-Version, for a request that is no WebSocket
// upgrade (also any HTTP/2 request: extended CONNECT is not supported) or
// asks for another protocol version; 400 for a missing or malformed key.
func checkHandshake(hdr http.Header, r *http.Request) (int, string) {
	upgrade := func(msg string) (int, string) {
		hdr.Set("Connection", "Upgrade")
		hdr.Set("Upgrade", "websocket")
		hdr.Set("Sec-WebSocket-Version", "13")
		return http.StatusUpgradeRequired, msg
	}
	switch {
	case r.ProtoMajor != 1 || !r.ProtoAtLeast(1, 1):
		return upgrade("A WebSocket handshake needs HTTP/1.1")
	case !hasToken(r.Header, "Connection", "upgrade") || !hasToken(r.Header, "Upgrade", "websocket"):
		return upgrade("This endpoint only accepts WebSocket upgrade requests")
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return upgrade("Only WebSocket protocol version 13 is supported")
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return http.StatusBadRequest, "The handshake needs exactly one Sec-WebSocket-Key header"
	}
	if key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(keys[0])); err != nil || len(key) != 16 {
		return http.StatusBadRequest, "Sec-WebSocket-Key must be 16 bytes in base64"
	}
	return 0, ""
}

// hasToken reports whether a comma-separated list in r's header name holds
// token, case insensitively.
func hasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
