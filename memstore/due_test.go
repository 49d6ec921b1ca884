package memstore

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/storetest"
)

// TestDueHeapRandom pushes, removes by key and pops items at random and
// checks every pop against a sorted model, and the key index every 50
// operations; unkeyed heaps only push and pop, and keep no index. Times repeat, so ties are broken by task, seq and key.
func TestDueHeapRandom(t *testing.T) {
	t.Parallel()
	for seed := range uint64(20) {
		keyed := seed%4 != 0 // an unkeyed heap only pushes and pops
		rng := rand.New(rand.NewPCG(seed, 0xd0e))
		h := dueHeap{keyed: keyed}
		var model []dueItem
		for op := range 2000 {
			switch r := rng.IntN(10); {
			case r < 5:
				d := dueItem{
					at:     time.Unix(int64(rng.IntN(30)), 0),
					taskID: fmt.Sprint("t", rng.IntN(5)),
					seq:    int64(rng.IntN(3)),
					key:    fmt.Sprint("k", op),
				}
				h.push(d)
				model = append(model, d)
			case r < 7 && len(model) > 0 && keyed:
				i := rng.IntN(len(model))
				h.remove(dueKey{model[i].taskID, model[i].key})
				model = slices.Delete(model, i, i+1)
			case len(model) > 0:
				slices.SortFunc(model, compareDue)
				require.Equal(t, model[0], h.removeAt(0), "seed %d op %d", seed, op)
				model = model[1:]
			}
			require.Len(t, h.items, len(model))
			if !keyed {
				require.Nil(t, h.pos)
				continue
			}
			require.Len(t, h.pos, len(model))
			if op%50 == 0 {
				for i, d := range h.items {
					require.Equal(t, i, h.pos[dueKey{d.taskID, d.key}], "seed %d op %d: the index of %v", seed, op, d)
				}
			}
		}
	}
}

// TestRequeueKeepsNewerItem reproduces an interleaving of ExpiredLeases with
// a renewal: the call takes a lease's item out of the heap to list it, the
// holder renews meanwhile (pushing an item with the new expiry), and the
// call then puts its item back. The stale item must not replace the new
// one: if it did, the next ExpiredLeases would find the lease not expired,
// drop the item, and never list the lease when it does expire.
func TestRequeueKeepsNewerItem(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := New(Config{})
	defer s.Close()
	t0 := time.Unix(1000, 0)
	_, _, err := s.CreateTask(ctx, storetest.NewTask("task-1", "alice", "r-1", t0))
	require.NoError(t, err)
	_, ok, err := s.AcquireLease(ctx, "task-1", "me", t0, time.Second)
	require.NoError(t, err)
	require.True(t, ok)

	// ExpiredLeases at t0+1s has taken the item to list it ...
	d, ok := s.popDue(&s.leases, func(time.Time) bool { return true })
	require.True(t, ok)
	// ... the holder renews until t0+1h ...
	_, err = s.RenewLease(ctx, "task-1", "me", t0, time.Hour)
	require.NoError(t, err)
	// ... and the call puts its item back.
	s.requeue(&s.leases, []dueItem{d}, leaseWaits)

	got, err := s.ExpiredLeases(ctx, t0.Add(time.Minute), 10)
	require.NoError(t, err)
	require.Empty(t, got, "renewed until t0+1h")
	got, err = s.ExpiredLeases(ctx, t0.Add(2*time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, got, 1, "the renewed lease is listed once it expires")
	require.Equal(t, "task-1", got[0].TaskID)
}

// TestLeasesConcurrent acquires, renews and releases leases from several
// goroutines while others list expired leases (taking items out of the heap
// and putting them back), with seeded random choices. Once all have
// stopped, the heap must hold exactly one item per held lease, at its
// expiry: no lease lost, none stale.
func TestLeasesConcurrent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := New(Config{})
	defer s.Close()
	t0 := time.Unix(1000, 0)
	const tasks = 8
	for i := range tasks {
		_, _, err := s.CreateTask(ctx, storetest.NewTask(fmt.Sprint("t", i), "alice", fmt.Sprint("r", i), t0))
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 0x1ea5))
			holder := fmt.Sprint("h", w%3)
			for range 3000 {
				id := fmt.Sprint("t", rng.IntN(tasks))
				now := t0.Add(time.Duration(rng.IntN(100)) * time.Millisecond)
				ttl := time.Duration(1+rng.IntN(100)) * time.Millisecond
				switch rng.IntN(4) {
				case 0:
					_, _, _ = s.AcquireLease(ctx, id, holder, now, ttl)
				case 1:
					_, _ = s.RenewLease(ctx, id, holder, now, ttl)
				case 2:
					_ = s.ReleaseLease(ctx, id, holder)
				case 3:
					_, _ = s.ExpiredLeases(ctx, now, 1+rng.IntN(4))
				}
			}
		})
	}
	wg.Wait()
	held := map[string]time.Time{}
	for i := range tasks {
		ts, err := s.lookup(fmt.Sprint("t", i))
		require.NoError(t, err)
		if ts.lease.Holder != "" {
			held[ts.lease.TaskID] = ts.lease.ExpiresAt
		}
	}
	items := map[string]time.Time{}
	for _, d := range s.leases.items {
		items[d.taskID] = d.at
	}
	require.Equal(t, held, items)
}
