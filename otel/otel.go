package otel

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskbridge-go/taskbridge"
)

// ScopeName is the instrumentation scope of the spans.
const ScopeName = "github.com/taskbridge-go/taskbridge/otel"

// Span names.
const (
	SpanCreate = "taskbridge.create"
	SpanPoll   = "taskbridge.poll"
	SpanCancel = "taskbridge.cancel"
	SpanAction = "taskbridge.action"
	SpanStream = "taskbridge.stream"
	SpanEvent  = "taskbridge.event"
)

// Attribute keys.
const (
	AttrTaskID          = attribute.Key("taskbridge.task.id")
	AttrTransport       = attribute.Key("taskbridge.transport")
	AttrCursor          = attribute.Key("taskbridge.cursor")
	AttrStreamID        = attribute.Key("taskbridge.stream.id")
	AttrReplayed        = attribute.Key("taskbridge.stream.replayed")
	AttrDelivered       = attribute.Key("taskbridge.stream.delivered")
	AttrEndReason       = attribute.Key("taskbridge.stream.end_reason")
	AttrEventID         = attribute.Key("taskbridge.event.id")
	AttrEventType       = attribute.Key("taskbridge.event.type")
	AttrHTTPMethod      = attribute.Key("http.request.method")
	AttrHTTPStatus      = attribute.Key("http.response.status_code")
	AttrURLPath         = attribute.Key("url.path")
	AttrHeartbeatsCount = attribute.Key("taskbridge.stream.heartbeats")
)

// Config configures [New]. A zero field means its default.
type Config struct {
	// TracerProvider creates the tracer. Defaults to the global one
	// (otel.GetTracerProvider()).
	TracerProvider trace.TracerProvider
	// Propagator reads trace context from incoming requests (Middleware)
	// and carries it from a create request to the executor
	// ([Tracing.Propagator]). Defaults to W3C trace context
	// (propagation.TraceContext).
	Propagator propagation.TextMapPropagator
}

// Tracing makes OpenTelemetry spans of taskbridge's work: its
// [Tracing.Middleware] traces the commands (create, poll, cancel, action),
// its [Tracing.Diagnostics] each stream's lifetime and every event an
// executor appends, and its [Tracing.Propagator] carries the create
// request's trace to the executor. Create it with [New]; it is safe for
// concurrent use.
type Tracing struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator

	streams sync.Map // stream id → *stream
}

// stream is an open stream's span.
type stream struct {
	span       trace.Span
	mu         sync.Mutex
	heartbeats int
}

// New returns a Tracing.
func New(cfg Config) *Tracing {
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	if cfg.Propagator == nil {
		cfg.Propagator = propagation.TraceContext{}
	}
	return &Tracing{tracer: cfg.TracerProvider.Tracer(ScopeName), prop: cfg.Propagator}
}

// Propagator returns the taskbridge.Propagator for taskbridge.Config (and
// temporalexec.WorkerConfig): the create request's trace is kept with the
// task and joins the executor's context, so the events the task appends
// belong to the request's trace.
func (t *Tracing) Propagator() taskbridge.Propagator { return propagator{t.prop} }

type propagator struct{ p propagation.TextMapPropagator }

func (p propagator) Inject(ctx context.Context, c map[string]string) {
	p.p.Inject(ctx, propagation.MapCarrier(c))
}

func (p propagator) Extract(ctx context.Context, c map[string]string) context.Context {
	return p.p.Extract(ctx, propagation.MapCarrier(c))
}

// operation names the span of a taskbridge command from its method and
// path (the protocol's paths, under any prefix), or "" for other requests.
func operation(r *http.Request) (name, taskID string) {
	p := strings.TrimSuffix(r.URL.Path, "/")
	last := p[strings.LastIndexByte(p, '/')+1:]
	grand := func() (string, string) { // the segment before the task id, and the id
		q := strings.TrimSuffix(p, "/"+last)
		id := q[strings.LastIndexByte(q, '/')+1:]
		q = strings.TrimSuffix(q, "/"+id)
		return q[strings.LastIndexByte(q, '/')+1:], id
	}
	switch {
	case r.Method == http.MethodPost && last == "tasks":
		return SpanCreate, ""
	case r.Method == http.MethodGet && last == "events":
		if tasks, id := grand(); tasks == "tasks" {
			return SpanPoll, id
		}
	case r.Method == http.MethodPost && last == "cancel":
		if tasks, id := grand(); tasks == "tasks" {
			return SpanCancel, id
		}
	case r.Method == http.MethodPost && last == "actions":
		if tasks, id := grand(); tasks == "tasks" {
			return SpanAction, id
		}
	}
	return "", ""
}

// Middleware traces taskbridge's commands served by next (an httpapi
// handler): a server span per create (POST …/tasks), poll (GET
// …/tasks/{taskId}/events), cancel and action, child of the trace context
// the request carries (traceparent) or of a span already in its context
// (otelhttp's, say). Other requests pass through untouched; streams are
// traced by [Tracing.Diagnostics]. The span's context is the request's, so
// the service sees it: a create's trace is kept with the task by
// [Tracing.Propagator].
func (t *Tracing) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, taskID := operation(r)
		if name == "" {
			next.ServeHTTP(w, r)
			return
		}
		ctx := r.Context()
		if !trace.SpanContextFromContext(ctx).IsValid() {
			ctx = t.prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
		}
		attrs := []attribute.KeyValue{AttrHTTPMethod.String(r.Method), AttrURLPath.String(r.URL.Path)}
		if taskID != "" {
			attrs = append(attrs, AttrTaskID.String(taskID))
		}
		ctx, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r.WithContext(ctx))
		span.SetAttributes(AttrHTTPStatus.Int(sw.status))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, strconv.Itoa(sw.status))
		}
	})
}

// statusWriter records the response status.
type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the server's writer (write
// deadlines of long polls, flushing).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Diagnostics returns the hooks for taskbridge.Config.Diagnostics: a span
// per stream (SSE, WebSocket subscription, Service.Subscribe) from its
// replay start to its end, child of the request's span, with the cursor,
// the replayed and delivered counts, the heartbeats and the end reason; a
// short span per event an executor appends, child of the executor's
// context (the create request's trace, with [Tracing.Propagator]); the
// cursor of polls on their span; EVENTS_EXPIRED as a span event. To add
// hooks of your own, wrap the functions of the returned value.
func (t *Tracing) Diagnostics() taskbridge.Diagnostics {
	return taskbridge.Diagnostics{
		ReplayStart:   t.replayStart,
		Heartbeat:     t.heartbeat,
		Disconnect:    t.disconnect,
		EventsExpired: t.eventsExpired,
		EventAppended: t.eventAppended,
	}
}

func (t *Tracing) replayStart(ctx context.Context, info taskbridge.ReplayInfo) {
	if info.StreamID == 0 {
		// A poll: annotate its span.
		trace.SpanFromContext(ctx).SetAttributes(AttrCursor.String(info.Cursor))
		return
	}
	_, span := t.tracer.Start(ctx, SpanStream, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		AttrTransport.String(info.Transport), AttrTaskID.String(info.TaskID),
		AttrCursor.String(info.Cursor), AttrStreamID.Int64(int64(info.StreamID)),
	))
	t.streams.Store(info.StreamID, &stream{span: span})
}

func (t *Tracing) heartbeat(info taskbridge.StreamInfo) {
	if v, ok := t.streams.Load(info.StreamID); ok {
		s := v.(*stream)
		s.mu.Lock()
		s.heartbeats++
		s.mu.Unlock()
	}
}

func (t *Tracing) disconnect(info taskbridge.DisconnectInfo) {
	v, ok := t.streams.LoadAndDelete(info.StreamID)
	if !ok {
		return
	}
	s := v.(*stream)
	s.mu.Lock()
	hb := s.heartbeats
	s.mu.Unlock()
	s.span.SetAttributes(
		AttrReplayed.Int64(info.Replayed), AttrDelivered.Int64(info.Delivered),
		AttrEndReason.String(string(info.Reason)), AttrHeartbeatsCount.Int(hb),
	)
	if info.Reason == taskbridge.DisconnectError {
		if info.Err != nil {
			s.span.RecordError(info.Err)
		}
		s.span.SetStatus(codes.Error, string(info.Reason))
	}
	s.span.End()
}

func (t *Tracing) eventsExpired(info taskbridge.StreamInfo) {
	if v, ok := t.streams.Load(info.StreamID); ok && info.StreamID != 0 {
		v.(*stream).span.AddEvent("EVENTS_EXPIRED")
	}
}

func (t *Tracing) eventAppended(ctx context.Context, ev taskbridge.TaskEvent) {
	_, span := t.tracer.Start(ctx, SpanEvent+" "+string(ev.Type), trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithTimestamp(ev.CreatedAt), trace.WithAttributes(
			AttrTaskID.String(ev.TaskID), AttrEventID.String(ev.EventID), AttrEventType.String(string(ev.Type)),
		))
	span.End(trace.WithTimestamp(ev.CreatedAt))
}
