package memstore_test

import (
	"cmp"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/storetest"
)

var (
	indexSeeds = flag.Int("index.seeds", 4, "how many randomized scenarios TestOwnerIndexRandom runs (seeds 1..n)")
	indexSeed  = flag.Uint64("index.seed", 0, "run only this seed of TestOwnerIndexRandom")
)

// TestOwnerIndexRandom creates tasks whose CreatedAt values repeat and
// arrive out of order (many tasks per millisecond, some older than the
// newest), ends some at random times and prunes them (checking that the
// oldest ends go first), and checks after every round that each owner's
// index holds exactly the live tasks and that paging through an owner's
// tasks, and through all of them, visits each live task once, newest
// first, from every starting position. Listers
// run concurrently with the creates, so the race detector sees a listing
// snapshot written under it; each of their pages must be in order. Longer
// runs: go test ./memstore -run TestOwnerIndexRandom -args -index.seeds=200
func TestOwnerIndexRandom(t *testing.T) {
	runSeeds(t, *indexSeeds, *indexSeed, ownerIndexRandom)
}

func ownerIndexRandom(t *testing.T, seed uint64) {
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(seed, 0x1dea))
	s := newStore(t, memstore.Config{})
	owners := []string{"alice", "bob"}
	live := map[string]taskbridge.Task{}
	ended := map[string]time.Time{} // terminal tasks not yet pruned, by their end
	newestFirst := func(a, b taskbridge.Task) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.ID, a.ID))
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, owner := range []string{"alice", ""} {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				list, err := s.ListTasks(ctx, taskbridge.TaskQuery{OwnerID: owner, Limit: 50})
				if err != nil {
					t.Error(err)
					return
				}
				if !slices.IsSortedFunc(list, newestFirst) {
					t.Errorf("a page listed concurrently with creates is out of order: %v", ids(list))
					return
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()

	clock := 0 // milliseconds after BaseTime
	next := 0
	for round := range 10 {
		for range 200 + rng.IntN(400) {
			// Mostly the current millisecond or the next; sometimes up to
			// half a second in the past.
			ms := clock
			switch r := rng.IntN(20); {
			case r < 5:
				clock++
				ms = clock
			case r == 0:
				ms = max(clock-rng.IntN(500), 0)
			}
			id := fmt.Sprintf("%08x-%d", rng.Uint32(), next)
			next++
			in := storetest.NewTask(id, owners[rng.IntN(len(owners))], id, storetest.BaseTime.Add(time.Duration(ms)*time.Millisecond))
			_, _, err := s.CreateTask(ctx, in)
			require.NoError(t, err)
			live[id] = in
		}
		if round > 0 {
			// End a random third of the tasks, at random times, and prune
			// some: the oldest ends go first, ties broken by id.
			for id := range live {
				if _, done := ended[id]; !done && rng.IntN(3) == 0 {
					at := storetest.BaseTime.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
					ended[id] = at
					_, err := s.Append(ctx, storetest.NewEvent(id, taskbridge.CompletedPayload{Result: 1}, at))
					require.NoError(t, err)
				}
			}
			before := storetest.BaseTime.Add(time.Duration(rng.IntN(1100)) * time.Millisecond)
			var due []string
			for id, at := range ended {
				if at.Before(before) {
					due = append(due, id)
				}
			}
			slices.SortFunc(due, func(a, b string) int { return cmp.Or(ended[a].Compare(ended[b]), strings.Compare(a, b)) })
			limit := 1 + rng.IntN(len(ended)+1)
			pruned, err := s.PruneTerminalTasks(ctx, before, limit)
			require.NoError(t, err)
			require.Equal(t, append([]string{}, due[:min(limit, len(due))]...), ids(pruned), "seed %d round %d: the oldest ends before %v, at most %d", seed, round, before, limit)
			for _, task := range pruned {
				delete(live, task.ID)
				delete(ended, task.ID)
				_, err := s.GetTask(ctx, task.ID)
				require.ErrorIs(t, err, taskbridge.ErrTaskNotFound, "seed %d round %d: pruned task %s", seed, round, task.ID)
			}
			for id := range live {
				got, err := s.GetTaskHead(ctx, id)
				require.NoError(t, err, "seed %d round %d: live task %s", seed, round, id)
				require.Equal(t, id, got.ID)
			}
			require.Equal(t, len(ended), memstore.Waiting(s)["ended"], "seed %d round %d: terminal tasks waiting for retention", seed, round)
		}

		for _, owner := range []string{"alice", "bob", ""} {
			var want []taskbridge.Task
			for _, task := range live {
				if owner == "" || task.OwnerID == owner {
					want = append(want, task)
				}
			}
			slices.SortFunc(want, newestFirst)
			if owner != "" {
				// The index holds exactly the live tasks: pruned ones are
				// gone from it, not only skipped by listing.
				indexed, err := memstore.IndexedTasks(s, owner)
				require.NoError(t, err)
				exp := ids(want)
				slices.Reverse(exp)
				if len(exp) == 0 {
					exp = nil
				}
				require.Equal(t, exp, indexed, "seed %d round %d: %s's index", seed, round, owner)
			}
			// Start from a few positions: none, every task's own, and
			// positions between tasks.
			starts := []*taskbridge.TaskPosition{nil}
			for range 2 {
				if len(want) > 0 {
					w := want[rng.IntN(len(want))]
					starts = append(starts, &taskbridge.TaskPosition{CreatedAt: w.CreatedAt, ID: w.ID})
				}
				starts = append(starts, &taskbridge.TaskPosition{
					CreatedAt: storetest.BaseTime.Add(time.Duration(rng.IntN(clock+2)) * time.Millisecond),
					ID:        fmt.Sprintf("%08x", rng.Uint32()),
				})
			}
			for _, before := range starts {
				var exp []string
				for _, task := range want {
					if before == nil || newestFirst(task, taskbridge.Task{ID: before.ID, CreatedAt: before.CreatedAt}) > 0 {
						exp = append(exp, task.ID)
					}
				}
				q := taskbridge.TaskQuery{OwnerID: owner, Limit: 1 + rng.IntN(300), Before: before}
				if rng.IntN(4) > 0 {
					q.Limit += 50
				}
				var got []string
				for {
					page, err := s.ListTasks(ctx, q)
					require.NoError(t, err)
					if len(page) == 0 {
						break
					}
					got = append(got, ids(page)...)
					last := page[len(page)-1]
					q.Before = &taskbridge.TaskPosition{CreatedAt: last.CreatedAt, ID: last.ID}
				}
				require.Equal(t, exp, got, "seed %d round %d owner %q: paging from %v", seed, round, owner, before)
			}
		}
	}
}

// ids returns the tasks' ids.
func ids(tasks []taskbridge.Task) []string {
	out := make([]string, len(tasks))
	for i, task := range tasks {
		out[i] = task.ID
	}
	return out
}
