package streamtest

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// Fanout drives a fan-out benchmark: M clients of one task each count the
// events they receive while the benchmark emits b.N events; the timer covers
// the emits until every client has received the last one. Create it with
// [NewFanout], start each client with Client, then call Run.
type Fanout struct {
	b    *testing.B
	env  *Env
	task string

	counts    []int
	ready     chan struct{}
	delivered sync.WaitGroup
	done      sync.WaitGroup
}

// NewFanout creates a started task for m clients.
func NewFanout(b *testing.B, env *Env, m int) *Fanout {
	f := &Fanout{b: b, env: env, task: env.CreateTask(b, "alice"), counts: make([]int, m), ready: make(chan struct{}, m)}
	env.Started(b, f.task)
	f.delivered.Add(m)
	return f
}

// Task is the task the clients subscribe to, as "alice".
func (f *Fanout) Task() string { return f.task }

// Client runs client i in a goroutine: next blocks for the next message and
// reports whether it was an event; an error ends the client. The first
// event is TASK_STARTED, the last the terminal event sent after Run's.
func (f *Fanout) Client(i int, next func() (event bool, err error)) {
	last := f.b.N + 1 // TASK_STARTED and b.N events
	f.done.Add(1)
	go func() {
		defer f.done.Done()
		for {
			event, err := next()
			if err != nil {
				return
			}
			if !event {
				continue
			}
			f.counts[i]++
			switch f.counts[i] {
			case 1:
				f.ready <- struct{}{}
			case last:
				f.delivered.Done()
			}
		}
	}()
}

// Run emits b.N events, stops the timer when every client has them, ends
// the task, waits for the clients and reports deliveries per second.
func (f *Fanout) Run() {
	b := f.b
	for range f.counts {
		<-f.ready
	}
	b.ResetTimer()
	for i := range b.N {
		f.env.Progress(b, f.task, float64(i%100)/100)
	}
	f.delivered.Wait()
	b.StopTimer()
	f.env.Complete(b, f.task)
	f.done.Wait()
	for _, n := range f.counts {
		require.Equal(b, b.N+2, n) // TASK_STARTED, b.N events, terminal event
	}
	b.ReportMetric(float64(b.N*len(f.counts))/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(0, "ns/op")
}
