package runner_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/runner"
)

type traceKey struct{}

// TestHandlerContextCarriesSubmitValues: the handler's context carries the
// values of Submit's context (the create request's trace context, say),
// but not its cancellation; the runner's shutdown still cancels it.
func TestHandlerContextCarriesSubmitValues(t *testing.T) {
	t.Parallel()
	type seen struct {
		value any
		err   error
	}
	got := make(chan seen, 2)
	check := make(chan struct{})
	r, err := runner.New(runner.Config{Logger: quietLogger(), Handlers: map[string]runner.HandlerFunc{
		"work": func(ctx context.Context, _ *taskbridge.Task, _ taskbridge.Emitter) (any, error) {
			<-check
			got <- seen{ctx.Value(traceKey{}), ctx.Err()}
			<-ctx.Done()
			got <- seen{ctx.Value(traceKey{}), context.Cause(ctx)}
			return nil, ctx.Err()
		},
	}})
	require.NoError(t, err)
	task, f := newTask("work")
	submitCtx, cancelSubmit := context.WithCancel(context.WithValue(context.Background(), traceKey{}, "trace-1"))
	require.NoError(t, r.Submit(submitCtx, task, f))
	cancelSubmit() // the create request is over: the task goes on
	close(check)
	s := <-got
	require.Equal(t, "trace-1", s.value)
	require.NoError(t, s.err, "the handler's context ended with the request's")
	// A shutdown that runs out of time cancels the handler.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, r.Shutdown(ctx), context.DeadlineExceeded)
	s = <-got
	require.Equal(t, "trace-1", s.value)
	require.Error(t, s.err)
	f.waitTerminal(t)
}
