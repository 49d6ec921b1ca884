package otel_test

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/httpapi"
	"github.com/taskbridge-go/taskbridge/memstore"
	tbotel "github.com/taskbridge-go/taskbridge/otel"
	"github.com/taskbridge-go/taskbridge/runner"
	"github.com/taskbridge-go/taskbridge/sse"
	"github.com/taskbridge-go/taskbridge/ws"
)

type bearer struct{}

func (bearer) ResolveAuth(r *http.Request) (taskbridge.AuthContext, error) {
	sub, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return taskbridge.AuthContext{}, taskbridge.ErrUnauthenticated
	}
	return taskbridge.AuthContext{Subject: sub}, nil
}

// fixture is a demo host: runner, service, HTTP API with SSE and WebSocket,
// traced into an in-memory exporter.
type fixture struct {
	exp  *tracetest.InMemoryExporter
	srv  *httptest.Server
	svc  *taskbridge.Service
	gate chan struct{} // closed to let "approve" tasks finish
}

func setup(t *testing.T) *fixture {
	t.Helper()
	return setupHost(t, nil)
}

// setupHost is setup with the host's own middleware, given the tracer
// provider, around the traced handler (nil: none).
func setupHost(t *testing.T, host func(trace.TracerProvider, http.Handler) http.Handler) *fixture {
	t.Helper()
	f := &fixture{exp: tracetest.NewInMemoryExporter(), gate: make(chan struct{})}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(f.exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := tbotel.New(tbotel.Config{TracerProvider: tp})

	r, err := runner.New(runner.Config{Logger: slog.New(slog.DiscardHandler), Handlers: map[string]runner.HandlerFunc{
		"work": func(ctx context.Context, _ *taskbridge.Task, e taskbridge.Emitter) (any, error) {
			if _, err := e.Emit(ctx, taskbridge.ProgressPayload{Progress: 50}); err != nil {
				return nil, err
			}
			<-f.gate
			return map[string]int{"n": 1}, nil
		},
		"approve": func(ctx context.Context, _ *taskbridge.Task, e taskbridge.Emitter) (any, error) {
			a, err := runner.Suspend(ctx, e, taskbridge.SuspendOpts{ReasonCode: "confirm", AllowedActions: []string{"ok"}})
			return map[string]string{"action": a.ActionType}, err
		},
	}})
	require.NoError(t, err)
	f.svc, err = taskbridge.New(taskbridge.Config{
		Store: memstore.New(memstore.Config{}), Executor: r, Logger: slog.New(slog.DiscardHandler),
		Diagnostics: tr.Diagnostics(), Propagator: tr.Propagator(),
	})
	require.NoError(t, err)
	streams, err := sse.NewHandler(f.svc, sse.Config{Auth: bearer{}})
	require.NoError(t, err)
	sockets, err := ws.NewHandler(f.svc, ws.Config{Auth: bearer{}})
	require.NoError(t, err)
	api, err := httpapi.New(f.svc, httpapi.Config{Auth: bearer{}, Stream: streams, WebSocket: sockets})
	require.NoError(t, err)
	var h http.Handler = tr.Middleware(api)
	if host != nil {
		h = host(tp, h)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(func() {
		f.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		select {
		case <-f.gate:
		default:
			close(f.gate)
		}
		require.NoError(t, streams.Shutdown(ctx))
		require.NoError(t, sockets.Shutdown(ctx))
		require.NoError(t, f.svc.Shutdown(ctx))
		require.NoError(t, r.Shutdown(ctx))
	})
	return f
}

func (f *fixture) do(t *testing.T, method, path string, hdr http.Header, body any) (int, []byte) {
	t.Helper()
	var rd *strings.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	} else {
		rd = strings.NewReader("")
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer alice")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
	return resp.StatusCode, []byte(b.String())
}

func (f *fixture) create(t *testing.T, hdr http.Header, crid, taskType string) string {
	t.Helper()
	status, b := f.do(t, http.MethodPost, "/api/v1/tasks", hdr, map[string]any{"clientRequestId": crid, "taskType": taskType})
	require.Equal(t, http.StatusCreated, status, string(b))
	var resp taskbridge.CreateTaskResponse
	require.NoError(t, json.Unmarshal(b, &resp))
	return resp.TaskID
}

// spans returns the ended spans named name.
func (f *fixture) spans(name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range f.exp.GetSpans() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func attr(s tracetest.SpanStub, key attribute.Key) attribute.Value {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// TestOneTraceFromRequestToEvents: the create request's trace (from its
// traceparent header) holds the create span, and, as its children, a span
// for every event the runner's handler appended; a poll, a cancel and an
// action get their spans.
func TestOneTraceFromRequestToEvents(t *testing.T) {
	t.Parallel()
	f := setup(t)
	id := f.create(t, http.Header{"Traceparent": {traceparent}}, "r1", "work")
	status, b := f.do(t, http.MethodGet, "/api/v1/tasks/"+id+"/events?afterEventId=1&waitTimeoutMs=5000", nil, nil)
	require.Equal(t, http.StatusOK, status, string(b))
	close(f.gate)
	require.Eventually(t, func() bool { return len(f.spans("taskbridge.event TASK_COMPLETED")) == 1 }, 5*time.Second, time.Millisecond)

	creates := f.spans(tbotel.SpanCreate)
	require.Len(t, creates, 1)
	create := creates[0]
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", create.SpanContext.TraceID().String())
	require.Equal(t, "00f067aa0ba902b7", create.Parent.SpanID().String(), "child of the client's span")
	require.Equal(t, trace.SpanKindServer, create.SpanKind)
	require.EqualValues(t, http.StatusCreated, attr(create, tbotel.AttrHTTPStatus).AsInt64())
	for _, typ := range []string{"TASK_STARTED", "TASK_PROGRESS", "TASK_COMPLETED"} {
		evs := f.spans(tbotel.SpanEvent + " " + typ)
		require.Len(t, evs, 1, typ)
		require.Equal(t, create.SpanContext.TraceID(), evs[0].SpanContext.TraceID(), typ)
		require.Equal(t, create.SpanContext.SpanID(), evs[0].Parent.SpanID(), typ)
		require.Equal(t, id, attr(evs[0], tbotel.AttrTaskID).AsString())
		require.Equal(t, typ, attr(evs[0], tbotel.AttrEventType).AsString())
	}
	polls := f.spans(tbotel.SpanPoll)
	require.Len(t, polls, 1)
	require.Equal(t, id, attr(polls[0], tbotel.AttrTaskID).AsString())
	require.Equal(t, "1", attr(polls[0], tbotel.AttrCursor).AsString())
	require.False(t, polls[0].Parent.IsValid(), "a request without traceparent starts a trace")

	// Cancel and action.
	id2 := f.create(t, nil, "r2", "approve")
	var suspendID string
	require.Eventually(t, func() bool {
		snap, err := f.svc.GetTask(context.Background(), taskbridge.AuthContext{Subject: "alice"}, id2)
		if err == nil && snap.Suspension != nil {
			suspendID = snap.Suspension.SuspendID
		}
		return suspendID != ""
	}, 5*time.Second, time.Millisecond)
	status, b = f.do(t, http.MethodPost, "/api/v1/tasks/"+id2+"/actions", nil,
		map[string]any{"clientActionId": "a1", "suspendId": suspendID, "actionType": "ok"})
	require.Equal(t, http.StatusAccepted, status, string(b))
	status, b = f.do(t, http.MethodPost, "/api/v1/tasks/"+id2+"/cancel", nil, map[string]any{})
	require.Equal(t, http.StatusAccepted, status, string(b))
	actions := f.spans(tbotel.SpanAction)
	require.Len(t, actions, 1)
	require.Equal(t, id2, attr(actions[0], tbotel.AttrTaskID).AsString())
	require.EqualValues(t, http.StatusAccepted, attr(actions[0], tbotel.AttrHTTPStatus).AsInt64())
	cancels := f.spans(tbotel.SpanCancel)
	require.Len(t, cancels, 1)
	require.Equal(t, id2, attr(cancels[0], tbotel.AttrTaskID).AsString())
}

// TestStreamSpans: an SSE stream and a WebSocket subscription each get a
// span for their lifetime, with the cursor, the replayed and delivered
// counts and the end reason.
func TestStreamSpans(t *testing.T) {
	t.Parallel()
	f := setup(t)
	id := f.create(t, nil, "r1", "work")
	require.Eventually(t, func() bool { return len(f.spans("taskbridge.event TASK_PROGRESS")) == 1 }, 5*time.Second, time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// SSE from cursor 1: event 2 replayed.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.srv.URL+"/api/v1/tasks/"+id+"/events/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer alice")
	req.Header.Set("Last-Event-ID", "1")
	resp, err := f.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	// WebSocket from the start: events 1 and 2 replayed.
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(f.srv.URL, "http")+ws.DefaultPath,
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer alice"}}})
	require.NoError(t, err)
	defer c.CloseNow()
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(`{"action":"subscribe","taskId":"`+id+`"}`)))
	for range 3 { // the confirmation, events 1 and 2
		_, _, err := c.Read(ctx)
		require.NoError(t, err)
	}

	close(f.gate) // the task completes: both streams end at the terminal event
	var streams []tracetest.SpanStub
	require.Eventually(t, func() bool {
		streams = f.spans(tbotel.SpanStream)
		return len(streams) == 2
	}, 5*time.Second, time.Millisecond)
	byTransport := map[string]tracetest.SpanStub{}
	for _, s := range streams {
		byTransport[attr(s, tbotel.AttrTransport).AsString()] = s
	}
	sseSpan, wsSpan := byTransport["sse"], byTransport["ws"]
	require.Equal(t, id, attr(sseSpan, tbotel.AttrTaskID).AsString())
	require.Equal(t, "1", attr(sseSpan, tbotel.AttrCursor).AsString())
	require.EqualValues(t, 1, attr(sseSpan, tbotel.AttrReplayed).AsInt64())
	require.EqualValues(t, 2, attr(sseSpan, tbotel.AttrDelivered).AsInt64()) // progress, completed
	require.Equal(t, "terminal", attr(sseSpan, tbotel.AttrEndReason).AsString())
	require.Equal(t, "", attr(wsSpan, tbotel.AttrCursor).AsString())
	require.EqualValues(t, 2, attr(wsSpan, tbotel.AttrReplayed).AsInt64())
	require.EqualValues(t, 3, attr(wsSpan, tbotel.AttrDelivered).AsInt64())
	require.Equal(t, "terminal", attr(wsSpan, tbotel.AttrEndReason).AsString())
	require.NotEqual(t, attr(sseSpan, tbotel.AttrStreamID).AsInt64(), attr(wsSpan, tbotel.AttrStreamID).AsInt64())
}

// hostSpanName is the span of hostTracing, the host's own HTTP tracing.
const hostSpanName = "host.request"

// hostTracing is what a host's HTTP tracing (otelhttp, say) does: a server
// span per request, child of its traceparent, in the request's context,
// ended when ServeHTTP returns (for a WebSocket, at the upgrade).
func hostTracing(tp trace.TracerProvider, next http.Handler) http.Handler {
	tracer := tp.Tracer("host")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, hostSpanName, trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// TestStreamSpansJoinTheRequestTrace: behind the host's HTTP tracing, the
// span of an SSE stream and of a WebSocket subscription is a child of the
// span of the request that opened it (the upgrade request for a
// WebSocket), in the trace of that request's traceparent.
func TestStreamSpansJoinTheRequestTrace(t *testing.T) {
	t.Parallel()
	f := setupHost(t, hostTracing)
	id := f.create(t, nil, "r1", "work")
	require.Eventually(t, func() bool { return len(f.spans("taskbridge.event TASK_PROGRESS")) == 1 }, 5*time.Second, time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const (
		sseParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		wsParent  = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.srv.URL+"/api/v1/tasks/"+id+"/events/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer alice")
	req.Header.Set("Traceparent", sseParent)
	resp, err := f.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(f.srv.URL, "http")+ws.DefaultPath,
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer alice"}, "Traceparent": {wsParent}}})
	require.NoError(t, err)
	defer c.CloseNow()
	// Two subscriptions on the one connection: both join its trace.
	id2 := f.create(t, nil, "r2", "work")
	for _, task := range []string{id, id2} {
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(`{"action":"subscribe","taskId":"`+task+`"}`)))
	}
	for confirmed := 0; confirmed < 2; {
		_, b, err := c.Read(ctx)
		require.NoError(t, err)
		var frame struct{ Type string }
		require.NoError(t, json.Unmarshal(b, &frame))
		if frame.Type == string(taskbridge.FrameSubscriptionConfirmed) {
			confirmed++
		}
	}

	close(f.gate) // the tasks complete: every stream ends at its terminal event
	var streams []tracetest.SpanStub
	require.Eventually(t, func() bool {
		streams = f.spans(tbotel.SpanStream)
		return len(streams) == 3
	}, 5*time.Second, time.Millisecond)
	// The host's request spans, by trace: the stream request's and the
	// upgrade request's.
	hostSpans := map[string]tracetest.SpanStub{}
	for _, s := range f.spans(hostSpanName) {
		hostSpans[s.SpanContext.TraceID().String()] = s
	}
	for _, s := range streams {
		transport := attr(s, tbotel.AttrTransport).AsString()
		parent := map[string]string{"sse": sseParent, "ws": wsParent}[transport]
		require.NotEmpty(t, parent, transport)
		traceID := strings.Split(parent, "-")[1]
		require.Equal(t, traceID, s.SpanContext.TraceID().String(), "%s stream in the request's trace", transport)
		hostSpan, ok := hostSpans[traceID]
		require.True(t, ok, transport)
		require.Equal(t, hostSpan.SpanContext.SpanID(), s.Parent.SpanID(), "%s stream is a child of the request's span", transport)
	}
}
