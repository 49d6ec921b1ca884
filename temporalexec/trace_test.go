package temporalexec_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/temporalexec"
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

// TestActivitiesCarryTheCreateRequestsTrace: the span context of the
// create request travels with the workflow's input (the task's Metadata)
// into every activity that appends an event.
func TestActivitiesCarryTheCreateRequestsTrace(t *testing.T) {
	t.Parallel()
	s := &suite{store: newFlakyStore()}
	var mu sync.Mutex
	var eventSCs []trace.SpanContext
	svc, err := taskbridge.New(taskbridge.Config{
		Store: s.store, Executor: envExecutor{s}, Logger: quietLogger(),
		Now:        func() time.Time { return s.env.Now() },
		Propagator: w3c{},
		Diagnostics: taskbridge.Diagnostics{EventAppended: func(ctx context.Context, _ taskbridge.TaskEvent) {
			mu.Lock()
			eventSCs = append(eventSCs, trace.SpanContextFromContext(ctx))
			mu.Unlock()
		}},
	})
	require.NoError(t, err)
	s.svc = svc
	t.Cleanup(func() { require.NoError(t, svc.Shutdown(context.Background())) })
	s.newEnv(t, demoWorkflows, func(c *temporalexec.WorkerConfig) { c.Propagator = w3c{} })

	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	resp, err := svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{
		ClientRequestID: "r1", TaskType: "greet", Input: []byte(`{"steps":2,"stepDelayMs":1000}`),
	})
	require.NoError(t, err)
	task, err := s.store.GetTask(context.Background(), resp.TaskID)
	require.NoError(t, err)
	s.execute(task)
	require.NoError(t, s.env.GetWorkflowError())

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, eventSCs, 4) // started, 2 × progress, completed
	for _, got := range eventSCs {
		require.Equal(t, sc.TraceID(), got.TraceID())
		require.Equal(t, sc.SpanID(), got.SpanID(), "the create request's span is the parent")
	}
}
