package offstack_test

import (
	"net/http"
	"runtime"
	"strings"
	"testing"

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
