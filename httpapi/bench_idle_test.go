package httpapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/httpapi"
	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/sse"
)

// BenchmarkIdleStreams measures what an idle SSE stream costs the server
// when it is routed through httpapi (as the example server and tbload
// serve it): heap, goroutine stacks and goroutines per stream, net/http's
// included. The clients run in a separate process.
func BenchmarkIdleStreams(b *testing.B) {
	streamtest.MeasureIdle(b, "sse", 2000, func(svc *taskbridge.Service) (http.Handler, func(context.Context) error) {
		s, err := sse.NewHandler(svc, sse.Config{Auth: streamtest.Auth})
		require.NoError(b, err)
		h, err := httpapi.New(svc, httpapi.Config{Auth: streamtest.Auth, Stream: s})
		require.NoError(b, err)
		return h, s.Shutdown
	})
}
