package httpapi_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
)

// TestErrorResponsesAreBounded sends requests with very many or very long
// invalid values: the answers list a bounded number of clipped field errors.
func TestErrorResponsesAreBounded(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.createTask("req-1")

	list := e.alice.get("/api/v1/tasks?status=" + strings.Repeat("x,", 200_000))
	require.Less(t, len(list.Body), 8<<10, "a 400 KB status list")
	require.Len(t, list.fieldErrors(), taskbridge.MaxFieldErrors)
	var env struct {
		Details struct {
			ErrorCount int `json:"errorCount"`
		} `json:"details"`
	}
	list.decode(&env)
	require.Equal(t, 200_000, env.Details.ErrorCount)

	var b strings.Builder
	b.WriteString(`{"clientActionId":"a","suspendId":"s","actionType":"approve"`)
	for i := range 90_000 {
		fmt.Fprintf(&b, `,"u%d":0`, i)
	}
	b.WriteString("}")
	action := e.alice.postRaw("/api/v1/tasks/"+id+"/actions", b.String())
	require.Less(t, len(action.Body), 8<<10, "90,000 unknown members")
	require.Len(t, action.fieldErrors(), taskbridge.MaxFieldErrors)

	long, err := json.Marshal(map[string]any{strings.Repeat("k", 500_000): 1})
	require.NoError(t, err)
	action = e.alice.postRaw("/api/v1/tasks/"+id+"/actions", string(long))
	require.Less(t, len(action.Body), 8<<10, "a 500 KB member name")
	require.Contains(t, action.fieldErrors(), "clientActionId")
}
