package offstack_test

import (
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/offstack"
)

func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _, _ := strings.Cut(string(buf), " [")
	return id
}

func TestRunUsesAnotherGoroutineAndWaits(t *testing.T) {
	caller := goroutineID()
	var inside string
	offstack.Run(func() { inside = goroutineID() })
	require.NotEmpty(t, inside, "Run returned before f finished")
	require.NotEqual(t, caller, inside)
}

func TestRunRaisesPanicsInTheCaller(t *testing.T) {
	require.PanicsWithValue(t, "boom", func() { offstack.Run(func() { panic("boom") }) })
	require.PanicsWithValue(t, http.ErrAbortHandler, func() { offstack.Run(func() { panic(http.ErrAbortHandler) }) })
}

// A Pool runs each call on another goroutine and waits for it, raises its
// panics in the caller, and runs call after call on the goroutine that
// finished the last one; Release ends it, and the next call starts another.
func TestPool(t *testing.T) {
	var p offstack.Pool
	caller := goroutineID()
	var first, second string
	p.Run(func() { first = goroutineID() })
	require.NotEmpty(t, first, "Run returned before f finished")
	require.NotEqual(t, caller, first)
	p.Run(func() { second = goroutineID() })
	require.Equal(t, first, second, "the goroutine that ran the last call runs the next")

	require.PanicsWithValue(t, "boom", func() { p.Run(func() { panic("boom") }) })
	var third string
	p.Run(func() { third = goroutineID() })
	require.Equal(t, first, third, "a call's panic does not end its goroutine")

	p.Run(func() { runtime.Goexit() }) // returns, as Run does
	var fourth string
	p.Run(func() { fourth = goroutineID() })
	require.NotEqual(t, first, fourth, "the goroutine that exited is replaced")

	p.Release()
	require.Eventually(t, func() bool { return !strings.Contains(allStacks(), fourth+" [") }, 5*time.Second, time.Millisecond,
		"Release ends the waiting goroutine")
	var fifth string
	p.Run(func() { fifth = goroutineID() })
	require.NotEqual(t, fourth, fifth)
	p.Release()
}

// Calls that overlap run on goroutines of their own; when they are done,
// at most 16 of those goroutines wait.
func TestPoolKeepsSixteen(t *testing.T) {
	var p offstack.Pool
	defer p.Release()
	var started, release sync.WaitGroup
	gate := make(chan struct{})
	const calls = 40
	started.Add(calls)
	for range calls {
		release.Go(func() { p.Run(func() { started.Done(); <-gate }) })
	}
	started.Wait()
	close(gate)
	release.Wait()
	require.Eventually(t, func() bool { return strings.Count(allStacks(), "offstack.(*Pool).serve") == 16 }, 5*time.Second, time.Millisecond,
		"16 of the 40 workers wait, the others exit")
}

func allStacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}
