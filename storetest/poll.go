package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
)

// idleExecutor accepts tasks and never runs them: the poll checks append
// their events themselves.
type idleExecutor struct{}

var _ taskbridge.TaskExecutor = idleExecutor{}

func (idleExecutor) Submit(context.Context, taskbridge.Task, taskbridge.Emitter) error { return nil }
func (idleExecutor) Cancel(context.Context, taskbridge.Task) error                     { return nil }

// testPoll checks the service's long poll over the store: it shares the
// fan-out path of every store, so a store that breaks it (a Read or Watch
// that answers wrong at the end of a log) is caught here.
func testPoll(t *testing.T, h Harness) {
	newService := func(f *fixture) *taskbridge.Service {
		svc, err := taskbridge.New(taskbridge.Config{Store: f.s, Executor: idleExecutor{}, Logger: discard()})
		require.NoError(t, err)
		f.t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			require.NoError(f.t, svc.Shutdown(ctx))
		})
		return svc
	}
	alice := taskbridge.AuthContext{Subject: "alice"}

	t.Run("AtTerminalCursorWaits", func(t *testing.T) {
		f := setup(t, h)
		svc := newService(f)
		f.started("task-1")
		f.append("task-1", taskbridge.CompletedPayload{Result: "done"})

		// The Android SDK's resume request, with a shorter wait.
		const wait = 300 * time.Millisecond
		start := time.Now()
		resp, err := svc.PollEvents(f.ctx, alice, "task-1", taskbridge.PollRequest{AfterEventID: "2", MaxEvents: 100, WaitTimeout: wait})
		require.NoError(t, err)
		require.GreaterOrEqual(t, time.Since(start), wait, "a poll at the end of a finished task waits its timeout")
		require.Empty(t, resp.Events)
		require.Equal(t, "2", *resp.NextAfterEventID)

		resp, err = svc.PollEvents(f.ctx, alice, "task-1", taskbridge.PollRequest{AfterEventID: "1", MaxEvents: 100, WaitTimeout: time.Minute})
		require.NoError(t, err)
		require.Len(t, resp.Events, 1, "the terminal event is answered at once")
		require.Equal(t, "2", resp.Events[0].EventID)
	})

	t.Run("AtTerminalCursorEndsAtShutdown", func(t *testing.T) {
		f := setup(t, h)
		svc := newService(f)
		f.started("task-1")
		f.append("task-1", taskbridge.CompletedPayload{Result: "done"})
		done := make(chan error, 1)
		go func() {
			_, err := svc.PollEvents(context.Background(), alice, "task-1",
				taskbridge.PollRequest{AfterEventID: "2", MaxEvents: 100, WaitTimeout: taskbridge.MaxWaitTimeout})
			done <- err
		}()
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		require.NoError(t, svc.Shutdown(ctx))
		select {
		case err := <-done:
			requireErrorIs(t, err, taskbridge.ErrClosed)
		case <-ctx.Done():
			t.Fatal("the poll outlived shutdown")
		}
	})

	t.Run("WokenByAppend", func(t *testing.T) {
		f := setup(t, h)
		svc := newService(f)
		f.started("task-1")
		done := make(chan taskbridge.PollResponse, 1)
		go func() {
			resp, err := svc.PollEvents(context.Background(), alice, "task-1",
				taskbridge.PollRequest{AfterEventID: "1", MaxEvents: 100, WaitTimeout: taskbridge.MaxWaitTimeout})
			if err != nil {
				resp.TaskID = err.Error()
			}
			done <- resp
		}()
		// Whether the poll is already waiting or not, it answers event 2.
		f.append("task-1", taskbridge.CompletedPayload{Result: "done"})
		select {
		case resp := <-done:
			require.Equal(t, "task-1", resp.TaskID)
			require.Len(t, resp.Events, 1)
			require.Equal(t, "2", resp.Events[0].EventID)
		case <-time.After(waitTimeout):
			t.Fatal("the long poll was not woken by the append")
		}
	})
}
