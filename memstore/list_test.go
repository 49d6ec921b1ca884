package memstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/storetest"
)

// TestListTasksDoesNotScan checks that a page of an owner's tasks costs the
// page, not the owner's or the store's task count: listing the newest task
// of an owner with 10,000 tasks allocates as much as listing one task.
// (Allocations, unlike time, are deterministic; docs/BENCHMARKS.md has the
// timings.) Not parallel: testing.AllocsPerRun refuses parallel tests.
func TestListTasksDoesNotScan(t *testing.T) {
	s := newStore(t, memstore.Config{})
	for i := range 10_000 {
		id := fmt.Sprint("task-", i)
		_, _, err := s.CreateTask(t.Context(), storetest.NewTask(id, "alice", id, storetest.BaseTime.Add(time.Duration(i)*time.Millisecond)))
		require.NoError(t, err)
	}
	for _, q := range []taskbridge.TaskQuery{
		{OwnerID: "alice", Limit: 1},
		{OwnerID: "alice", Limit: 1, Before: &taskbridge.TaskPosition{CreatedAt: storetest.BaseTime.Add(5 * time.Second), ID: "task-5000"}},
	} {
		var tasks []taskbridge.Task
		allocs := testing.AllocsPerRun(20, func() {
			var err error
			tasks, err = s.ListTasks(t.Context(), q)
			require.NoError(t, err)
		})
		require.Len(t, tasks, 1)
		require.LessOrEqual(t, allocs, 6.0, "listing one task allocates like one task, whatever the owner's count")
	}
}
