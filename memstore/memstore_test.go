package memstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/storetest"
)

// setup returns a store with a started task "task-1" (TASK_STARTED at Seq 1).
func setup(t *testing.T, cfg memstore.Config) *memstore.Store {
	t.Helper()
	s := newStore(t, cfg)
	_, _, err := s.CreateTask(t.Context(), storetest.NewTask("task-1", "alice", "req-1", storetest.BaseTime))
	require.NoError(t, err)
	appendN(t, s, "task-1", taskbridge.StartedPayload{}, 1)
	return s
}

func appendN(t *testing.T, s *memstore.Store, taskID string, p taskbridge.Payload, n int) {
	t.Helper()
	for range n {
		_, err := s.Append(t.Context(), storetest.NewEvent(taskID, p, storetest.BaseTime))
		require.NoError(t, err)
	}
}

func seqs(evs []taskbridge.TaskEvent) []int64 {
	out := make([]int64, len(evs))
	for i, ev := range evs {
		out[i] = ev.Seq
	}
	return out
}

func TestMaxEventsPerTask(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := setup(t, memstore.Config{MaxEventsPerTask: 5})
	appendN(t, s, "task-1", taskbridge.MessagePayload{Message: "m"}, 9) // Seq 2..10

	evs, err := s.Read(ctx, "task-1", 0, 100)
	require.NoError(t, err)
	require.Equal(t, []int64{6, 7, 8, 9, 10}, seqs(evs), "only the newest 5 are kept")
	evs, err = s.Read(ctx, "task-1", 5, 100)
	require.NoError(t, err)
	require.Equal(t, []int64{6, 7, 8, 9, 10}, seqs(evs))
	_, err = s.Read(ctx, "task-1", 4, 100)
	require.ErrorIs(t, err, taskbridge.ErrEventsExpired)
	evs, err = s.Read(ctx, "task-1", 10, 100)
	require.NoError(t, err)
	require.Empty(t, evs)

	// Suspension events count towards the cap too.
	sus, ev := storetest.NewSuspension("task-1", "s-1", nil, storetest.BaseTime)
	_, ev, err = s.OpenSuspension(ctx, sus, ev)
	require.NoError(t, err)
	require.Equal(t, int64(11), ev.Seq)
	res, err := s.AcceptAction(ctx, storetest.NewAttempt("task-1", "s-1", "a-1", "fp", storetest.BaseTime))
	require.NoError(t, err)
	require.Equal(t, int64(12), res.Event.Seq)
	evs, err = s.Read(ctx, "task-1", 0, 100)
	require.NoError(t, err)
	require.Equal(t, []int64{8, 9, 10, 11, 12}, seqs(evs))
	_, err = s.Read(ctx, "task-1", 6, 100)
	require.ErrorIs(t, err, taskbridge.ErrEventsExpired)

	task, err := s.GetTask(ctx, "task-1")
	require.NoError(t, err)
	require.Equal(t, int64(12), task.LastSeq)
}

func TestTrimEvents(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := setup(t, memstore.Config{})
	appendN(t, s, "task-1", taskbridge.MessagePayload{Message: "m"}, 4) // Seq 2..5

	require.ErrorIs(t, s.TrimEvents("task-1", -1), taskbridge.ErrInvalidRequest)
	require.ErrorIs(t, s.TrimEvents("nope", 1), taskbridge.ErrTaskNotFound)
	require.NoError(t, s.TrimEvents("task-1", 10), "keeping more than exists changes nothing")
	evs, err := s.Read(ctx, "task-1", 0, 100)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3, 4, 5}, seqs(evs))

	require.NoError(t, s.TrimEvents("task-1", 0))
	evs, err = s.Read(ctx, "task-1", 0, 100)
	require.NoError(t, err)
	require.Empty(t, evs, "everything was trimmed")
	evs, err = s.Read(ctx, "task-1", 5, 100)
	require.NoError(t, err)
	require.Empty(t, evs, "the last position stays a valid cursor")
	_, err = s.Read(ctx, "task-1", 4, 100)
	require.ErrorIs(t, err, taskbridge.ErrEventsExpired)

	appendN(t, s, "task-1", taskbridge.MessagePayload{Message: "m"}, 1)
	evs, err = s.Read(ctx, "task-1", 0, 100)
	require.NoError(t, err)
	require.Equal(t, []int64{6}, seqs(evs))
}

func TestInvalidArguments(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := setup(t, memstore.Config{})
	_, err := s.Read(ctx, "task-1", 0, 0)
	require.ErrorIs(t, err, taskbridge.ErrInvalidRequest)
	_, err = s.ListTasks(ctx, taskbridge.TaskQuery{})
	require.ErrorIs(t, err, taskbridge.ErrInvalidRequest)
	_, err = s.ExpireSuspensions(ctx, storetest.BaseTime, 0)
	require.ErrorIs(t, err, taskbridge.ErrInvalidRequest)
	_, err = s.ListPendingResumes(ctx, -1)
	require.ErrorIs(t, err, taskbridge.ErrInvalidRequest)
	_, err = s.DeleteReceipts(ctx, storetest.BaseTime, 0)
	require.ErrorIs(t, err, taskbridge.ErrInvalidRequest)
	_, err = s.DeleteTerminalTasks(ctx, storetest.BaseTime, 0)
	require.ErrorIs(t, err, taskbridge.ErrInvalidRequest)

	_, _, err = s.CreateTask(ctx, storetest.NewTask("", "alice", "req-x", storetest.BaseTime))
	require.ErrorIs(t, err, taskbridge.ErrInvalidRequest, "an empty task id")
	_, _, err = s.CreateTask(ctx, storetest.NewTask("task-1", "bob", "req-x", storetest.BaseTime))
	require.ErrorIs(t, err, taskbridge.ErrInvalidRequest, "a task id used by another key")

	sus, ev := storetest.NewSuspension("task-1", "s-1", nil, storetest.BaseTime)
	sus.SuspendID = ""
	_, _, err = s.OpenSuspension(ctx, sus, ev)
	require.ErrorIs(t, err, taskbridge.ErrInvalidRequest, "an empty suspendId")
	sus, ev = storetest.NewSuspension("task-1", "s-1", nil, storetest.BaseTime)
	ev.TaskID = "other"
	_, _, err = s.OpenSuspension(ctx, sus, ev)
	require.ErrorIs(t, err, taskbridge.ErrInvalidEvent, "an event of another task")

	a := storetest.NewAttempt("task-1", "s-1", "a-1", "fp", storetest.BaseTime)
	a.Receipt.ClientActionID = ""
	_, err = s.AcceptAction(ctx, a)
	require.ErrorIs(t, err, taskbridge.ErrInvalidRequest, "an empty clientActionId")
}

func TestCreateTaskNormalisesStatus(t *testing.T) {
	t.Parallel()
	s := newStore(t, memstore.Config{})
	in := storetest.NewTask("task-1", "alice", "req-1", storetest.BaseTime)
	in.Status, in.LastSeq = taskbridge.StatusRunning, 7
	got, created, err := s.CreateTask(t.Context(), in)
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, taskbridge.StatusAccepted, got.Status)
	require.Zero(t, got.LastSeq)
}

func TestClose(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := setup(t, memstore.Config{})
	require.NoError(t, s.CheckReady(ctx))

	var calls atomic.Int64
	stop := s.Watch("task-1", func() { calls.Add(1) })
	require.NoError(t, s.Close())
	require.Equal(t, int64(1), calls.Load(), "Close wakes every watcher once")
	require.NoError(t, s.Close(), "Close is idempotent")
	stop()
	stop()

	require.ErrorIs(t, s.CheckReady(ctx), taskbridge.ErrClosed)
	after := s.Watch("task-1", func() { calls.Add(1) })
	require.NotNil(t, after)
	after()
	after()

	now := storetest.BaseTime
	ev := storetest.NewEvent("task-1", taskbridge.MessagePayload{Message: "m"}, now)
	sus, sev := storetest.NewSuspension("task-1", "s-1", nil, now)
	calls2 := map[string]func() error{
		"CreateTask": func() error {
			_, _, err := s.CreateTask(ctx, storetest.NewTask("task-2", "alice", "req-2", now))
			return err
		},
		"GetTask":   func() error { _, err := s.GetTask(ctx, "task-1"); return err },
		"ListTasks": func() error { _, err := s.ListTasks(ctx, taskbridge.TaskQuery{Limit: 1}); return err },
		"RequestCancel": func() error {
			_, _, err := s.RequestCancel(ctx, "task-1", "r", now)
			return err
		},
		"DeleteTerminalTasks": func() error { _, err := s.DeleteTerminalTasks(ctx, now, 1); return err },
		"Append":              func() error { _, err := s.Append(ctx, ev); return err },
		"Read":                func() error { _, err := s.Read(ctx, "task-1", 0, 1); return err },
		"OpenSuspension": func() error {
			_, _, err := s.OpenSuspension(ctx, sus, sev)
			return err
		},
		"GetSuspension":   func() error { _, err := s.GetSuspension(ctx, "task-1", "s-1"); return err },
		"ListSuspensions": func() error { _, err := s.ListSuspensions(ctx, "task-1"); return err },
		"AcceptAction": func() error {
			_, err := s.AcceptAction(ctx, storetest.NewAttempt("task-1", "s-1", "a-1", "fp", now))
			return err
		},
		"CloseSuspension": func() error {
			_, _, err := s.CloseSuspension(ctx, "task-1", "s-1", taskbridge.SuspensionCancelled, now)
			return err
		},
		"ExpireSuspensions":    func() error { _, err := s.ExpireSuspensions(ctx, now, 1); return err },
		"ListPendingResumes":   func() error { _, err := s.ListPendingResumes(ctx, 1); return err },
		"MarkResumeDispatched": func() error { return s.MarkResumeDispatched(ctx, "task-1", "s-1") },
		"GetReceipt":           func() error { _, err := s.GetReceipt(ctx, "task-1", "a-1"); return err },
		"DeleteReceipts":       func() error { _, err := s.DeleteReceipts(ctx, now, 1); return err },
		"TrimEvents":           func() error { return s.TrimEvents("task-1", 1) },
	}
	for name, call := range calls2 {
		require.ErrorIs(t, call(), taskbridge.ErrClosed, name)
	}
	require.Equal(t, int64(1), calls.Load(), "no watcher is called after Close")
}

func TestCloseWakesWaiters(t *testing.T) {
	t.Parallel()
	s := setup(t, memstore.Config{})
	errs := make(chan error, 1)
	waiting := make(chan struct{})
	go func(waiting chan struct{}) {
		wake := make(chan struct{}, 1)
		stop := s.Watch("task-1", func() {
			select {
			case wake <- struct{}{}:
			default:
			}
		})
		defer stop()
		for {
			evs, err := s.Read(context.Background(), "task-1", 1, 10)
			if err != nil || len(evs) > 0 {
				errs <- err
				return
			}
			if waiting != nil {
				close(waiting)
				waiting = nil
			}
			<-wake
		}
	}(waiting)
	<-waiting
	require.NoError(t, s.Close())
	require.ErrorIs(t, <-errs, taskbridge.ErrClosed, "a waiter woken by Close sees ErrClosed")
}

func TestReadPayloadsDoNotShareCapacity(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := setup(t, memstore.Config{})
	appendN(t, s, "task-1", taskbridge.MessagePayload{Message: "second"}, 1)
	evs, err := s.Read(ctx, "task-1", 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	second := string(evs[1].Payload)
	_ = append(evs[0].Payload, `,"garbage":true}`...)
	require.Equal(t, second, string(evs[1].Payload), "appending to one payload must not overwrite the next")
	again, err := s.Read(ctx, "task-1", 0, 10)
	require.NoError(t, err)
	require.JSONEq(t, second, string(again[1].Payload))
}

func TestNotifyIsSynchronousAndOutsideLocks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := setup(t, memstore.Config{})
	var seen []int64
	var mu sync.Mutex
	stop := s.Watch("task-1", func() {
		// The task's lock is released: reading from the callback works.
		task, err := s.GetTask(ctx, "task-1")
		if err == nil {
			mu.Lock()
			seen = append(seen, task.LastSeq)
			mu.Unlock()
		}
	})
	defer stop()
	appendN(t, s, "task-1", taskbridge.MessagePayload{Message: "m"}, 3)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []int64{2, 3, 4}, seen, "each append calls the watcher before returning")
}

// TestConcurrentMixedWorkload runs every kind of operation at once on
// shared tasks, for the race detector, and checks the logs stay gap-free.
func TestConcurrentMixedWorkload(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, memstore.Config{MaxEventsPerTask: 50})
	const tasks = 8
	for i := range tasks {
		id := fmt.Sprint("task-", i)
		_, _, err := s.CreateTask(ctx, storetest.NewTask(id, "alice", id, storetest.BaseTime.Add(time.Duration(i)*time.Second)))
		require.NoError(t, err)
		_, err = s.Append(ctx, storetest.NewEvent(id, taskbridge.StartedPayload{}, storetest.BaseTime))
		require.NoError(t, err)
	}
	errs := make(chan error, 64)
	var (
		wg       sync.WaitGroup
		appended atomic.Int64 // events appended by the writers
	)
	for w := range 4 {
		wg.Go(func() { // appenders and suspenders
			for i := range 200 {
				id := fmt.Sprint("task-", (w+i)%tasks)
				var err error
				if i%20 == 0 {
					sid := fmt.Sprintf("s-%d-%d", w, i)
					exp := storetest.BaseTime.Add(time.Duration(i) * time.Second)
					sus, ev := storetest.NewSuspension(id, sid, &exp, storetest.BaseTime)
					if _, _, err = s.OpenSuspension(ctx, sus, ev); err == nil {
						appended.Add(1)
						var res taskbridge.AcceptResult
						res, err = s.AcceptAction(ctx, storetest.NewAttempt(id, sid, sid, "fp", storetest.BaseTime))
						if res.Status == taskbridge.ActionAccepted {
							appended.Add(1)
						}
					}
				} else {
					_, err = s.Append(ctx, storetest.NewEvent(id, taskbridge.MessagePayload{Message: "m"}, storetest.BaseTime))
					appended.Add(1)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() { // readers and watchers
		for i := range 300 {
			id := fmt.Sprint("task-", i%tasks)
			s.Watch(id, func() {})()
			if _, err := s.Read(ctx, id, 0, 20); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() { // maintenance
		for i := range 50 {
			now := storetest.BaseTime.Add(time.Duration(i) * 10 * time.Second)
			if _, err := s.ListTasks(ctx, taskbridge.TaskQuery{Limit: 5}); err != nil {
				errs <- err
				return
			}
			if _, err := s.ExpireSuspensions(ctx, now, 10); err != nil {
				errs <- err
				return
			}
			pending, err := s.ListPendingResumes(ctx, 10)
			if err != nil {
				errs <- err
				return
			}
			for _, p := range pending {
				if err := s.MarkResumeDispatched(ctx, p.TaskID, p.SuspendID); err != nil {
					errs <- err
					return
				}
			}
			if _, err := s.DeleteReceipts(ctx, now, 10); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	total := int64(0)
	for i := range tasks {
		id := fmt.Sprint("task-", i)
		task, err := s.GetTask(ctx, id)
		require.NoError(t, err)
		total += task.LastSeq
		evs, err := s.Read(ctx, id, 0, 100)
		require.NoError(t, err)
		require.Len(t, evs, 50)
		for j, ev := range evs {
			require.Equal(t, task.LastSeq-49+int64(j), ev.Seq)
		}
	}
	require.Equal(t, tasks+appended.Load(), total, "every append is counted once in LastSeq")
	require.Greater(t, appended.Load(), int64(4*190))
}

func TestDeepCopiesNestedInteraction(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := setup(t, memstore.Config{})
	sus, ev := storetest.NewSuspension("task-1", "s-1", nil, storetest.BaseTime)
	sus.Interaction = map[string]any{
		"list":  []any{map[string]any{"k": "v"}},
		"strs":  []string{"a"},
		"smap":  map[string]string{"a": "b"},
		"raw":   json.RawMessage(`{"a":1}`),
		"plain": 1.5,
	}
	_, _, err := s.OpenSuspension(ctx, sus, ev)
	require.NoError(t, err)
	sus.Interaction["list"].([]any)[0].(map[string]any)["k"] = "changed"
	sus.Interaction["strs"].([]string)[0] = "changed"
	sus.Interaction["smap"].(map[string]string)["a"] = "changed"
	sus.Interaction["raw"].(json.RawMessage)[1] = 'X'
	got, err := s.GetSuspension(ctx, "task-1", "s-1")
	require.NoError(t, err)
	require.Equal(t, "v", got.Interaction["list"].([]any)[0].(map[string]any)["k"])
	require.Equal(t, []string{"a"}, got.Interaction["strs"])
	require.Equal(t, map[string]string{"a": "b"}, got.Interaction["smap"])
	require.Equal(t, json.RawMessage(`{"a":1}`), got.Interaction["raw"])
	require.Equal(t, 1.5, got.Interaction["plain"])
}

// TestWatchAfterLastWatcherLeft: an append reaches the watchers of a task
// whose earlier watchers all stopped (the set the appends used is dead and
// a new one took its place), and no longer reaches stopped ones.
func TestWatchAfterLastWatcherLeft(t *testing.T) {
	s := setup(t, memstore.Config{})
	var first, second, third atomic.Int32
	stop := s.Watch("task-1", func() { first.Add(1) })
	appendN(t, s, "task-1", taskbridge.ProgressPayload{Progress: 0.1}, 1)
	require.Equal(t, int32(1), first.Load())
	stop()
	appendN(t, s, "task-1", taskbridge.ProgressPayload{Progress: 0.2}, 1)
	require.Equal(t, int32(1), first.Load(), "a stopped watcher is not called")

	stop = s.Watch("task-1", func() { second.Add(1) })
	appendN(t, s, "task-1", taskbridge.ProgressPayload{Progress: 0.3}, 2)
	require.Equal(t, int32(2), second.Load())
	stop()
	stop = s.Watch("task-1", func() { third.Add(1) })
	defer stop()
	appendN(t, s, "task-1", taskbridge.ProgressPayload{Progress: 0.4}, 1)
	require.Equal(t, []int32{1, 2, 1}, []int32{first.Load(), second.Load(), third.Load()})
}
