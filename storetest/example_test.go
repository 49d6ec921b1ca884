package storetest_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/storetest"
)

// This is how a store package runs the suite from one of its tests
// (func TestConformance(t *testing.T) { storetest.Run(t, harness) }):
// New returns a fresh store per subtest and registers its cleanup, and Trim,
// optional, applies retention so that expired cursors are checked.
func ExampleRun() {
	harness := storetest.Harness{
		New: func(t *testing.T) taskbridge.Store {
			s := memstore.New(memstore.Config{})
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
		Trim: func(t *testing.T, s taskbridge.Store, taskID string, keepLast int) {
			require.NoError(t, s.(*memstore.Store).TrimEvents(taskID, keepLast))
		},
	}
	_ = harness // storetest.Run(t, harness)
}

func ExampleNewEvent() {
	ev := storetest.NewEvent("task-1", taskbridge.ProgressPayload{Progress: 40, Stage: "upload"}, storetest.BaseTime)
	fmt.Println(ev.Type, ev.TaskID, ev.CreatedAt.Format("2006-01-02T15:04:05Z07:00"))
	fmt.Println(string(ev.Payload))
	fmt.Printf("%q %d\n", ev.EventID, ev.Seq) // assigned by the store on append
	// Output:
	// TASK_PROGRESS task-1 2030-01-02T03:04:05Z
	// {"progress":40,"stage":"upload"}
	// "" 0
}
