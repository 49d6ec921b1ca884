package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
)

// The stress section's check of expiry rejections, on the interleaving
// that failed it once against pgstore (seed 3): an action clocked after a
// suspension's deadline expires it, and an action clocked before the
// deadline, reaching the store afterwards, is rejected as expired too.
func TestUnexplainedExpiry(t *testing.T) {
	deadline := BaseTime.Add(time.Second)
	sp := taskbridge.Suspension{Status: taskbridge.SuspensionExpired}
	sp.SuspendID, sp.ExpiresAt = "s-1", &deadline
	rejected := taskbridge.AcceptResult{Status: taskbridge.ActionRejectedExpired}
	late := stressAction{actionID: "a-1", now: deadline.Add(time.Millisecond), res: rejected}
	early := stressAction{actionID: "a-2", now: deadline.Add(-time.Millisecond), res: rejected}

	require.Empty(t, unexplainedExpiry(sp, []stressAction{late, early}), "the late action expired it first")
	require.Empty(t, unexplainedExpiry(sp, []stressAction{early, late}), "recorded in either order")
	require.Empty(t, unexplainedExpiry(sp, []stressAction{late}))
	require.Contains(t, unexplainedExpiry(sp, []stressAction{early}), "action a-2 rejected as expired",
		"nothing at or after the deadline expired it")
	noDeadline := sp
	noDeadline.ExpiresAt = nil
	require.Contains(t, unexplainedExpiry(noDeadline, []stressAction{late}), "action a-1")
}
