package taskbridge_test

import (
	"context"
	"testing"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/fanout"
	"github.com/taskbridge-go/taskbridge/memstore"
)

// BenchmarkSubscriptionNext measures what one subscriber's Next costs per
// delivered frame on the fan-out's two paths (see docs/BENCHMARKS.md):
//
//   - path=window: frames the task's topic already read and encoded once,
//     shared by every subscriber that keeps up;
//   - path=store: a subscriber replaying history, or one that fell more
//     than the topic window behind, reads the store with its own cursor and
//     encodes every event itself.
//
// The gap between the two is what a lagging subscriber costs extra, per
// event, on top of writing it.
func BenchmarkSubscriptionNext(b *testing.B) {
	b.Run("path=window", benchmarkNextWindow)
	b.Run("path=store", benchmarkNextStore)
}

// nextBenchBatch is how many events are emitted between measured drains;
// less than the topic window, so the window path stays in the window.
const nextBenchBatch = 512

type nextBench struct {
	b     *testing.B
	ctx   context.Context
	store *memstore.Store
	svc   *taskbridge.Service
	em    taskbridge.Emitter
	task  string
	buf   []*fanout.Frame
}

// newNextBench returns a service over a fresh store with a task holding
// one event, TASK_STARTED with id 1. The caller must close it.
func newNextBench(b *testing.B, cfg memstore.Config) *nextBench {
	ctx := context.Background()
	store := memstore.New(cfg)
	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: &fakeExecutor{}, Logger: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	resp, err := svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: "c", TaskType: "t"})
	if err != nil {
		b.Fatal(err)
	}
	em := svc.Emitter(resp.TaskID)
	if _, err := em.Emit(ctx, taskbridge.StartedPayload{}); err != nil {
		b.Fatal(err)
	}
	return &nextBench{b: b, ctx: ctx, store: store, svc: svc, em: em, task: resp.TaskID, buf: make([]*fanout.Frame, 0, 512)}
}

func (nb *nextBench) close() {
	_ = nb.svc.Shutdown(nb.ctx)
	_ = nb.store.Close()
}

// emit appends n TASK_PROGRESS events like tbload's.
func (nb *nextBench) emit(n int) {
	p := taskbridge.ProgressPayload{Progress: 0.5, Stage: "bench", Message: "1712345678901234567"}
	for range n {
		if _, err := nb.em.Emit(nb.ctx, p); err != nil {
			nb.b.Fatal(err)
		}
	}
}

func (nb *nextBench) subscribe(cursor string) *fanout.Subscription {
	sub, err := hooks.Subscribe(nb.ctx, nb.svc, alice, nb.task, cursor, fanout.SubscribeOpts{})
	if err != nil {
		nb.b.Fatal(err)
	}
	return sub
}

// drain takes n frames from sub, waiting for its signal when none is ready.
func (nb *nextBench) drain(sub *fanout.Subscription, n int) {
	for got := 0; got < n; {
		frames, err := sub.Next(nb.ctx, nb.buf[:0])
		if err != nil {
			nb.b.Fatal(err)
		}
		got += len(frames)
		clear(frames)
		if len(frames) == 0 {
			<-sub.Ready()
		}
	}
}

func benchmarkNextWindow(b *testing.B) {
	// A retention cap bounds the store: these subscribers never read it.
	nb := newNextBench(b, memstore.Config{MaxEventsPerTask: 4 * nextBenchBatch})
	defer nb.close()
	// Each emitted batch is taken by windowSubs subscribers, so the
	// untimed emitting does not dominate the run. probe drains first,
	// untimed, so the topic has read and encoded each batch before the
	// measured subscribers take it.
	const windowSubs = 64
	probe := nb.subscribe("1")
	defer probe.Close()
	subs := make([]*fanout.Subscription, windowSubs)
	for i := range subs {
		subs[i] = nb.subscribe("1")
		defer subs[i].Close()
	}
	// A Next that finds a subscriber caught up joins it to the topic.
	for _, s := range append(subs, probe) {
		if frames, err := s.Next(nb.ctx, nb.buf[:0]); err != nil || len(frames) != 0 {
			b.Fatal(frames, err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(nextBenchBatch, (b.N-done+windowSubs-1)/windowSubs)
		b.StopTimer()
		nb.emit(n)
		nb.drain(probe, n)
		b.StartTimer()
		for _, s := range subs {
			nb.drain(s, n)
		}
		done += n * windowSubs
	}
}

func benchmarkNextStore(b *testing.B) {
	// Fresh services bound the memory a large b.N would keep in the store.
	const perTask = 8 * nextBenchBatch
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(perTask, b.N-done)
		b.StopTimer()
		nb := newNextBench(b, memstore.Config{})
		nb.emit(n)
		b.StartTimer()
		sub := nb.subscribe("1")
		nb.drain(sub, n)
		sub.Close()
		b.StopTimer()
		nb.close()
		b.StartTimer()
		done += n
	}
}
