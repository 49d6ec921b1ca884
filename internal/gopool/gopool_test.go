package gopool_test

import (
	"bytes"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskbridge-go/taskbridge/internal/gopool"
	"github.com/taskbridge-go/taskbridge/internal/goroutinetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// gone waits until the goroutine id has exited.
func gone(t *testing.T, id uint64) {
	t.Helper()
	require.Eventually(t, func() bool { return goroutinetest.Alive(id) == 0 }, 5*time.Second, time.Millisecond,
		"goroutine %d has not exited", id)
}

// waiting waits until n goroutines of p wait: a Run returns as soon as its
// call is done, and the goroutine joins the waiting ones a moment later.
func waiting(t *testing.T, p *gopool.Pool, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return p.Waiting() == n }, 5*time.Second, time.Millisecond,
		"want %d waiting goroutines", n)
}

// Run runs each call on another goroutine and waits for it, raises its
// panics in the caller, returns when the call exits its goroutine, and
// runs call after call on the goroutine that finished the last one;
// Release ends it, and the next call starts another.
func TestRun(t *testing.T) {
	var p gopool.Pool
	t.Cleanup(p.Release) // a failure leaves no goroutine for the next test to count
	caller := goroutinetest.ID()
	var first, second uint64
	p.Run(func() { first = goroutinetest.ID() })
	require.NotZero(t, first, "Run returned before f finished")
	require.NotEqual(t, caller, first)
	waiting(t, &p, 1)
	p.Run(func() { second = goroutinetest.ID() })
	require.Equal(t, first, second, "the goroutine that ran the last call runs the next")

	waiting(t, &p, 1)
	require.PanicsWithValue(t, "boom", func() { p.Run(func() { panic("boom") }) })
	waiting(t, &p, 1)
	require.PanicsWithValue(t, http.ErrAbortHandler, func() { p.Run(func() { panic(http.ErrAbortHandler) }) })
	var third uint64
	waiting(t, &p, 1)
	p.Run(func() { third = goroutinetest.ID() })
	require.Equal(t, first, third, "a call's panic does not end its goroutine")

	waiting(t, &p, 1)
	p.Run(func() { runtime.Goexit() }) // returns, as offstack.Run does
	gone(t, first)
	var fourth uint64
	p.Run(func() { fourth = goroutinetest.ID() })
	require.NotEqual(t, first, fourth, "the goroutine that exited is replaced")

	p.Release()
	gone(t, fourth)
	require.Zero(t, p.Waiting())
	var fifth uint64
	p.Run(func() { fifth = goroutinetest.ID() })
	require.NotEqual(t, fourth, fifth)
	waiting(t, &p, 1)
	p.Release()
	gone(t, fifth)
}

// Go returns at once and runs its function on a waiting goroutine, which
// Group counts; after Close, goroutines run what they are given and exit.
func TestGo(t *testing.T) {
	var wg sync.WaitGroup
	p := gopool.Pool{Group: &wg}
	ran := make(chan uint64)
	p.Go(funcJob(func() { ran <- goroutinetest.ID() }))
	first := <-ran
	require.Eventually(t, func() bool { return p.Waiting() == 1 }, 5*time.Second, time.Millisecond)
	p.Go(funcJob(func() { ran <- goroutinetest.ID() }))
	require.Equal(t, first, <-ran, "the waiting goroutine runs the next function")

	require.Eventually(t, func() bool { return p.Waiting() == 1 }, 5*time.Second, time.Millisecond)
	p.Close()
	wg.Wait() // the Group saw the goroutine exit
	p.Go(funcJob(func() { ran <- goroutinetest.ID() }))
	late := <-ran
	wg.Wait() // after Close, it exits once done
	require.NotEqual(t, first, late)
	require.Zero(t, p.Waiting())
}

// Calls that overlap run on goroutines of their own; when they are done, at
// most MaxIdle of those goroutines wait.
func TestMaxIdle(t *testing.T) {
	for _, max := range []int{0, 3} {
		var wg sync.WaitGroup
		p := gopool.Pool{MaxIdle: max, Group: &wg}
		want := max
		if want == 0 {
			want = gopool.DefaultMaxIdle
		}
		var started, calls sync.WaitGroup
		gate := make(chan struct{})
		const n = 40
		started.Add(n)
		for range n {
			calls.Go(func() { p.Run(func() { started.Done(); <-gate }) })
		}
		started.Wait()
		close(gate)
		calls.Wait()
		require.Eventually(t, func() bool { return bytes.Count(goroutinetest.All(), []byte("gopool.(*Pool).serve")) == want }, 5*time.Second, time.Millisecond,
			"%d of the %d goroutines wait, the others exit", want, n)
		require.Equal(t, want, p.Waiting())
		p.Release()
		wg.Wait()
	}
}

type funcJob func()

func (f funcJob) Run() { f() }

// Run returns when its own function has run. A worker used to report a
// call done on a buffered channel and wait for the next call at once, so a
// second caller could take it and receive the first call's report before
// the first caller did: its Run returned before its function ran (a
// hijacked SSE stream's first step "finished" without writing, and the
// stream ended at once). The second caller here starts as the first call
// ends.
func TestRunWaitsForItsOwnCall(t *testing.T) {
	var p gopool.Pool
	defer p.Release()
	for range 5000 {
		var ran atomic.Bool
		var wg sync.WaitGroup
		p.Run(func() {
			wg.Go(func() {
				p.Run(func() { ran.Store(true) })
				if !ran.Load() {
					t.Error("Run returned before its function ran")
				}
			})
		})
		wg.Wait()
		if t.Failed() {
			return
		}
	}
}
