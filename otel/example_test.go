package otel_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	tbotel "github.com/taskbridge-go/taskbridge/otel"
	"github.com/taskbridge-go/taskbridge/runner"
)

// Tracing a service: its hooks and propagator in taskbridge.Config, its
// middleware around the HTTP API (not needed here: the task is created
// through the service).
func Example() {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	tr := tbotel.New(tbotel.Config{TracerProvider: tp})

	quiet := slog.New(slog.DiscardHandler)
	r, _ := runner.New(runner.Config{Logger: quiet, Handlers: map[string]runner.HandlerFunc{
		"hello": func(context.Context, *taskbridge.Task, taskbridge.Emitter) (any, error) { return "hi", nil },
	}})
	defer r.Shutdown(context.Background())
	svc, _ := taskbridge.New(taskbridge.Config{
		Store: memstore.New(memstore.Config{}), Executor: r, Logger: quiet,
		Diagnostics: tr.Diagnostics(), Propagator: tr.Propagator(),
	})
	defer svc.Shutdown(context.Background())

	// A create inside a span (Middleware would start it for HTTP).
	ctx, span := tp.Tracer("example").Start(context.Background(), "POST /api/v1/tasks")
	alice := taskbridge.AuthContext{Subject: "alice"}
	task, _ := svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: "r1", TaskType: "hello"})
	span.End()

	// Follow the task to its end.
	sub, _ := svc.Subscribe(context.Background(), alice, task.TaskID, "")
	for {
		if _, err := sub.Next(context.Background()); err == io.EOF {
			break
		}
	}
	sub.Close()

	var names []string
	for _, s := range exp.GetSpans() {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Println(n)
	}
	// Output:
	// POST /api/v1/tasks
	// taskbridge.event TASK_COMPLETED
	// taskbridge.event TASK_STARTED
	// taskbridge.stream
}
