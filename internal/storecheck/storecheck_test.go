package storecheck_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/storecheck"
)

func TestChecks(t *testing.T) {
	t.Parallel()
	valid := taskbridge.TaskEvent{Type: taskbridge.EventTaskMessage, TaskID: "t", CreatedAt: time.Unix(1, 0)}
	require.NoError(t, storecheck.Appendable(valid))
	for name, mutate := range map[string]func(*taskbridge.TaskEvent){
		"EventID":   func(e *taskbridge.TaskEvent) { e.EventID = "1" },
		"Seq":       func(e *taskbridge.TaskEvent) { e.Seq = 1 },
		"CreatedAt": func(e *taskbridge.TaskEvent) { e.CreatedAt = time.Time{} },
		"type":      func(e *taskbridge.TaskEvent) { e.Type = "NOPE" },
		"suspended": func(e *taskbridge.TaskEvent) { e.Type = taskbridge.EventTaskSuspended },
		"accepted":  func(e *taskbridge.TaskEvent) { e.Type = taskbridge.EventTaskActionAccepted },
	} {
		ev := valid
		mutate(&ev)
		require.ErrorIs(t, storecheck.Appendable(ev), taskbridge.ErrInvalidEvent, name)
	}

	susp := valid
	susp.Type = taskbridge.EventTaskSuspended
	require.NoError(t, storecheck.EventOf(susp, taskbridge.EventTaskSuspended, "t"))
	require.ErrorIs(t, storecheck.EventOf(susp, taskbridge.EventTaskActionAccepted, "t"), taskbridge.ErrInvalidEvent)
	require.ErrorIs(t, storecheck.EventOf(susp, taskbridge.EventTaskSuspended, "other"), taskbridge.ErrInvalidEvent)
	susp.Seq = 3
	require.ErrorIs(t, storecheck.EventOf(susp, taskbridge.EventTaskSuspended, "t"), taskbridge.ErrInvalidEvent)
}

func TestLimitAndLease(t *testing.T) {
	t.Parallel()
	require.NoError(t, storecheck.Limit(1))
	require.ErrorIs(t, storecheck.Limit(0), taskbridge.ErrInvalidRequest)
	require.ErrorIs(t, storecheck.Limit(-3), taskbridge.ErrInvalidRequest)
	require.NoError(t, storecheck.Lease("replica-a", time.Second))
	require.ErrorIs(t, storecheck.Lease("", time.Second), taskbridge.ErrInvalidRequest)
	require.ErrorIs(t, storecheck.Lease("replica-a", 0), taskbridge.ErrInvalidRequest)
	require.ErrorIs(t, storecheck.Lease("replica-a", -time.Second), taskbridge.ErrInvalidRequest)
}
