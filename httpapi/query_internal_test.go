package httpapi

import (
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// parseQuery answers what url.ParseQuery answers, for plain queries (read
// in place) and for those with escapes, '+', ';' or other characters
// (url.ParseQuery's own values): the same error or none, and for every
// name the same first value, count and values.
func TestParseQueryMatchesURLParseQuery(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	names := []string{"afterEventId", "waitTimeoutMs", "maxEvents", "status", "a", ""}
	pieces := []string{"afterEventId", "waitTimeoutMs", "maxEvents", "status", "a", "=", "&", "&&", "1", "-", ".", "_", "~",
		"%41", "%4", "%zz", "+", ";", " ", "é", "/", "?", "#", "==", "x=y"}
	queries := []string{"", "&", "=", "a", "a=", "=a", "a=1&a=2", "a=1;a=2", "a=%", strings.Repeat("a=1&", maxPlainParams) + "a=1",
		strings.Repeat("&", maxPlainParams-1) + "a=1"}
	for range 20000 {
		var b strings.Builder
		for range r.IntN(8) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		queries = append(queries, b.String())
	}
	for _, raw := range queries {
		want, wantErr := url.ParseQuery(raw)
		got, err := parseQuery(&http.Request{URL: &url.URL{RawQuery: raw}})
		if wantErr != nil {
			require.Error(t, err, "%q", raw)
			continue
		}
		require.NoError(t, err, "%q", raw)
		for _, name := range names {
			first, n := got.get(name)
			require.Equal(t, len(want[name]), n, "%q: count of %q", raw, name)
			require.Equal(t, want.Get(name), first, "%q: %q", raw, name)
			all := slices.Collect(got.values(name))
			require.Equal(t, len(want[name]), len(all), "%q: all %q", raw, name)
			if n > 0 {
				require.Equal(t, want[name], all, "%q: all %q", raw, name)
			}
		}
	}
}
