package storetest

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
)

func testRegistry(t *testing.T, h Harness) {
	t.Run("CreateTaskStoresTask", func(t *testing.T) {
		f := setup(t, h)
		in := NewTask("task-1", "alice", "req-1", BaseTime)
		in.Attachments = []taskbridge.Attachment{
			{Field: "file", Filename: "a.txt", ContentType: "text/plain", Size: 3, SHA256: "ab12", Ref: "uploads/a"},
			{Field: "file", Filename: "b.png", ContentType: "image/png", Size: 5, SHA256: "cd34"},
		}
		got, created, err := f.s.CreateTask(f.ctx, in)
		require.NoError(t, err)
		require.True(t, created)
		requireTask(t, in, got, "CreateTask returns the stored task")
		requireTask(t, in, f.get("task-1"), "GetTask returns the stored task")
	})

	t.Run("CreateTaskIsIdempotentPerOwnerAndKey", func(t *testing.T) {
		f := setup(t, h)
		first := NewTask("task-1", "alice", "req-1", BaseTime)
		f.createTask(first)

		again := NewTask("task-2", "alice", "req-1", BaseTime.Add(time.Minute))
		again.TaskType, again.Fingerprint = "other", "fp-other"
		got, created, err := f.s.CreateTask(f.ctx, again)
		require.NoError(t, err)
		require.False(t, created, "same owner and clientRequestId must not create")
		requireTask(t, first, got, "the existing task is returned")
		_, err = f.s.GetTask(f.ctx, "task-2")
		requireErrorIs(t, err, taskbridge.ErrTaskNotFound, "the duplicate must not be stored")

		bob := f.createTask(NewTask("task-3", "bob", "req-1", BaseTime))
		require.Equal(t, "task-3", bob.ID, "same key, other owner creates a task")
		other := f.createTask(NewTask("task-4", "alice", "req-2", BaseTime))
		require.Equal(t, "task-4", other.ID, "same owner, other key creates a task")
	})

	t.Run("CreateTaskConcurrentSameKey", func(t *testing.T) {
		f := setup(t, h)
		const n = 100
		var (
			got     [n]taskbridge.Task
			created [n]bool
			errs    [n]error
		)
		race(n, func(i int) {
			got[i], created[i], errs[i] = f.s.CreateTask(f.ctx, NewTask(fmt.Sprintf("task-%d", i), "alice", "req-1", BaseTime))
		})
		winner := -1
		for i := range n {
			require.NoError(t, errs[i])
			if created[i] {
				require.Equal(t, -1, winner, "two concurrent creates with the same key both created")
				winner = i
			}
		}
		require.NotEqual(t, -1, winner, "no create reported created=true")
		id := fmt.Sprintf("task-%d", winner)
		for i := range n {
			require.Equal(t, id, got[i].ID, "every call returns the one created task")
		}
		f.get(id)
		list, err := f.s.ListTasks(f.ctx, taskbridge.TaskQuery{OwnerID: "alice", Limit: 2 * n})
		require.NoError(t, err)
		require.Equal(t, []string{id}, ids(list), "exactly one task exists")
	})

	t.Run("GetTaskUnknown", func(t *testing.T) {
		f := setup(t, h)
		f.create("task-1")
		_, err := f.s.GetTask(f.ctx, "nope")
		requireErrorIs(t, err, taskbridge.ErrTaskNotFound)
	})

	t.Run("ListTasksNewestFirst", func(t *testing.T) {
		f := setup(t, h)
		t0, t1, t2 := BaseTime, BaseTime.Add(time.Second), BaseTime.Add(2*time.Second)
		// Inserted out of order; three tasks share t1 and sort by id.
		for _, in := range []taskbridge.Task{
			NewTask("b", "alice", "r-b", t1),
			NewTask("z", "alice", "r-z", t0),
			NewTask("c", "alice", "r-c", t1),
			NewTask("a0", "alice", "r-a0", t2),
			NewTask("a", "alice", "r-a", t1),
		} {
			f.createTask(in)
		}
		want := []string{"a0", "c", "b", "a", "z"}
		list, err := f.s.ListTasks(f.ctx, taskbridge.TaskQuery{Limit: 10})
		require.NoError(t, err)
		require.Equal(t, want, ids(list))
		requireTask(t, NewTask("a0", "alice", "r-a0", t2), list[0], "listed tasks are complete records")

		list, err = f.s.ListTasks(f.ctx, taskbridge.TaskQuery{Limit: 2})
		require.NoError(t, err)
		require.Equal(t, want[:2], ids(list), "Limit bounds the page")

		list, err = f.s.ListTasks(f.ctx, taskbridge.TaskQuery{Limit: 10, Before: &taskbridge.TaskPosition{CreatedAt: t1, ID: "b"}})
		require.NoError(t, err)
		require.Equal(t, []string{"a", "z"}, ids(list), "Before is strict and breaks CreatedAt ties by id")
	})

	t.Run("ListTasksPaging", func(t *testing.T) {
		f := setup(t, h)
		var all []taskbridge.Task
		for i := range 25 {
			// Five distinct instants, five tasks each; ids not in time order.
			in := NewTask(fmt.Sprintf("t%02d", (i*7)%25), "alice", fmt.Sprint("r", i), BaseTime.Add(time.Duration(i%5)*time.Second))
			f.createTask(in)
			all = append(all, in)
		}
		f.createTask(NewTask("bob-1", "bob", "r-1", BaseTime.Add(time.Second)))
		slices.SortFunc(all, func(a, b taskbridge.Task) int {
			return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.ID, a.ID))
		})

		var paged []string
		q := taskbridge.TaskQuery{OwnerID: "alice", Limit: 4}
		for range 10 {
			page, err := f.s.ListTasks(f.ctx, q)
			require.NoError(t, err)
			require.LessOrEqual(t, len(page), 4)
			if len(page) == 0 {
				break
			}
			paged = append(paged, ids(page)...)
			last := page[len(page)-1]
			q.Before = &taskbridge.TaskPosition{CreatedAt: last.CreatedAt, ID: last.ID}
		}
		require.Equal(t, ids(all), paged, "paging with Before visits every task once, newest first")
	})

	t.Run("ListTasksFilters", func(t *testing.T) {
		f := setup(t, h)
		list, err := f.s.ListTasks(f.ctx, taskbridge.TaskQuery{Limit: 10})
		require.NoError(t, err)
		require.Empty(t, list, "an empty store lists nothing")

		f.create("a1")  // ACCEPTED
		f.started("a2") // RUNNING
		f.started("a3") // COMPLETED below
		f.append("a3", taskbridge.CompletedPayload{Result: "done"})
		f.createTask(NewTask("b1", "bob", "r-b1", f.tick()))
		f.append("b1", taskbridge.StartedPayload{})

		for _, tc := range []struct {
			name string
			q    taskbridge.TaskQuery
			want []string
		}{
			{"owner", taskbridge.TaskQuery{OwnerID: "alice"}, []string{"a3", "a2", "a1"}},
			{"status", taskbridge.TaskQuery{Statuses: []taskbridge.TaskStatus{taskbridge.StatusRunning}}, []string{"b1", "a2"}},
			{"owner and statuses", taskbridge.TaskQuery{OwnerID: "alice", Statuses: []taskbridge.TaskStatus{taskbridge.StatusRunning, taskbridge.StatusCompleted}}, []string{"a3", "a2"}},
			{"no match", taskbridge.TaskQuery{Statuses: []taskbridge.TaskStatus{taskbridge.StatusFailed}}, []string{}},
			{"unknown owner", taskbridge.TaskQuery{OwnerID: "carol"}, []string{}},
		} {
			tc.q.Limit = 10
			list, err := f.s.ListTasks(f.ctx, tc.q)
			require.NoError(t, err, tc.name)
			require.Equal(t, tc.want, ids(list), tc.name)
		}
		list, err = f.s.ListTasks(f.ctx, taskbridge.TaskQuery{Statuses: []taskbridge.TaskStatus{taskbridge.StatusCompleted}, Limit: 1})
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, taskbridge.StatusCompleted, list[0].Status, "listed tasks carry their current status")
		require.Equal(t, int64(2), list[0].LastSeq, "listed tasks carry their current LastSeq")
	})

	t.Run("RequestCancel", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		at := f.tick()
		got, first, err := f.s.RequestCancel(f.ctx, "task-1", "user asked", at)
		require.NoError(t, err)
		require.True(t, first)
		require.True(t, got.CancelRequested)
		require.Equal(t, "user asked", got.CancelReason)
		require.Equal(t, taskbridge.StatusRunning, got.Status, "a cancel request does not change the status")
		requireTime(t, at, got.UpdatedAt, "the first request updates UpdatedAt")
		requireTask(t, got, f.get("task-1"))

		again, first, err := f.s.RequestCancel(f.ctx, "task-1", "second reason", f.tick())
		require.NoError(t, err)
		require.False(t, first, "only the first request reports first")
		requireTask(t, got, again, "a repeated request changes nothing")
		requireTask(t, got, f.get("task-1"))
	})

	t.Run("RequestCancelConcurrent", func(t *testing.T) {
		f := setup(t, h)
		f.create("task-1")
		const n = 30
		var (
			firsts [n]bool
			errs   [n]error
		)
		race(n, func(i int) {
			_, firsts[i], errs[i] = f.s.RequestCancel(f.ctx, "task-1", fmt.Sprint("reason-", i), BaseTime.Add(time.Hour))
		})
		winner := -1
		for i := range n {
			require.NoError(t, errs[i])
			if firsts[i] {
				require.Equal(t, -1, winner, "two requests reported first")
				winner = i
			}
		}
		require.NotEqual(t, -1, winner, "no request reported first")
		require.Equal(t, fmt.Sprint("reason-", winner), f.get("task-1").CancelReason, "the first request's reason is kept")
	})

	t.Run("RequestCancelTerminalTask", func(t *testing.T) {
		f := setup(t, h)
		f.started("task-1")
		f.append("task-1", taskbridge.FailedPayload{Code: "BOOM", Message: "boom"})
		before := f.get("task-1")
		got, first, err := f.s.RequestCancel(f.ctx, "task-1", "too late", f.tick())
		require.NoError(t, err)
		require.False(t, first)
		require.False(t, got.CancelRequested)
		requireTask(t, before, got, "a terminal task is returned unchanged")
		requireTask(t, before, f.get("task-1"), "a terminal task is not changed")
	})

	t.Run("RequestCancelUnknown", func(t *testing.T) {
		f := setup(t, h)
		_, _, err := f.s.RequestCancel(f.ctx, "nope", "why", BaseTime)
		requireErrorIs(t, err, taskbridge.ErrTaskNotFound)
	})

	t.Run("ListTasksManyOwners", func(t *testing.T) {
		f := setup(t, h)
		const (
			n      = 10_000
			owners = 25
		)
		// Created concurrently, in no particular order; CreatedAt values
		// repeat (every 1,000th millisecond), so ties are broken by id.
		all := make([]taskbridge.Task, n)
		for i := range n {
			id := fmt.Sprintf("t%05d", (i*7919)%n)
			all[i] = NewTask(id, fmt.Sprint("owner-", i%owners), "r-"+id, BaseTime.Add(time.Duration(i%1000)*time.Millisecond))
		}
		const workers = 16
		errs := make([]error, workers)
		race(workers, func(w int) {
			for i := w; i < n && errs[w] == nil; i += workers {
				_, _, errs[w] = f.s.CreateTask(f.ctx, all[i])
			}
		})
		for _, err := range errs {
			require.NoError(t, err)
		}
		// Every 7th task of owner-3 runs, so a status filter skips most of
		// the owner's tasks.
		for i := 3; i < n; i += 7 * owners {
			_, err := f.s.Append(f.ctx, NewEvent(all[i].ID, taskbridge.StartedPayload{}, BaseTime))
			require.NoError(t, err)
			all[i].Status = taskbridge.StatusRunning
		}
		slices.SortFunc(all, func(a, b taskbridge.Task) int {
			return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.ID, a.ID))
		})
		want := func(q taskbridge.TaskQuery) []string {
			out := []string{}
			for _, task := range all {
				if q.Matches(task) {
					out = append(out, task.ID)
				}
			}
			return out
		}
		page := func(q taskbridge.TaskQuery) []string {
			var got []string
			for range n {
				list, err := f.s.ListTasks(f.ctx, q)
				require.NoError(t, err)
				require.LessOrEqual(t, len(list), q.Limit)
				if len(list) == 0 {
					return got
				}
				got = append(got, ids(list)...)
				last := list[len(list)-1]
				q.Before = &taskbridge.TaskPosition{CreatedAt: last.CreatedAt, ID: last.ID}
			}
			return got
		}
		for _, q := range []taskbridge.TaskQuery{
			{OwnerID: "owner-0", Limit: 97},
			{OwnerID: "owner-24", Limit: 400},
			{OwnerID: "owner-3", Statuses: []taskbridge.TaskStatus{taskbridge.StatusRunning}, Limit: 10},
			{OwnerID: "owner-3", Statuses: []taskbridge.TaskStatus{taskbridge.StatusAccepted}, Limit: 100},
			{Limit: 1000},
			{Statuses: []taskbridge.TaskStatus{taskbridge.StatusRunning}, Limit: 50},
		} {
			require.Equal(t, want(q), page(q), "%+v: paging visits every match once, newest first", q)
		}
		for o := range owners {
			q := taskbridge.TaskQuery{OwnerID: fmt.Sprint("owner-", o), Limit: 1}
			list, err := f.s.ListTasks(f.ctx, q)
			require.NoError(t, err)
			require.Equal(t, want(q)[:1], ids(list), "the newest task of %s", q.OwnerID)
		}
		list, err := f.s.ListTasks(f.ctx, taskbridge.TaskQuery{OwnerID: "nobody", Limit: 10})
		require.NoError(t, err)
		require.Empty(t, list)
	})
}
