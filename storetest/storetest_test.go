package storetest_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/storetest"
)

// TestRunSerialWithoutTrim runs the suite with the options the memstore
// conformance test does not use: Serial, and no Trim (the expired-cursor
// subtest is skipped).
func TestRunSerialWithoutTrim(t *testing.T) {
	if testing.Short() {
		t.Skip("the full suite runs in the memstore package")
	}
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) taskbridge.Store {
			s := memstore.New(memstore.Config{})
			t.Cleanup(func() { require.NoError(t, s.Close()) })
			return s
		},
		Serial: true,
	})
}

func TestConstructorsBuildValidValues(t *testing.T) {
	t.Parallel()
	task := storetest.NewTask("task-1", "alice", "req-1", storetest.BaseTime)
	require.True(t, taskbridge.ValidTaskID(task.ID))
	require.Equal(t, taskbridge.StatusAccepted, task.Status)
	require.JSONEq(t, `{"pages":3,"title":"task-1"}`, string(task.Input))
	require.Equal(t, task.CreatedAt, task.UpdatedAt)

	exp := storetest.BaseTime.Add(time.Hour)
	sus, ev := storetest.NewSuspension("task-1", "s-1", &exp, storetest.BaseTime)
	require.Equal(t, taskbridge.EventTaskSuspended, ev.Type)
	p, err := taskbridge.DecodePayload(ev)
	require.NoError(t, err, "the TASK_SUSPENDED payload passes the strict decoder")
	require.Equal(t, sus.SuspendedPayload.SuspendID, p.(taskbridge.SuspendedPayload).SuspendID)
	require.True(t, p.(taskbridge.SuspendedPayload).ExpiresAt.Equal(exp))
	require.Equal(t, taskbridge.SuspensionOpen, sus.Status)

	a := storetest.NewAttempt("task-1", "s-1", "a-1", "fp", storetest.BaseTime)
	p, err = taskbridge.DecodePayload(a.Event)
	require.NoError(t, err)
	require.Equal(t, "a-1", p.(taskbridge.ActionAcceptedPayload).ClientActionID)
	require.Equal(t, "a-1", a.Receipt.ClientActionID)
	require.Equal(t, storetest.BaseTime, a.Now)

	require.Panics(t, func() {
		storetest.NewEvent("task-1", taskbridge.ProgressPayload{Progress: 101}, storetest.BaseTime)
	}, "an invalid payload is a bug in the calling test")
}
