package httpapi_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
)

var update = flag.Bool("update", false, "rewrite openapi/"+protocoltest.ServedFile)

// TestServedOpenAPIDocument checks that the embedded served document is
// the v1 document merged with the extension, as BuildServedDocument makes
// it, and that kin-openapi accepts it and the extension on its own. After
// editing the extension, regenerate the served document with
//
//	go generate ./httpapi
func TestServedOpenAPIDocument(t *testing.T) {
	want, err := protocoltest.BuildServedDocument()
	require.NoError(t, err)
	path := filepath.Join("openapi", protocoltest.ServedFile)
	if *update {
		require.NoError(t, os.WriteFile(path, want, 0o644))
	}
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	if line, ok := firstDifference(string(want), string(got)); !ok {
		t.Fatalf("openapi/%s is out of date (line %d differs): run go generate ./httpapi", protocoltest.ServedFile, line)
	}

	require.NoError(t, protocoltest.ExtensionError())
	require.NoError(t, protocoltest.ServedDocumentError())
}

// firstDifference reports whether a and b are equal and, when not, the
// first line (1-based) where they differ.
func firstDifference(a, b string) (int, bool) {
	if a == b {
		return 0, true
	}
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return i + 1, false
		}
	}
	return min(len(al), len(bl)) + 1, false
}
