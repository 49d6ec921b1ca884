package taskbridge_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
)

// TestIDsMustBeUTF8 checks that the service refuses client ids that are not
// UTF-8 text, whatever transport (or Go caller) passes them.
func TestIDsMustBeUTF8(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	_, err := e.svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: "a\xff", TaskType: "t\xfe"})
	var verr *taskbridge.ValidationError
	require.True(t, errors.As(err, &verr), "%v", err)
	require.Equal(t, []taskbridge.FieldError{
		{Field: "clientRequestId", Message: "must be UTF-8 text"},
		{Field: "taskType", Message: "must be UTF-8 text"},
	}, verr.Fields)

	id := e.started(t, alice, "req-1")
	_, err = e.svc.SubmitAction(ctx, alice, id, taskbridge.ActionRequest{ClientActionID: "a\xff", SuspendID: "s", ActionType: "approve"})
	require.True(t, errors.As(err, &verr), "%v", err)
	require.Equal(t, []taskbridge.FieldError{{Field: "clientActionId", Message: "must be UTF-8 text"}}, verr.Fields)
}
