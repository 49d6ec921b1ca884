package memstore_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/storetest"
)

// benchStore returns a store whose retention cap keeps benchmark memory
// bounded, and a function that creates a started task.
func benchStore(b *testing.B) (*memstore.Store, func(id string)) {
	s := memstore.New(memstore.Config{MaxEventsPerTask: 10_000})
	b.Cleanup(func() { _ = s.Close() })
	ctx := b.Context()
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

func BenchmarkAppend(b *testing.B) {
	b.Run("OneTask", func(b *testing.B) {
		s, start := benchStore(b)
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
		s, start := benchStore(b)
		var next atomic.Int64
		b.ReportAllocs()
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

func BenchmarkRead(b *testing.B) {
	s, start := benchStore(b)
	start("task")
	ev := eventFor("task")
	for range 9_999 {
		if _, err := s.Append(b.Context(), ev); err != nil {
			b.Fatal(err)
		}
	}
	for _, limit := range []int{1, 100} {
		b.Run(fmt.Sprint("Limit", limit), func(b *testing.B) {
			b.ReportAllocs()
			after := int64(0)
			for b.Loop() {
				evs, err := s.Read(b.Context(), "task", after, limit)
				if err != nil || len(evs) != limit {
					b.Fatal(len(evs), err)
				}
				after = (after + 37) % 9_000
			}
		})
	}
	b.Run("ParallelLimit100", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			after := int64(0)
			for pb.Next() {
				if _, err := s.Read(b.Context(), "task", after, 100); err != nil {
					b.Error(err)
					return
				}
				after = (after + 37) % 9_000
			}
		})
	})
}

// BenchmarkAppendWithWatchers appends to a task with n watchers, each a
// non-blocking channel send as a subscriber's wake-up would be.
func BenchmarkAppendWithWatchers(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s, start := benchStore(b)
			start("task")
			for range n {
				wake := make(chan struct{}, 1)
				stop := s.Watch("task", func() {
					select {
					case wake <- struct{}{}:
					default:
					}
				})
				b.Cleanup(stop)
			}
			ev := eventFor("task")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Append(b.Context(), ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkListTasks lists one owner's newest tasks in a store of 32,768
// tasks, all the owner's or spread over 64 owners.
func BenchmarkListTasks(b *testing.B) {
	for _, owners := range []int{1, 64} {
		s := memstore.New(memstore.Config{})
		b.Cleanup(func() { _ = s.Close() })
		for i := range 32_768 {
			id := fmt.Sprint("task-", i)
			in := storetest.NewTask(id, fmt.Sprint("owner-", i%owners), id, storetest.BaseTime.Add(time.Duration(i)*time.Millisecond))
			if _, _, err := s.CreateTask(b.Context(), in); err != nil {
				b.Fatal(err)
			}
		}
		for _, limit := range []int{1, 21} {
			b.Run(fmt.Sprintf("Owners%d/Limit%d", owners, limit), func(b *testing.B) {
				b.ReportAllocs()
				q := taskbridge.TaskQuery{OwnerID: "owner-0", Limit: limit}
				for b.Loop() {
					if tasks, err := s.ListTasks(b.Context(), q); err != nil || len(tasks) != limit {
						b.Fatal(len(tasks), err)
					}
				}
			})
		}
	}
}

// BenchmarkCreateTask creates tasks for one owner who already has 50,000.
// A busy service creates several tasks per millisecond (CreatedAt is kept
// to the millisecond) with random ids, so a new task often sorts before
// the owner's newest ones: "PerMs8" gives every 8 consecutive tasks one
// CreatedAt, "PerMs64" every 64, "PerMs1" gives each its own.
func BenchmarkCreateTask(b *testing.B) {
	for _, perMs := range []int{1, 8, 64} {
		b.Run(fmt.Sprint("PerMs", perMs), func(b *testing.B) {
			s := memstore.New(memstore.Config{})
			b.Cleanup(func() { _ = s.Close() })
			i := 0
			create := func() {
				id := uuid.NewString()
				at := storetest.BaseTime.Add(time.Duration(i/perMs) * time.Millisecond)
				i++
				if _, _, err := s.CreateTask(b.Context(), storetest.NewTask(id, "owner", id, at)); err != nil {
					b.Fatal(err)
				}
			}
			for range 50_000 {
				create()
			}
			b.ReportAllocs()
			for b.Loop() {
				create()
			}
		})
	}
}

// BenchmarkPruneTerminalTasks measures retention in steady state: an owner
// keeps 100,000 finished tasks; each op finishes 100 more and prunes the
// 100 oldest, as one batch of the service's maintenance does.
func BenchmarkPruneTerminalTasks(b *testing.B) {
	s := memstore.New(memstore.Config{})
	b.Cleanup(func() { _ = s.Close() })
	ctx := b.Context()
	i := 0
	finish := func() {
		id := fmt.Sprint("task-", i)
		at := storetest.BaseTime.Add(time.Duration(i) * time.Millisecond)
		i++
		if _, _, err := s.CreateTask(ctx, storetest.NewTask(id, "owner", id, at)); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Append(ctx, storetest.NewEvent(id, taskbridge.CompletedPayload{Result: 1}, at)); err != nil {
			b.Fatal(err)
		}
	}
	for range 100_000 {
		finish()
	}
	b.ReportAllocs()
	for b.Loop() {
		for range 100 {
			finish()
		}
		pruned, err := s.PruneTerminalTasks(ctx, storetest.BaseTime.Add(time.Duration(i)*time.Millisecond), 100)
		if err != nil || len(pruned) != 100 {
			b.Fatal(len(pruned), err)
		}
	}
}

// BenchmarkMaintenanceIdle measures a maintenance pass's store calls for
// suspensions and receipts on a store of 100,000 tasks when little is due,
// as most passes find: 10 accepted actions wait for their resume hand-off
// (listed), their receipts and 10 open suspensions are due tomorrow.
func BenchmarkMaintenanceIdle(b *testing.B) {
	s := memstore.New(memstore.Config{})
	b.Cleanup(func() { _ = s.Close() })
	ctx := b.Context()
	tomorrow := storetest.BaseTime.Add(24 * time.Hour)
	for i := range 100_000 {
		id := fmt.Sprint("task-", i)
		if _, _, err := s.CreateTask(ctx, storetest.NewTask(id, "owner", id, storetest.BaseTime)); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Append(ctx, storetest.NewEvent(id, taskbridge.StartedPayload{}, storetest.BaseTime)); err != nil {
			b.Fatal(err)
		}
		if i%10_000 < 10 {
			sp, ev := storetest.NewSuspension(id, "answered", nil, storetest.BaseTime)
			if _, _, err := s.OpenSuspension(ctx, sp, ev); err != nil {
				b.Fatal(err)
			}
			if _, err := s.AcceptAction(ctx, storetest.NewAttempt(id, "answered", "a", "fp", tomorrow)); err != nil {
				b.Fatal(err)
			}
			sp, ev = storetest.NewSuspension(id, "open", &tomorrow, storetest.BaseTime)
			if _, _, err := s.OpenSuspension(ctx, sp, ev); err != nil {
				b.Fatal(err)
			}
		}
	}
	now := storetest.BaseTime.Add(time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if sus, err := s.ListPendingResumes(ctx, 100); err != nil || len(sus) != 100_000/10_000*10 {
			b.Fatal(len(sus), err)
		}
		if sus, err := s.ExpireSuspensions(ctx, now, 100); err != nil || len(sus) > 0 {
			b.Fatal(len(sus), err)
		}
		if n, err := s.DeleteReceipts(ctx, now, 100); err != nil || n > 0 {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkLeases measures the runner's recovery scan (ExpiredLeases, none
// expired) and a lease renewal on a store of 100,000 tasks, 1,000 of them
// running under a lease.
func BenchmarkLeases(b *testing.B) {
	s := memstore.New(memstore.Config{})
	b.Cleanup(func() { _ = s.Close() })
	ctx := b.Context()
	for i := range 100_000 {
		id := fmt.Sprint("task-", i)
		if _, _, err := s.CreateTask(ctx, storetest.NewTask(id, "owner", id, storetest.BaseTime)); err != nil {
			b.Fatal(err)
		}
		if i%100 == 0 {
			if _, ok, err := s.AcquireLease(ctx, id, "me", storetest.BaseTime, time.Minute); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	}
	b.Run("ExpiredLeases", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if ls, err := s.ExpiredLeases(ctx, storetest.BaseTime, 100); err != nil || len(ls) > 0 {
				b.Fatal(len(ls), err)
			}
		}
	})
	b.Run("RenewLease", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.RenewLease(ctx, "task-500", "me", storetest.BaseTime, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGetTaskHead looks tasks up by id in an order that touches each
// task once per pass, as a service with many tasks does (each task is read
// when an event of its is appended, delivered or polled): with 100,000
// tasks, most lookups miss the CPU caches.
func BenchmarkGetTaskHead(b *testing.B) {
	benchManyTasks(b, true, func(b *testing.B, s *memstore.Store, id string) {
		if _, err := s.GetTaskHead(b.Context(), id); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkWatchChurn watches a task and stops watching it, as a long
// poll does for every wake, over many tasks in the order of
// BenchmarkGetTaskHead.
func BenchmarkWatchChurn(b *testing.B) {
	notify := func() {}
	benchManyTasks(b, false, func(_ *testing.B, s *memstore.Store, id string) {
		s.Watch(id, notify)()
	})
}

// benchManyTasks runs op once per iteration on the ids of 1,000 and of
// 100,000 tasks (created in the store when create is set), touching each
// once per pass, each far from the last.
func benchManyTasks(b *testing.B, create bool, op func(b *testing.B, s *memstore.Store, id string)) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprint("tasks=", n), func(b *testing.B) {
			s := memstore.New(memstore.Config{})
			b.Cleanup(func() { _ = s.Close() })
			ids := make([]string, n)
			for i := range ids {
				ids[i] = uuid.NewString()
				if !create {
					continue
				}
				if _, _, err := s.CreateTask(b.Context(), storetest.NewTask(ids[i], fmt.Sprint("owner", i%100), ids[i], storetest.BaseTime)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				op(b, s, ids[i])
				i = (i + 7919) % n // a prime: every task once per pass
			}
		})
	}
}
