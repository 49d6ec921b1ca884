package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
)

// testExtensions checks the optional store interfaces a store implements;
// the subtests of the others are skipped.
func testExtensions(t *testing.T, h Harness) {
	t.Run("LendEvents", func(t *testing.T) {
		if _, ok := h.New(t).(taskbridge.EventLender); !ok {
			t.Skip("the store does not implement the optional taskbridge.EventLender")
		}
		// Every read case, with LendEvents in Read's place.
		testReads(t, h, lent)

		f := setup(t, h)
		f.started("task-1")
		f.messages("task-1", 3)
		want, err := f.s.Read(f.ctx, "task-1", 1, 2)
		require.NoError(t, err)
		got, err := lent(f)(f.ctx, "task-1", 1, 2)
		require.NoError(t, err)
		require.Equal(t, want, got, "LendEvents lends the events Read returns")
		_, err = lent(f)(f.ctx, "task-1", 0, 0)
		requireErrorIs(t, err, taskbridge.ErrInvalidRequest, "a limit below 1")
	})

	t.Run("VettedAppender", func(t *testing.T) {
		f := setup(t, h)
		va, ok := f.s.(taskbridge.VettedAppender)
		if !ok {
			t.Skip("the store does not implement the optional taskbridge.VettedAppender")
		}
		_, lends := f.s.(taskbridge.EventLender)
		require.True(t, lends, "a VettedAppender vouches for the payloads it lends: it must be an EventLender")
		require.Equal(t, taskbridge.EventStore(f.s), va.VettedStore(), "VettedStore returns the store itself")
		f.started("task-1")

		// AppendVetted appends as Append does.
		vetted, err := va.AppendVetted(f.ctx, NewEvent("task-1", taskbridge.MessagePayload{Message: "vetted"}, f.tick()))
		require.NoError(t, err)
		require.Equal(t, int64(2), vetted.Seq)
		require.Equal(t, "2", vetted.EventID)

		// What Append and the suspension methods are given is checked:
		// invalid JSON is refused, the rest lent compact.
		spaced := func(ev taskbridge.TaskEvent) taskbridge.TaskEvent {
			var v any
			require.NoError(t, json.Unmarshal(ev.Payload, &v))
			b, err := json.MarshalIndent(v, " ", "\t")
			require.NoError(t, err)
			ev.Payload = b
			return ev
		}
		_, err = f.s.Append(f.ctx, spaced(NewEvent("task-1", taskbridge.ProgressPayload{Progress: 0.5, Stage: "a b"}, f.tick())))
		require.NoError(t, err)
		for _, bad := range []string{`{"a":`, `not json`, `{"a":1}}`, "{\"a\":\"\x01\"}"} {
			ev := NewEvent("task-1", taskbridge.MessagePayload{Message: "x"}, f.tick())
			ev.Payload = json.RawMessage(bad)
			_, err := f.s.Append(f.ctx, ev)
			requireErrorIs(t, err, taskbridge.ErrInvalidEvent, "payload %q", bad)
		}
		in, ev := NewSuspension("task-1", "s-1", nil, f.tick())
		_, _, err = f.s.OpenSuspension(f.ctx, in, spaced(ev))
		require.NoError(t, err)
		a := NewAttempt("task-1", "s-1", "a-1", "fp-a-1", f.tick())
		a.Event = spaced(a.Event)
		res, err := f.s.AcceptAction(f.ctx, a)
		require.NoError(t, err)
		require.Equal(t, taskbridge.ActionAccepted, res.Status)

		got, err := lent(f)(f.ctx, "task-1", 0, 100)
		require.NoError(t, err)
		require.Len(t, got, 5, "started, vetted, progress, suspended, accepted: nothing refused was appended")
		for _, ev := range got {
			var buf bytes.Buffer
			require.NoError(t, json.Compact(&buf, ev.Payload), "event %s: valid JSON", ev.EventID)
			require.Equal(t, buf.String(), string(ev.Payload), "event %s: lent compact", ev.EventID)
		}
		require.JSONEq(t, `{"progress":0.5,"stage":"a b"}`, string(got[2].Payload), "compacting keeps the value (and the space in the string)")
	})

	t.Run("GetTaskHead", func(t *testing.T) {
		f := setup(t, h)
		g, ok := f.s.(taskbridge.TaskHeadGetter)
		if !ok {
			t.Skip("the store does not implement the optional taskbridge.TaskHeadGetter")
		}
		in := NewTask("task-1", "alice", "req-1", BaseTime)
		in.Attachments = []taskbridge.Attachment{{Field: "file", Filename: "a.txt", ContentType: "text/plain", Size: 3, SHA256: "ab12", Ref: "uploads/a"}}
		f.createTask(in)
		f.append("task-1", taskbridge.StartedPayload{})
		_, _, err := f.s.RequestCancel(f.ctx, "task-1", "why", f.tick())
		require.NoError(t, err)

		head, err := g.GetTaskHead(f.ctx, "task-1")
		require.NoError(t, err)
		want := f.get("task-1")
		want.Input, want.Metadata, want.Attachments = nil, nil, nil
		requireTask(t, want, head, "the head is the task without its payload")
		require.Nil(t, head.Input)
		require.Nil(t, head.Metadata)
		require.Nil(t, head.Attachments)

		_, err = g.GetTaskHead(f.ctx, "nope")
		requireErrorIs(t, err, taskbridge.ErrTaskNotFound)
	})

	t.Run("PruneTerminalTasks", func(t *testing.T) {
		f := setup(t, h)
		p, ok := f.s.(taskbridge.TerminalTaskPruner)
		if !ok {
			t.Skip("the store does not implement the optional taskbridge.TerminalTaskPruner")
		}
		cutoff := BaseTime.Add(time.Hour)
		withFiles := func(id string, refs ...string) taskbridge.Task {
			in := NewTask(id, "alice", "req-"+id, f.tick())
			for _, ref := range refs {
				in.Attachments = append(in.Attachments, taskbridge.Attachment{Field: "attachments", Filename: ref, Size: 1, SHA256: "00", Ref: ref})
			}
			f.createTask(in)
			f.append(id, taskbridge.StartedPayload{})
			return in
		}
		end := func(id string, at time.Time) {
			_, err := f.s.Append(f.ctx, NewEvent(id, taskbridge.CompletedPayload{Result: id}, at))
			require.NoError(t, err)
		}
		want := map[string]taskbridge.Task{}
		for _, in := range []taskbridge.Task{withFiles("first", "up/1", "up/2"), withFiles("second"), withFiles("third", "up/3")} {
			want[in.ID] = in
		}
		withFiles("late", "up/4")
		withFiles("running", "up/5")
		end("second", cutoff.Add(-time.Minute))
		end("first", cutoff.Add(-2*time.Minute))
		end("third", cutoff.Add(-time.Second))
		end("late", cutoff.Add(time.Second))

		got, err := p.PruneTerminalTasks(f.ctx, cutoff, 2)
		require.NoError(t, err)
		require.Len(t, got, 2, "up to the limit")
		more, err := p.PruneTerminalTasks(f.ctx, cutoff, 2)
		require.NoError(t, err)
		got = append(got, more...)
		require.ElementsMatch(t, []string{"first", "second", "third"}, ids(got), "every task that ended before the cutoff, once")
		for _, task := range got {
			require.Equal(t, taskbridge.StatusCompleted, task.Status)
			require.Equal(t, normTask(want[task.ID]).Attachments, normTask(task).Attachments, "%s comes with its attachments", task.ID)
			_, err = f.s.GetTask(f.ctx, task.ID)
			requireErrorIs(t, err, taskbridge.ErrTaskNotFound, "a pruned task is deleted")
		}
		got, err = p.PruneTerminalTasks(f.ctx, cutoff, 2)
		require.NoError(t, err)
		require.Empty(t, got)
		list, err := f.s.ListTasks(f.ctx, taskbridge.TaskQuery{Limit: 10})
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"late", "running"}, ids(list))
	})

	t.Run("CreateLiveTask", func(t *testing.T) {
		f := setup(t, h)
		c, ok := f.s.(taskbridge.LiveTaskCreator)
		if !ok {
			t.Skip("the store does not implement the optional taskbridge.LiveTaskCreator")
		}
		create := func(id, owner string) (taskbridge.Task, bool, error) {
			return c.CreateLiveTask(f.ctx, NewTask(id, owner, "req-"+id, f.tick()), 2)
		}
		for _, id := range []string{"a1", "a2"} {
			_, created, err := create(id, "alice")
			require.NoError(t, err)
			require.True(t, created)
		}
		f.append("a2", taskbridge.StartedPayload{})
		_, _, err := create("a3", "alice")
		requireErrorIs(t, err, taskbridge.ErrTaskQuota, "ACCEPTED and RUNNING tasks count")
		_, err = f.s.GetTask(f.ctx, "a3")
		requireErrorIs(t, err, taskbridge.ErrTaskNotFound, "nothing is stored over the quota")

		got, created, err := c.CreateLiveTask(f.ctx, NewTask("a1-again", "alice", "req-a1", f.tick()), 2)
		require.NoError(t, err, "an existing key is returned, quota or not")
		require.False(t, created)
		require.Equal(t, "a1", got.ID)
		_, created, err = create("b1", "bob")
		require.NoError(t, err, "the quota is per owner")
		require.True(t, created)

		f.append("a1", taskbridge.CompletedPayload{})
		_, created, err = create("a3", "alice")
		require.NoError(t, err, "a terminal task frees its place")
		require.True(t, created)
		f.append("a2", taskbridge.FailedPayload{Code: "E", Message: "m"})
		f.append("a3", taskbridge.CancelledPayload{Reason: "r"})
		n, err := f.s.DeleteTerminalTasks(f.ctx, f.tick(), 10)
		require.NoError(t, err)
		require.Equal(t, 3, n)

		// Concurrent creates of one owner: exactly the quota is created.
		const racers = 30
		var (
			createdBy [racers]bool
			errs      [racers]error
		)
		race(racers, func(i int) {
			_, createdBy[i], errs[i] = c.CreateLiveTask(f.ctx, NewTask(fmt.Sprint("c", i), "carol", fmt.Sprint("req-c", i), BaseTime), 5)
		})
		total := 0
		for i := range racers {
			if errs[i] != nil {
				requireErrorIs(t, errs[i], taskbridge.ErrTaskQuota)
				continue
			}
			require.True(t, createdBy[i])
			total++
		}
		require.Equal(t, 5, total)
		list, err := f.s.ListTasks(f.ctx, taskbridge.TaskQuery{OwnerID: "carol", Limit: racers})
		require.NoError(t, err)
		require.Len(t, list, 5)

		// Tasks created without a quota count against it too.
		f.createTask(NewTask("e1", "erin", "req-e1", f.tick()))
		_, _, err = c.CreateLiveTask(f.ctx, NewTask("e2", "erin", "req-e2", f.tick()), 1)
		requireErrorIs(t, err, taskbridge.ErrTaskQuota, "a task from CreateTask is live")
		_, _, err = c.CreateLiveTask(f.ctx, NewTask("e3", "erin", "req-e3", f.tick()), 0)
		requireErrorIs(t, err, taskbridge.ErrInvalidRequest, "maxLive below 1")
	})

	t.Run("CreateLiveTaskAcrossReplicas", func(t *testing.T) {
		if h.Replica == nil {
			t.Skip("no Harness.Replica")
		}
		f := setup(t, h)
		if _, ok := f.s.(taskbridge.LiveTaskCreator); !ok {
			t.Skip("the store does not implement the optional taskbridge.LiveTaskCreator")
		}
		handles := []taskbridge.LiveTaskCreator{f.s.(taskbridge.LiveTaskCreator), h.Replica(t, f.s).(taskbridge.LiveTaskCreator)}
		// Two processes create for one owner at once, each with distinct
		// keys and a few repeated ones: exactly the quota is created.
		const racers, quota = 40, 7
		var (
			createdBy [racers]bool
			errs      [racers]error
		)
		race(racers, func(i int) {
			key := fmt.Sprint("req-d", i%(racers-4)) // the last four repeat keys
			_, createdBy[i], errs[i] = handles[i%2].CreateLiveTask(f.ctx, NewTask(fmt.Sprint("d", i), "dave", key, BaseTime), quota)
		})
		total := 0
		for i := range racers {
			if errs[i] != nil {
				requireErrorIs(t, errs[i], taskbridge.ErrTaskQuota)
				continue
			}
			if createdBy[i] {
				total++
			}
		}
		require.Equal(t, quota, total, "created across replicas")
		list, err := f.s.ListTasks(f.ctx, taskbridge.TaskQuery{OwnerID: "dave", Limit: racers})
		require.NoError(t, err)
		require.Len(t, list, quota)
	})
}

// lent reads through f's store's LendEvents, copying what it lends, and
// checks that fn is called once, and only on success.
func lent(f *fixture) readFunc {
	l := f.s.(taskbridge.EventLender)
	return func(ctx context.Context, taskID string, after int64, limit int) ([]taskbridge.TaskEvent, error) {
		var out []taskbridge.TaskEvent
		calls := 0
		err := l.LendEvents(ctx, taskID, after, limit, func(evs []taskbridge.TaskEvent) {
			calls++
			out = make([]taskbridge.TaskEvent, len(evs))
			for i, ev := range evs {
				ev.Payload = append(json.RawMessage(nil), ev.Payload...)
				out[i] = ev
			}
		})
		switch {
		case err != nil && calls > 0:
			return nil, fmt.Errorf("storetest: LendEvents called fn and failed: %w", err)
		case err == nil && calls != 1:
			return nil, fmt.Errorf("storetest: LendEvents called fn %d times", calls)
		}
		return out, err
	}
}
