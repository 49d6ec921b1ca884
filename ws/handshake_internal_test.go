package ws

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// TestOriginSemanticsMatchTheLibrary checks originAllowed against the
// expected verdicts and against coder/websocket's own origin check with the
// same patterns: the handler refuses exactly what Accept would.
func TestOriginSemanticsMatchTheLibrary(t *testing.T) {
	t.Parallel()
	cases := []struct {
		patterns []string
		host     string
		origin   string
		allowed  bool
	}{
		{nil, "api.example", "", true},
		{nil, "api.example", "https://api.example", true},
		{nil, "api.example", "http://API.Example", true},
		{nil, "api.example:8080", "https://api.example:8080", true},
		{nil, "api.example", "https://api.example:8080", false},
		{nil, "api.example", "https://evil.example", false},
		{nil, "api.example", "null", false},
		{nil, "api.example", "://not a url", false},
		{[]string{"app.example"}, "api.example", "https://app.example", true},
		{[]string{"app.example"}, "api.example", "http://app.example", true},
		{[]string{"APP.example"}, "api.example", "https://app.EXAMPLE", true},
		{[]string{"app.example"}, "api.example", "https://app.example:8443", false},
		{[]string{"app.example:*"}, "api.example", "https://app.example:8443", true},
		{[]string{"*.example.com"}, "api.example", "https://a.example.com", true},
		{[]string{"*.example.com"}, "api.example", "https://a.b.example.com", true},
		{[]string{"*.example.com"}, "api.example", "https://example.com", false},
		{[]string{"https://app.example"}, "api.example", "https://app.example", true},
		{[]string{"https://app.example"}, "api.example", "http://app.example", false},
		{[]string{"http*://app.example"}, "api.example", "https://app.example", true},
		{[]string{"other.example", "app.example"}, "api.example", "https://app.example", true},
		{[]string{"*"}, "api.example", "https://anything.example", true},
		{[]string{"*"}, "api.example", "null", true},
	}
	for _, tc := range cases {
		compiled, err := compileOrigins(tc.patterns)
		require.NoError(t, err)
		r := httptest.NewRequest(http.MethodGet, "http://"+tc.host+DefaultPath, nil)
		r.Header = http.Header{
			"Connection":            {"Upgrade"},
			"Upgrade":               {"websocket"},
			"Sec-Websocket-Version": {"13"},
			"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
		}
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		got := originAllowed(r, compiled)
		require.Equal(t, tc.allowed, got, "patterns %q, host %s, origin %q", tc.patterns, tc.host, tc.origin)

		// The library answers 403 to a refused origin and, past that
		// check, 501 on a ResponseWriter it cannot hijack.
		rec := httptest.NewRecorder()
		_, err = websocket.Accept(rec, r, &websocket.AcceptOptions{OriginPatterns: tc.patterns})
		require.Error(t, err)
		require.Equal(t, tc.allowed, rec.Code != http.StatusForbidden,
			"library disagrees: patterns %q, host %s, origin %q: %d", tc.patterns, tc.host, tc.origin, rec.Code)
	}
}

func TestCompileOriginsRejectsMalformedPatterns(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", "[", "app.example[", `app\`} {
		_, err := compileOrigins([]string{"ok.example", p})
		require.Error(t, err, "%q", p)
	}
}
