package httpapi_test

import (
	"flag"
	"os"
	"path/filepath"
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
	require.Equal(t, string(want), string(got),
		"openapi/%s is out of date: run go generate ./httpapi", protocoltest.ServedFile)

	require.NoError(t, protocoltest.ExtensionError())
	require.NoError(t, protocoltest.ServedDocumentError())
}
