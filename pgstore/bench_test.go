package pgstore_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/pgstore"
	"github.com/taskbridge-go/taskbridge/pgstore/pgtest"
	"github.com/taskbridge-go/taskbridge/storetest"
)

// The benchmarks of docs/BENCHMARKS.md. Those that compare stores run the
// same code on memstore (store=memory) and on PostgreSQL (store=postgres).

var benchPayload = taskbridge.ProgressPayload{Progress: 42, Stage: "render", Message: "rendering page 3 of 7"}

// benchPG returns a migrated store on a private schema with a pool of
// conns connections.
func benchPG(b *testing.B, conns int) (*pgstore.Store, *pgtest.DB) {
	d := pgtest.NewDB(b, "tbbench", conns)
	s, err := pgstore.New(d.Pool, pgstore.Config{Schema: d.Schema, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(b.Context()); err != nil {
		b.Fatal(err)
	}
	return s, d
}

func benchStarted(b *testing.B, s taskbridge.Store, id string) {
	ctx := b.Context()
	if _, _, err := s.CreateTask(ctx, storetest.NewTask(id, "bench", id, storetest.BaseTime)); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Append(ctx, storetest.NewEvent(id, taskbridge.StartedPayload{}, storetest.BaseTime)); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkAppend measures appends: one at a time to one task, from
// parallel goroutines each to its own task, and batched, several events
// per transaction of the host (AppendTx).
func BenchmarkAppend(b *testing.B) {
	b.Run("OneTask", func(b *testing.B) {
		s, _ := benchPG(b, 4)
		benchStarted(b, s, "task")
		ev := storetest.NewEvent("task", benchPayload, storetest.BaseTime)
		for b.Loop() {
			if _, err := s.Append(b.Context(), ev); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("TaskPerGoroutine", func(b *testing.B) {
		s, _ := benchPG(b, 16)
		var next atomic.Int64
		b.SetParallelism(8) // 16 goroutines on 2 CPUs: the database waits, not Go
		b.RunParallel(func(pb *testing.PB) {
			id := fmt.Sprint("task-", next.Add(1))
			benchStarted(b, s, id)
			ev := storetest.NewEvent(id, benchPayload, storetest.BaseTime)
			for pb.Next() {
				if _, err := s.Append(context.Background(), ev); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	for _, batch := range []int{10, 100} {
		b.Run(fmt.Sprint("TxBatch", batch), func(b *testing.B) {
			s, d := benchPG(b, 4)
			benchStarted(b, s, "task")
			ev := storetest.NewEvent("task", benchPayload, storetest.BaseTime)
			ctx := b.Context()
			for b.Loop() {
				tx, err := d.Pool.Begin(ctx)
				if err != nil {
					b.Fatal(err)
				}
				for range batch {
					if _, err := s.AppendTx(ctx, tx, ev); err != nil {
						b.Fatal(err)
					}
				}
				if err := tx.Commit(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// stores returns the stores a comparison runs on.
func stores(b *testing.B) map[string]func(b *testing.B) taskbridge.Store {
	return map[string]func(b *testing.B) taskbridge.Store{
		"memory": func(b *testing.B) taskbridge.Store {
			s := memstore.New(memstore.Config{})
			b.Cleanup(func() { _ = s.Close() })
			return s
		},
		"postgres": func(b *testing.B) taskbridge.Store {
			s, _ := benchPG(b, 8)
			return s
		},
	}
}

// nopExecutor accepts tasks and runs nothing: the benchmarks emit.
type nopExecutor struct{}

func (nopExecutor) Submit(context.Context, taskbridge.Task, taskbridge.Emitter) error { return nil }
func (nopExecutor) Cancel(context.Context, taskbridge.Task) error                     { return nil }

var benchUser = taskbridge.AuthContext{Subject: "bench"}

// benchService returns a service over s with a started task.
func benchService(b *testing.B, s taskbridge.Store) (*taskbridge.Service, string, taskbridge.Emitter) {
	svc, err := taskbridge.New(taskbridge.Config{Store: s, Executor: nopExecutor{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = svc.Shutdown(context.Background()) })
	resp, err := svc.CreateTask(b.Context(), benchUser, taskbridge.CreateTaskRequest{ClientRequestID: "c", TaskType: "t"})
	if err != nil {
		b.Fatal(err)
	}
	em := svc.Emitter(resp.TaskID)
	if _, err := em.Emit(b.Context(), taskbridge.StartedPayload{}); err != nil {
		b.Fatal(err)
	}
	return svc, resp.TaskID, em
}

// reportLatency reports the median and 99th percentile of ds.
func reportLatency(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	ms := func(q float64) float64 { return float64(ds[int(q*float64(len(ds)-1))]) / 1e6 }
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
}

// BenchmarkDelivery measures append→delivery latency to 1,000 subscribers
// of one task: each op emits one event and waits until every subscriber
// has taken it from Subscription.Next (the path of SSE, WebSocket and
// long polls). Latencies are per delivery.
func BenchmarkDelivery(b *testing.B) {
	for name, open := range stores(b) {
		b.Run("store="+name, func(b *testing.B) {
			const subscribers = 1000
			svc, taskID, em := benchService(b, open(b))
			ctx, cancel := context.WithCancel(b.Context())
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				lat     []time.Duration
				sent    atomic.Int64 // UnixNano of the last emit
				pending atomic.Int64
				round   = make(chan struct{}, 1)
			)
			for range subscribers {
				sub, err := svc.Subscribe(ctx, benchUser, taskID, "1")
				if err != nil {
					b.Fatal(err)
				}
				wg.Go(func() {
					defer sub.Close()
					var mine []time.Duration
					defer func() {
						mu.Lock()
						lat = append(lat, mine...)
						mu.Unlock()
					}()
					for {
						if _, err := sub.Next(ctx); err != nil {
							return
						}
						mine = append(mine, time.Duration(time.Now().UnixNano()-sent.Load()))
						if pending.Add(-1) == 0 {
							round <- struct{}{}
						}
					}
				})
			}
			b.ResetTimer()
			for range b.N {
				pending.Store(subscribers)
				sent.Store(time.Now().UnixNano())
				if _, err := em.Emit(ctx, benchPayload); err != nil {
					b.Fatal(err)
				}
				select {
				case <-round:
				case <-time.After(30 * time.Second):
					b.Fatalf("deliveries missing: %d", pending.Load())
				}
			}
			b.StopTimer()
			cancel()
			wg.Wait()
			reportLatency(b, lat)
			b.ReportMetric(float64(b.N*subscribers)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkLongPollWake measures how long a long poll waiting for the next
// event takes to return after the event is emitted by another handle on
// the store (for PostgreSQL, another pool and listener, as another
// replica's executor would).
func BenchmarkLongPollWake(b *testing.B) {
	for name, open := range stores(b) {
		b.Run("store="+name, func(b *testing.B) {
			s := open(b)
			svc, taskID, em := benchService(b, s)
			if pg, ok := s.(*pgstore.Store); ok {
				other, err := pgstore.New(pgtest.Pool(b, pgtest.URL(b), 2), pgstore.Config{Schema: pg.Schema()})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = other.Close() })
				esvc, err := taskbridge.New(taskbridge.Config{Store: other, Executor: nopExecutor{}})
				if err != nil {
					b.Fatal(err)
				}
				em = esvc.Emitter(taskID)
			}
			ctx := b.Context()
			var lat []time.Duration
			after := int64(1)
			for b.Loop() {
				done := make(chan time.Time, 1)
				go func() {
					resp, err := svc.PollEvents(ctx, benchUser, taskID, taskbridge.PollRequest{
						AfterEventID: taskbridge.FormatEventID(after), WaitTimeout: 10 * time.Second})
					if err != nil || len(resp.Events) != 1 {
						b.Error(len(resp.Events), err)
					}
					done <- time.Now()
				}()
				// Let the poll find nothing and wait (a measurement, not a
				// synchronisation: an early emit only shortens this sample).
				time.Sleep(20 * time.Millisecond)
				start := time.Now()
				if _, err := em.Emit(ctx, benchPayload); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, (<-done).Sub(start))
				after++
			}
			reportLatency(b, lat)
		})
	}
}

// BenchmarkReplay measures a replay of 10,000 events: Read in pages of 500
// (the largest poll), and a subscription from the start drained through
// Subscription.Next (SSE and WebSocket replays).
func BenchmarkReplay(b *testing.B) {
	const events = 10_000
	for name, open := range stores(b) {
		b.Run("store="+name, func(b *testing.B) {
			s := open(b)
			svc, taskID, _ := benchService(b, s)
			ctx := b.Context()
			for i := range events - 1 {
				ev := storetest.NewEvent(taskID, taskbridge.MessagePayload{Message: fmt.Sprint("message ", i)}, storetest.BaseTime)
				if _, err := s.Append(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
			b.Run("Read500", func(b *testing.B) {
				for b.Loop() {
					n, after := 0, int64(0)
					for {
						evs, err := s.Read(ctx, taskID, after, 500)
						if err != nil {
							b.Fatal(err)
						}
						if len(evs) == 0 {
							break
						}
						n += len(evs)
						after = evs[len(evs)-1].Seq
					}
					if n != events {
						b.Fatal(n)
					}
				}
			})
			b.Run("Subscription", func(b *testing.B) {
				for b.Loop() {
					sub, err := svc.Subscribe(ctx, benchUser, taskID, "")
					if err != nil {
						b.Fatal(err)
					}
					for range events {
						if _, err := sub.Next(ctx); err != nil {
							b.Fatal(err)
						}
					}
					sub.Close()
				}
			})
		})
	}
}
