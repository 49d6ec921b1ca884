package otel_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/taskbridge-go/taskbridge"
	tbotel "github.com/taskbridge-go/taskbridge/otel"
)

func newTracing(t *testing.T) (*tbotel.Tracing, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tbotel.New(tbotel.Config{TracerProvider: tp}), exp
}

// TestStreamSpanRecordsHeartbeatsExpiryAndErrors drives the hooks as the
// service does for a stream that heartbeats, falls behind retention and
// fails.
func TestStreamSpanRecordsHeartbeatsExpiryAndErrors(t *testing.T) {
	t.Parallel()
	tr, exp := newTracing(t)
	d := tr.Diagnostics()
	info := taskbridge.StreamInfo{Transport: "sse", TaskID: "t1", StreamID: 7}
	d.ReplayStart(context.Background(), taskbridge.ReplayInfo{StreamInfo: info, Cursor: "3"})
	d.Heartbeat(info)
	d.Heartbeat(info)
	d.EventsExpired(info)
	d.Disconnect(taskbridge.DisconnectInfo{StreamInfo: info, Reason: taskbridge.DisconnectError, Err: errors.New("store down"), Delivered: 4})
	d.Disconnect(taskbridge.DisconnectInfo{StreamInfo: info, Reason: taskbridge.DisconnectError}) // once only

	spans := exp.GetSpans()
	require.Len(t, spans, 1)
	s := spans[0]
	require.Equal(t, tbotel.SpanStream, s.Name)
	require.EqualValues(t, 2, attr(s, tbotel.AttrHeartbeatsCount).AsInt64())
	require.EqualValues(t, 4, attr(s, tbotel.AttrDelivered).AsInt64())
	require.Equal(t, "error", attr(s, tbotel.AttrEndReason).AsString())
	require.Equal(t, codes.Error, s.Status.Code)
	var names []string
	for _, e := range s.Events {
		names = append(names, e.Name)
	}
	require.Equal(t, []string{"EVENTS_EXPIRED", "exception"}, names)

	// Another service's hooks have streams of their own.
	d2 := tr.Diagnostics()
	d2.Disconnect(taskbridge.DisconnectInfo{StreamInfo: info})
	require.Len(t, exp.GetSpans(), 1)
}

// TestMiddlewareTracesCommandsOnly: other requests pass through without a
// span; a 5xx answer marks the span as an error.
func TestMiddlewareTracesCommandsOnly(t *testing.T) {
	t.Parallel()
	tr, exp := newTracing(t)
	h := tr.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/tasks/t1/cancel" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	for _, req := range []*http.Request{
		httptest.NewRequest(http.MethodGet, "/health", nil),
		httptest.NewRequest(http.MethodGet, "/api/v1/tasks/t1", nil),
		httptest.NewRequest(http.MethodGet, "/api/v1/tasks/t1/events/stream", nil),
		httptest.NewRequest(http.MethodPost, "/prefix/api/v1/tasks/t1/cancel", nil),
		httptest.NewRequest(http.MethodPost, "/api/v1/tasks/t1/cancel", nil),
	} {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	spans := exp.GetSpans()
	require.Len(t, spans, 2)
	require.Equal(t, tbotel.SpanCancel, spans[0].Name)
	require.Equal(t, codes.Unset, spans[0].Status.Code)
	require.Equal(t, codes.Error, spans[1].Status.Code)
	require.EqualValues(t, http.StatusServiceUnavailable, attr(spans[1], tbotel.AttrHTTPStatus).AsInt64())
}
