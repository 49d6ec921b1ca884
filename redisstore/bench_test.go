package redisstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/redisstore"
	"github.com/taskbridge-go/taskbridge/storetest"
)

// benchStore returns a store on TASKBRIDGE_REDIS_URL with a unique prefix
// and a function that creates a started task.
func benchStore(b *testing.B, cfg redisstore.Config) (*redisstore.Store, func(id string)) {
	s := newStore(b, cfg)
	ctx := context.Background()
	start := func(id string) {
		if _, _, err := s.CreateTask(ctx, storetest.NewTask(id, "bench", id, storetest.BaseTime)); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Append(ctx, storetest.NewEvent(id, taskbridge.StartedPayload{}, storetest.BaseTime)); err != nil {
			b.Fatal(err)
		}
	}
	return s, start
}

var benchEvent = storetest.NewEvent("", taskbridge.ProgressPayload{Progress: 42, Stage: "render", Message: "rendering page 3 of 7"}, storetest.BaseTime)

func eventFor(taskID string) taskbridge.TaskEvent {
	ev := benchEvent
	ev.TaskID = taskID
	return ev
}

// BenchmarkAppend measures appends over the network to the real Redis: one
// task from one goroutine (latency-bound), and one task per goroutine
// (throughput; run with -cpu to vary the goroutines).
func BenchmarkAppend(b *testing.B) {
	b.Run("OneTask", func(b *testing.B) {
		s, start := benchStore(b, redisstore.Config{MaxLen: 10_000})
		start("task")
		ev := eventFor("task")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Append(b.Context(), ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("TaskPerGoroutine", func(b *testing.B) {
		s, start := benchStore(b, redisstore.Config{MaxLen: 10_000})
		var next atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			id := fmt.Sprint("task-", next.Add(1))
			start(id)
			ev := eventFor(id)
			for pb.Next() {
				if _, err := s.Append(b.Context(), ev); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkRead measures reads of a 10,000-event log: one page of 100, and
// the replay of the whole log in pages of 256 (the service's ReplayBatch),
// which is what a client that missed 10,000 events costs.
func BenchmarkRead(b *testing.B) {
	s, start := benchStore(b, redisstore.Config{})
	start("task")
	ev := eventFor("task")
	ctx := context.Background()
	for range 9_999 {
		if _, err := s.Append(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("Limit100", func(b *testing.B) {
		b.ReportAllocs()
		after := int64(0)
		for b.Loop() {
			evs, err := s.Read(b.Context(), "task", after, 100)
			if err != nil || len(evs) != 100 {
				b.Fatal(len(evs), err)
			}
			after = (after + 37) % 9_000
		}
	})
	b.Run("Replay10000", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n, after := 0, int64(0)
			for {
				evs, err := s.Read(b.Context(), "task", after, 256)
				if err != nil {
					b.Fatal(err)
				}
				if len(evs) == 0 {
					break
				}
				n += len(evs)
				after = evs[len(evs)-1].Seq
			}
			if n != 10_000 {
				b.Fatalf("replayed %d events", n)
			}
		}
	})
}
