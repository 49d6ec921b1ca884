package ws

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// TestOriginSemanticsMatchTheLibrary checks originAllowed against the
// expected verdicts and against coder/websocket's own origin check with the
// same patterns: the handler refuses what Accept would, and also a page of
// the request's own host served over plain http when the request came over
// TLS (the library compares hosts only).
func TestOriginSemanticsMatchTheLibrary(t *testing.T) {
	t.Parallel()
	type request struct {
		tls   bool   // the connection is TLS
		proto string // X-Forwarded-Proto
		trust bool   // Config.TrustForwardedProto
	}
	cases := []struct {
		patterns []string
		host     string
		origin   string
		allowed  bool
		req      request
	}{
		{nil, "api.example", "", true, request{}},
		{nil, "api.example", "https://api.example", true, request{}},
		{nil, "api.example", "http://API.Example", true, request{}},
		{nil, "api.example:8080", "https://api.example:8080", true, request{}},
		{nil, "api.example", "https://api.example:8080", false, request{}},
		{nil, "api.example", "https://evil.example", false, request{}},
		{nil, "api.example", "null", false, request{}},
		{nil, "api.example", "://not a url", false, request{}},
		{[]string{"app.example"}, "api.example", "https://app.example", true, request{}},
		{[]string{"app.example"}, "api.example", "http://app.example", true, request{}},
		{[]string{"APP.example"}, "api.example", "https://app.EXAMPLE", true, request{}},
		{[]string{"app.example"}, "api.example", "https://app.example:8443", false, request{}},
		{[]string{"app.example:*"}, "api.example", "https://app.example:8443", true, request{}},
		{[]string{"*.example.com"}, "api.example", "https://a.example.com", true, request{}},
		{[]string{"*.example.com"}, "api.example", "https://a.b.example.com", true, request{}},
		{[]string{"*.example.com"}, "api.example", "https://example.com", false, request{}},
		{[]string{"https://app.example"}, "api.example", "https://app.example", true, request{}},
		{[]string{"https://app.example"}, "api.example", "http://app.example", false, request{}},
		{[]string{"http*://app.example"}, "api.example", "https://app.example", true, request{}},
		{[]string{"other.example", "app.example"}, "api.example", "https://app.example", true, request{}},
		{[]string{"*"}, "api.example", "https://anything.example", true, request{}},
		{[]string{"*"}, "api.example", "null", true, request{}},

		// The scheme counts: an http page may not open a socket to a host
		// it reaches over TLS.
		{nil, "api.example", "http://api.example", false, request{tls: true}},
		{nil, "api.example", "https://api.example", true, request{tls: true}},
		{nil, "api.example", "ws://api.example", false, request{tls: true}},
		{nil, "api.example", "wss://api.example", true, request{tls: true}},
		{nil, "api.example", "ws://api.example", true, request{}},
		{nil, "api.example", "ftp://api.example", false, request{}},
		{nil, "api.example", "chrome-extension://api.example", false, request{}},
		// An https page reaching a plain-http handler came through a
		// TLS-terminating proxy (browsers do not open insecure sockets
		// from secure pages).
		{nil, "api.example", "https://api.example", true, request{}},
		// X-Forwarded-Proto counts only when trusted.
		{nil, "api.example", "http://api.example", true, request{proto: "https"}},
		{nil, "api.example", "http://api.example", false, request{proto: "https", trust: true}},
		{nil, "api.example", "http://api.example", false, request{proto: "HTTPS, http", trust: true}},
		{nil, "api.example", "http://api.example", true, request{proto: "http", trust: true}},
		{nil, "api.example", "https://api.example", true, request{proto: "https", trust: true}},
		{nil, "api.example", "http://api.example", false, request{tls: true, proto: "http", trust: true}},
		// Patterns keep their meaning: a host-only pattern admits both
		// schemes.
		{[]string{"api.example"}, "api.example", "http://api.example", true, request{tls: true}},
		{[]string{"https://api.example"}, "api.example", "http://api.example", false, request{tls: true}},
	}
	for _, tc := range cases {
		compiled, err := compileOrigins(tc.patterns)
		require.NoError(t, err)
		scheme := "http"
		if tc.req.tls {
			scheme = "https"
		}
		r := httptest.NewRequest(http.MethodGet, scheme+"://"+tc.host+DefaultPath, nil)
		r.Header = http.Header{
			"Connection":            {"Upgrade"},
			"Upgrade":               {"websocket"},
			"Sec-Websocket-Version": {"13"},
			"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
		}
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if tc.req.proto != "" {
			r.Header.Set("X-Forwarded-Proto", tc.req.proto)
		}
		got := originAllowed(r, compiled, tc.req.trust)
		require.Equal(t, tc.allowed, got, "patterns %q, host %s, origin %q, %+v", tc.patterns, tc.host, tc.origin, tc.req)

		// The library answers 403 to a refused origin and, past that
		// check, 501 on a ResponseWriter it cannot hijack. It compares
		// hosts only: it may allow what the handler refuses for its
		// scheme, never the reverse.
		rec := httptest.NewRecorder()
		_, err = websocket.Accept(rec, r, &websocket.AcceptOptions{OriginPatterns: tc.patterns})
		require.Error(t, err)
		libraryAllowed := rec.Code != http.StatusForbidden
		if tc.allowed {
			require.True(t, libraryAllowed, "library refuses: patterns %q, host %s, origin %q", tc.patterns, tc.host, tc.origin)
		} else if libraryAllowed {
			u, err := url.Parse(tc.origin)
			require.NoError(t, err)
			require.True(t, strings.EqualFold(u.Host, tc.host),
				"library allows a foreign origin: patterns %q, host %s, origin %q", tc.patterns, tc.host, tc.origin)
		}
	}
}

func TestCompileOriginsRejectsMalformedPatterns(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", "[", "app.example[", `app\`} {
		_, err := compileOrigins([]string{"ok.example", p})
		require.Error(t, err, "%q", p)
	}
}
