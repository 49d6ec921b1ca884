package prometheus_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	tbprom "github.com/taskbridge-go/taskbridge/prometheus"
)

// noopExecutor accepts every task and runs nothing.
type noopExecutor struct{}

func (noopExecutor) Submit(context.Context, taskbridge.Task, taskbridge.Emitter) error { return nil }
func (noopExecutor) Cancel(context.Context, taskbridge.Task) error                     { return nil }

// The service records its metrics into the sink; the registry is served
// at /metrics.
func Example() {
	reg := prom.NewRegistry() // or leave Registerer nil for the default registry
	sink, err := tbprom.New(tbprom.Config{Registerer: reg})
	if err != nil {
		panic(err)
	}
	svc, err := taskbridge.New(taskbridge.Config{Store: memstore.New(memstore.Config{}), Executor: noopExecutor{}, Metrics: sink})
	if err != nil {
		panic(err)
	}
	defer svc.Shutdown(context.Background())

	alice := taskbridge.AuthContext{Subject: "alice"}
	task, _ := svc.CreateTask(context.Background(), alice, taskbridge.CreateTaskRequest{ClientRequestID: "r1", TaskType: "demo"})
	_, _ = svc.CancelTask(context.Background(), alice, task.TaskID, taskbridge.CancelRequest{})

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, "taskbridge_task_starts_total") || strings.HasPrefix(line, "taskbridge_cancels_total") {
			fmt.Println(line)
		}
	}
	n, _ := testutil.GatherAndCount(reg, "taskbridge_cancels_total")
	fmt.Println("series:", n)
	// Output:
	// taskbridge_cancels_total 1
	// taskbridge_task_starts_total 1
	// series: 1
}
