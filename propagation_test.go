package taskbridge_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
)

type traceKey struct{}

// fakePropagator carries a string context value as "traceparent".
type fakePropagator struct{}

func (fakePropagator) Inject(ctx context.Context, c map[string]string) {
	if v, ok := ctx.Value(traceKey{}).(string); ok {
		c["traceparent"] = v
	}
}

func (fakePropagator) Extract(ctx context.Context, c map[string]string) context.Context {
	if v, ok := c["traceparent"]; ok {
		return context.WithValue(ctx, traceKey{}, v)
	}
	return ctx
}

func withPropagator(c *taskbridge.Config, _ *memstore.Config) { c.Propagator = fakePropagator{} }

// TestPropagatorCarriesTheCreateRequestsContext: the create request's
// propagated context is stored in the task's Metadata, reaches the
// executor with the task, and TaskContext extracts it again.
func TestPropagatorCarriesTheCreateRequestsContext(t *testing.T) {
	t.Parallel()
	e := setup(t, withPropagator)
	ctx := context.WithValue(context.Background(), traceKey{}, "00-trace-span-01")
	resp, err := e.svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{
		ClientRequestID: "r1", TaskType: "demo",
		Metadata: json.RawMessage(`{"app":"x","taskbridge.traceContext":{"traceparent":"forged"}}`),
	})
	require.NoError(t, err)
	stored, err := e.store.GetTask(context.Background(), resp.TaskID)
	require.NoError(t, err)
	require.JSONEq(t, `{"app":"x","taskbridge.traceContext":{"traceparent":"00-trace-span-01"}}`, string(stored.Metadata))
	require.Equal(t, map[string]string{"traceparent": "00-trace-span-01"}, taskbridge.TraceCarrier(stored))

	submitted := e.exec.submitted[0]
	require.Equal(t, stored.Metadata, submitted.Metadata)
	got := e.svc.TaskContext(context.Background(), submitted).Value(traceKey{})
	require.Equal(t, "00-trace-span-01", got)

	// Without a trace in the request, a value the client sent is dropped.
	resp, err = e.svc.CreateTask(context.Background(), alice, taskbridge.CreateTaskRequest{
		ClientRequestID: "r2", TaskType: "demo",
		Metadata: json.RawMessage(`{"taskbridge.traceContext":{"traceparent":"forged"}}`),
	})
	require.NoError(t, err)
	stored, err = e.store.GetTask(context.Background(), resp.TaskID)
	require.NoError(t, err)
	require.JSONEq(t, `{}`, string(stored.Metadata))
	require.Nil(t, e.svc.TaskContext(context.Background(), stored).Value(traceKey{}))
}

// TestNoPropagatorLeavesMetadataAlone: without a Propagator, Metadata is
// stored as sent and TaskContext returns its argument.
func TestNoPropagatorLeavesMetadataAlone(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.WithValue(context.Background(), traceKey{}, "00-trace-span-01")
	resp, err := e.svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{
		ClientRequestID: "r1", TaskType: "demo", Metadata: json.RawMessage(`{"app":"x"}`),
	})
	require.NoError(t, err)
	stored, err := e.store.GetTask(context.Background(), resp.TaskID)
	require.NoError(t, err)
	require.JSONEq(t, `{"app":"x"}`, string(stored.Metadata))
	bg := context.Background()
	require.Equal(t, bg, e.svc.TaskContext(bg, stored))
}
