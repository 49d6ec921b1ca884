package riverexec_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/riverexec"
)

// w3c is a taskbridge.Propagator over OpenTelemetry's W3C trace context
// propagator (the otel module has the same adapter).
type w3c struct{ propagation.TraceContext }

func (p w3c) Inject(ctx context.Context, c map[string]string) {
	p.TraceContext.Inject(ctx, propagation.MapCarrier(c))
}

func (p w3c) Extract(ctx context.Context, c map[string]string) context.Context {
	return p.TraceContext.Extract(ctx, propagation.MapCarrier(c))
}

// TestJobContextCarriesTheCreateRequestsTrace: the span context of the
// create request reaches the River worker: the handler's context and the
// context of every event it appends carry it.
func TestJobContextCarriesTheCreateRequestsTrace(t *testing.T) {
	d := newDB(t)
	var mu sync.Mutex
	var handlerSC trace.SpanContext
	var eventSCs []trace.SpanContext
	n := d.newNode(t, riverexec.Config{Handlers: map[string]riverexec.HandlerFunc{
		"traced": func(ctx context.Context, _ *taskbridge.Task, e taskbridge.Emitter) (any, error) {
			mu.Lock()
			handlerSC = trace.SpanContextFromContext(ctx)
			mu.Unlock()
			_, err := e.Emit(ctx, taskbridge.ProgressPayload{Progress: 50})
			return nil, err
		},
	}}, func(c *taskbridge.Config) {
		c.Propagator = w3c{}
		c.Diagnostics.EventAppended = func(ctx context.Context, _ taskbridge.TaskEvent) {
			mu.Lock()
			eventSCs = append(eventSCs, trace.SpanContextFromContext(ctx))
			mu.Unlock()
		}
	})
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(t.Context(), sc)
	resp, err := n.svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: "r1", TaskType: "traced"})
	require.NoError(t, err)
	n.waitTerminal(t, resp.TaskID)
	// The hook runs after the append it reports, so the terminal event can
	// be in the store before its hook has run.
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(eventSCs) >= 3
	}, 10*time.Second, time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, sc.TraceID(), handlerSC.TraceID())
	require.Equal(t, sc.SpanID(), handlerSC.SpanID(), "the create request's span is the parent")
	require.True(t, handlerSC.IsRemote())
	require.Len(t, eventSCs, 3) // started, progress, completed
	for _, got := range eventSCs {
		require.Equal(t, sc.TraceID(), got.TraceID())
	}
}
