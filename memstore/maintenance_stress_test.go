package memstore_test

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/storetest"
)

// TestMaintenanceRandom opens suspensions with random deadlines (or none),
// accepts, dispatches and cancels random ones (receipts get random creation
// times), and after every round checks ExpireSuspensions, ListPendingResumes
// and DeleteReceipts with a random time and limit against a model of their
// contract: the due records, earliest first (suspensions by deadline or
// acceptance, task and event; receipts by creation, task and action id), at
// most limit of them, never a suspension that was resolved or cancelled
// (expiry) or dispatched (pending resumes) nor a receipt whose resume is
// pending. Longer runs: go test ./memstore -run TestMaintenanceRandom -args
// -index.seeds=200
func TestMaintenanceRandom(t *testing.T) {
	runSeeds(t, *indexSeeds, *indexSeed, maintenanceRandom)
}

func maintenanceRandom(t *testing.T, seed uint64) {
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(seed, 0x3a17))
	s := newStore(t, memstore.Config{})
	// Times on a coarse grid, so that deadlines, creation times and the
	// calls' times often tie.
	ms := func(n int) time.Time { return storetest.BaseTime.Add(time.Duration(20*n) * time.Millisecond) }
	type susp struct {
		task, id      string
		seq           int64
		deadline      *time.Time
		closed        time.Time // when accepted
		open, pending bool
	}
	type receipt struct {
		task, id string
		at       time.Time
		sp       *susp
		deleted  bool
	}
	var (
		susps    []*susp
		receipts []*receipt
		tasks    []string
	)
	newTask := func(i int) string {
		id := fmt.Sprint("t", i) // i grows: never an id used before
		_, _, err := s.CreateTask(ctx, storetest.NewTask(id, "alice", id, storetest.BaseTime))
		require.NoError(t, err)
		_, err = s.Append(ctx, storetest.NewEvent(id, taskbridge.StartedPayload{}, storetest.BaseTime))
		require.NoError(t, err)
		return id
	}
	for i := range 3 {
		tasks = append(tasks, newTask(i))
	}
	pick := func(ok func(*susp) bool) *susp {
		var c []*susp
		for _, sp := range susps {
			if ok(sp) {
				c = append(c, sp)
			}
		}
		if len(c) == 0 {
			return nil
		}
		return c[rng.IntN(len(c))]
	}
	next := 0
	for round := range 25 {
		for range 30 {
			next++
			switch rng.IntN(6) {
			case 5:
				if rng.IntN(4) > 0 {
					continue
				}
				// End a task (its open suspensions are cancelled) and
				// delete it (its receipts and pending resumes go too);
				// a new task takes its place.
				i := rng.IntN(len(tasks))
				gone := tasks[i]
				_, err := s.Append(ctx, storetest.NewEvent(gone, taskbridge.CompletedPayload{Result: 1}, storetest.BaseTime))
				require.NoError(t, err)
				n, err := s.DeleteTerminalTasks(ctx, storetest.BaseTime.Add(time.Hour), 10)
				require.NoError(t, err)
				require.Equal(t, 1, n)
				for _, sp := range susps {
					if sp.task == gone {
						sp.open, sp.pending = false, false
					}
				}
				for _, r := range receipts {
					if r.task == gone {
						r.deleted = true
					}
				}
				tasks[i] = newTask(len(tasks) + next)
			case 0, 1:
				sp := &susp{task: tasks[rng.IntN(len(tasks))], id: fmt.Sprint("s", next), open: true}
				if rng.IntN(4) > 0 {
					d := ms(1 + rng.IntN(20))
					sp.deadline = &d
				}
				in, ev := storetest.NewSuspension(sp.task, sp.id, sp.deadline, storetest.BaseTime)
				got, _, err := s.OpenSuspension(ctx, in, ev)
				require.NoError(t, err)
				sp.seq = got.EventSeq
				susps = append(susps, sp)
			case 2:
				if sp := pick(func(sp *susp) bool { return sp.open }); sp != nil {
					// Accepted before any deadline; the receipt's own
					// creation time is what DeleteReceipts orders by.
					// (before the earliest deadline, ms(1)).
					a := storetest.NewAttempt(sp.task, sp.id, fmt.Sprint("a", next), "fp", storetest.BaseTime)
					a.Now = storetest.BaseTime.Add(time.Duration(rng.IntN(4)) * time.Millisecond)
					a.Receipt.CreatedAt = ms(rng.IntN(50))
					sp.closed = a.Now
					res, err := s.AcceptAction(ctx, a)
					require.NoError(t, err)
					require.Equal(t, taskbridge.ActionAccepted, res.Status)
					sp.open, sp.pending = false, true
					receipts = append(receipts, &receipt{task: sp.task, id: a.Receipt.ClientActionID, at: a.Receipt.CreatedAt, sp: sp})
				}
			case 3:
				if sp := pick(func(sp *susp) bool { return sp.pending }); sp != nil {
					require.NoError(t, s.MarkResumeDispatched(ctx, sp.task, sp.id))
					sp.pending = false
				}
			case 4:
				if sp := pick(func(sp *susp) bool { return sp.open }); sp != nil {
					_, _, err := s.CloseSuspension(ctx, sp.task, sp.id, taskbridge.SuspensionCancelled, storetest.BaseTime)
					require.NoError(t, err)
					sp.open = false
				}
			}
		}

		now, limit := ms(rng.IntN(55)), 1+rng.IntN(8)
		var due []*susp
		for _, sp := range susps {
			if sp.open && sp.deadline != nil && !now.Before(*sp.deadline) {
				due = append(due, sp)
			}
		}
		slices.SortFunc(due, func(a, b *susp) int {
			return cmp.Or(a.deadline.Compare(*b.deadline), strings.Compare(a.task, b.task), cmp.Compare(a.seq, b.seq))
		})
		due = due[:min(limit, len(due))]
		var want, got []string
		for _, sp := range due {
			want = append(want, sp.task+"/"+sp.id)
			sp.open = false
		}
		expired, err := s.ExpireSuspensions(ctx, now, limit)
		require.NoError(t, err)
		for _, sp := range expired {
			got = append(got, sp.TaskID+"/"+sp.SuspendID)
		}
		require.Equal(t, want, got, "seed %d round %d: ExpireSuspensions(%v, %d)", seed, round, now, limit)

		limit = 1 + rng.IntN(8)
		var pending []*susp
		for _, sp := range susps {
			if sp.pending {
				pending = append(pending, sp)
			}
		}
		slices.SortFunc(pending, func(a, b *susp) int {
			return cmp.Or(a.closed.Compare(b.closed), strings.Compare(a.task, b.task), cmp.Compare(a.seq, b.seq))
		})
		want = nil
		for _, sp := range pending[:min(limit, len(pending))] {
			want = append(want, sp.task+"/"+sp.id)
		}
		for range 2 { // listing changes nothing
			listed, err := s.ListPendingResumes(ctx, limit)
			require.NoError(t, err)
			got = nil
			for _, sp := range listed {
				require.Equal(t, taskbridge.ResumePending, sp.ResumeStatus)
				got = append(got, sp.TaskID+"/"+sp.SuspendID)
			}
			require.Equal(t, want, got, "seed %d round %d: ListPendingResumes(%d)", seed, round, limit)
		}

		before, limit := ms(rng.IntN(55)), 1+rng.IntN(8)
		var old []*receipt
		for _, r := range receipts {
			if !r.deleted && r.at.Before(before) && !r.sp.pending {
				old = append(old, r)
			}
		}
		slices.SortFunc(old, func(a, b *receipt) int {
			return cmp.Or(a.at.Compare(b.at), strings.Compare(a.task, b.task), strings.Compare(a.id, b.id))
		})
		old = old[:min(limit, len(old))]
		for _, r := range old {
			r.deleted = true
		}
		n, err := s.DeleteReceipts(ctx, before, limit)
		require.NoError(t, err)
		require.Equal(t, len(old), n, "seed %d round %d: DeleteReceipts(%v, %d)", seed, round, before, limit)
		// Records that left the state they waited in left the heaps.
		wantExpiring, wantResumes, wantReceipts := 0, 0, 0
		for _, sp := range susps {
			if sp.open && sp.deadline != nil {
				wantExpiring++
			}
			if sp.pending {
				wantResumes++
			}
		}
		for _, r := range receipts {
			if !r.deleted {
				wantReceipts++
			}
		}
		w := memstore.Waiting(s)
		require.Equal(t, []int{wantReceipts, wantExpiring, wantResumes}, []int{w["receipts"], w["expiring"], w["resumes"]},
			"seed %d round %d: receipts, expiring and pending resumes waiting", seed, round)
		for _, r := range receipts {
			_, err := s.GetReceipt(ctx, r.task, r.id)
			if r.deleted {
				require.True(t, errors.Is(err, taskbridge.ErrReceiptNotFound) || errors.Is(err, taskbridge.ErrTaskNotFound),
					"seed %d round %d: receipt %s/%s: %v", seed, round, r.task, r.id, err)
			} else {
				require.NoError(t, err, "seed %d round %d: receipt %s/%s", seed, round, r.task, r.id)
			}
		}
	}
}

// TestLeasesRandom acquires, renews and releases leases on a few tasks by
// two holders at random times, ends tasks now and then, and after every
// round checks ExpiredLeases with a random time and limit against a model
// of the lease rules, and that the store keeps one waiting record per held
// lease. Longer runs: go test ./memstore -run TestLeasesRandom -args
// -index.seeds=200
func TestLeasesRandom(t *testing.T) {
	runSeeds(t, *indexSeeds, *indexSeed, leasesRandom)
}

func leasesRandom(t *testing.T, seed uint64) {
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(seed, 0x1ea5e))
	s := newStore(t, memstore.Config{})
	ms := func(n int) time.Time { return storetest.BaseTime.Add(time.Duration(10*n) * time.Millisecond) }
	type lease struct {
		holder  string
		expires time.Time
		ended   bool
	}
	model := map[string]*lease{}
	var tasks []string
	for i := range 8 {
		id := fmt.Sprint("t", i)
		_, _, err := s.CreateTask(ctx, storetest.NewTask(id, "alice", id, storetest.BaseTime))
		require.NoError(t, err)
		model[id] = &lease{}
		tasks = append(tasks, id)
	}
	holders := []string{"h1", "h2"}
	for round := range 30 {
		for range 20 {
			id, holder := tasks[rng.IntN(len(tasks))], holders[rng.IntN(len(holders))]
			l := model[id]
			now, ttl := ms(rng.IntN(40)), time.Duration(1+rng.IntN(10))*10*time.Millisecond
			switch rng.IntN(8) {
			case 0, 1, 2:
				got, acquired, err := s.AcquireLease(ctx, id, holder, now, ttl)
				if l.ended {
					require.ErrorIs(t, err, taskbridge.ErrTaskTerminal)
					continue
				}
				require.NoError(t, err)
				want := l.holder == "" || l.holder == holder || !now.Before(l.expires)
				require.Equal(t, want, acquired, "seed %d: AcquireLease(%s, %s)", seed, id, holder)
				if acquired {
					l.holder, l.expires = holder, now.Add(ttl)
				}
				require.Equal(t, l.holder, got.Holder)
			case 3, 4:
				_, err := s.RenewLease(ctx, id, holder, now, ttl)
				if l.holder == holder {
					require.NoError(t, err)
					l.expires = now.Add(ttl)
				} else {
					require.Error(t, err)
				}
			case 5, 6:
				require.NoError(t, s.ReleaseLease(ctx, id, holder))
				if l.holder == holder {
					l.holder = ""
				}
			case 7:
				if !l.ended && rng.IntN(3) == 0 {
					_, err := s.Append(ctx, storetest.NewEvent(id, taskbridge.FailedPayload{Code: "E", Message: "m"}, now))
					require.NoError(t, err)
					l.ended, l.holder = true, ""
				}
			}
		}
		now, limit := ms(rng.IntN(60)), 1+rng.IntN(6)
		var want []string
		held := 0
		for _, id := range tasks {
			if l := model[id]; l.holder != "" {
				held++
				if !now.Before(l.expires) {
					want = append(want, id)
				}
			}
		}
		slices.SortFunc(want, func(a, b string) int {
			return cmp.Or(model[a].expires.Compare(model[b].expires), strings.Compare(a, b))
		})
		want = want[:min(limit, len(want))]
		for range 2 { // listing changes nothing
			got, err := s.ExpiredLeases(ctx, now, limit)
			require.NoError(t, err)
			var ids []string
			for _, l := range got {
				require.Equal(t, model[l.TaskID].holder, l.Holder)
				ids = append(ids, l.TaskID)
			}
			require.Equal(t, want, ids, "seed %d round %d: ExpiredLeases(%v, %d)", seed, round, now, limit)
		}
		require.Equal(t, held, memstore.Waiting(s)["leases"], "seed %d round %d: one waiting record per held lease", seed, round)
	}
}
