package offstack_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/goroutinetest"
	"github.com/taskbridge-go/taskbridge/internal/offstack"
)

func TestRunUsesAnotherGoroutineAndWaits(t *testing.T) {
	caller := goroutinetest.ID()
	var inside uint64
	offstack.Run(func() { inside = goroutinetest.ID() })
	require.NotZero(t, inside, "Run returned before f finished")
	require.NotEqual(t, caller, inside)
}

func TestRunRaisesPanicsInTheCaller(t *testing.T) {
	require.PanicsWithValue(t, "boom", func() { offstack.Run(func() { panic("boom") }) })
	require.PanicsWithValue(t, http.ErrAbortHandler, func() { offstack.Run(func() { panic(http.ErrAbortHandler) }) })
}
