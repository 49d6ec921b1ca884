package goroutinetest_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/goroutinetest"
)

//go:noinline
func parkedHere(ch chan struct{}, done chan uint64) {
	done <- goroutinetest.ID()
	<-ch
}

//go:noinline
func parkedBelow(ch chan struct{}, done chan uint64) {
	parkedHere(ch, done)
}

// Find finds goroutines by a function on their stack; WaitsIn tells the
// one parked in that function itself from one parked in a call it makes.
func TestFind(t *testing.T) {
	ch := make(chan struct{})
	defer close(ch)
	done := make(chan uint64, 2)
	go parkedHere(ch, done)
	go parkedBelow(ch, done)
	ids := map[uint64]bool{<-done: true, <-done: true}

	var found []goroutinetest.Goroutine
	require.Eventually(t, func() bool {
		found = goroutinetest.Find("goroutinetest_test.parkedHere")
		return len(found) == 2 && found[0].State == "chan receive" && found[1].State == "chan receive"
	}, 5*time.Second, time.Millisecond)
	for _, g := range found {
		require.True(t, ids[g.ID], "goroutine %d", g.ID)
		require.True(t, g.WaitsIn("goroutinetest_test.parkedHere", "chan receive"), "%+v", g)
		require.False(t, g.WaitsIn("goroutinetest_test.parkedBelow", "chan receive"), "%+v", g)
		require.False(t, g.WaitsIn("goroutinetest_test.parkedHere", "select"), "%+v", g)
	}
	below := goroutinetest.Find("goroutinetest_test.parkedBelow")
	require.Len(t, below, 1)
	require.Contains(t, below[0].Funcs, "github.com/taskbridge-go/taskbridge/internal/goroutinetest_test.parkedHere")
	require.Empty(t, goroutinetest.Find("no such function"))
}
