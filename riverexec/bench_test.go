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
	// Drain the subscription from the start: River drops events that its
	// buffer cannot hold.
	allDone := make(chan struct{})
	var got atomic.Int64
	go func() {
		defer close(allDone)
		for range b.N {
			select {
			case <-completed:
				got.Add(1)
			case <-time.After(waitTimeout):
				return
			}
		}
	}()
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
	<-allDone
	all := time.Since(start)
	if got.Load() < int64(b.N) {
		b.Fatalf("only %d of %d jobs completed", got.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/created.Seconds(), "creates/s")
	b.ReportMetric(float64(b.N)/all.Seconds(), "tasks/s")
}
