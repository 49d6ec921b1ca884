package memstore_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/storetest"
)

var (
	watchSeeds = flag.Int("watch.seeds", 4, "how many randomized scenarios TestWatchChurnStress runs (seeds 1..n)")
	watchSeed  = flag.Uint64("watch.seed", 0, "run only this seed of TestWatchChurnStress")
)

// TestWatchChurnStress: goroutines watch, append to and stop watching a
// few tasks at random, so that watch sets die and are replaced while other
// goroutines append through the set they cached. Each goroutine checks the
// store's promise: an append that returns has called every watcher that
// was registered before it started and not yet stopped. Longer runs:
// go test ./memstore -run TestWatchChurnStress -args -watch.seeds=500
func TestWatchChurnStress(t *testing.T) {
	runSeeds(t, *watchSeeds, *watchSeed, watchChurn)
}

// runSeeds runs fn in parallel subtests, one per seed: seed alone when it
// is not 0, else seeds 1 to n.
func runSeeds(t *testing.T, n int, seed uint64, fn func(*testing.T, uint64)) {
	t.Parallel()
	seeds := []uint64{seed}
	if seed == 0 {
		seeds = seeds[:0]
		for i := range n {
			seeds = append(seeds, uint64(i+1))
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			t.Parallel()
			fn(t, seed)
		})
	}
}

func watchChurn(t *testing.T, seed uint64) {
	ctx := t.Context()
	s := newStore(t, memstore.Config{MaxEventsPerTask: 20})
	const tasks, workers, rounds = 3, 8, 300
	for i := range tasks {
		id := fmt.Sprint("task-", i)
		_, _, err := s.CreateTask(ctx, storetest.NewTask(id, "alice", id, storetest.BaseTime))
		require.NoError(t, err)
		_, err = s.Append(ctx, storetest.NewEvent(id, taskbridge.StartedPayload{}, storetest.BaseTime))
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	var failures atomic.Int64
	for w := range workers {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Go(func() {
			for range rounds {
				id := fmt.Sprint("task-", rng.IntN(tasks))
				var calls atomic.Int64
				stop := s.Watch(id, func() { calls.Add(1) })
				for range rng.IntN(3) {
					runtime.Gosched()
				}
				appends := 1 + rng.IntN(3)
				for range appends {
					if _, err := s.Append(ctx, storetest.NewEvent(id, taskbridge.MessagePayload{Message: "m"}, storetest.BaseTime)); err != nil {
						t.Errorf("seed %d: append: %v", seed, err)
						failures.Add(1)
						return
					}
				}
				// Other goroutines' appends may have called it too.
				if got := calls.Load(); got < int64(appends) {
					t.Errorf("seed %d: watcher of %s called %d times after its own %d appends", seed, id, got, appends)
					failures.Add(1)
				}
				stop()
				after := calls.Load()
				if _, err := s.Append(ctx, storetest.NewEvent(id, taskbridge.MessagePayload{Message: "m"}, storetest.BaseTime)); err != nil {
					t.Errorf("seed %d: append: %v", seed, err)
					return
				}
				if got := calls.Load(); got != after {
					t.Errorf("seed %d: watcher of %s called after its stop returned", seed, id)
					failures.Add(1)
				}
				if failures.Load() > 0 {
					return
				}
			}
		})
	}
	wg.Wait()
}
