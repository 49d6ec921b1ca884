package riverexec_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/riverexec"
)

// BenchmarkShortTasks measures River job throughput for tasks whose
// handler returns at once: b.N tasks are created through the service (each
// task with its job in one transaction) by 8 goroutines, and the run ends
// when every job has completed, that is after every task's TASK_STARTED and
// TASK_COMPLETED. The workers run in the same process, 20 at a time.
func BenchmarkShortTasks(b *testing.B) {
	d := newDB(b)
	n := d.newNode(b, riverexec.Config{Workers: 20, Handlers: map[string]riverexec.HandlerFunc{
		"short": func(context.Context, *taskbridge.Task, taskbridge.Emitter) (any, error) { return "ok", nil },
	}})
	ctx := b.Context()
	completed, cancel := n.exec.Client().Subscribe(river.EventKindJobCompleted)
	defer cancel()
	var next atomic.Int64
	start := time.Now()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := n.svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{
				ClientRequestID: fmt.Sprint("r", next.Add(1)), TaskType: "short"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	created := time.Since(start)
	for range b.N {
		select {
		case <-completed:
		case <-time.After(waitTimeout):
			b.Fatal("jobs did not complete")
		}
	}
	all := time.Since(start)
	b.ReportMetric(float64(b.N)/created.Seconds(), "creates/s")
	b.ReportMetric(float64(b.N)/all.Seconds(), "tasks/s")
}
