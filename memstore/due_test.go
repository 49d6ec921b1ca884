package memstore

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDueHeapRandom pushes, removes by key and pops items at random and
// checks every pop against a sorted model, and the key index every 50
// operations. Times repeat, so ties are broken by task, seq and key.
func TestDueHeapRandom(t *testing.T) {
	t.Parallel()
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 0xd0e))
		var h dueHeap
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
			case r < 7 && len(model) > 0:
				i := rng.IntN(len(model))
				h.remove(dueKey{model[i].taskID, model[i].key})
				model = slices.Delete(model, i, i+1)
			case len(model) > 0:
				slices.SortFunc(model, compareDue)
				require.Equal(t, model[0], h.removeAt(0), "seed %d op %d", seed, op)
				model = model[1:]
			}
			require.Len(t, h.items, len(model))
			require.Len(t, h.pos, len(model))
			if op%50 == 0 {
				for i, d := range h.items {
					require.Equal(t, i, h.pos[dueKey{d.taskID, d.key}], "seed %d op %d: the index of %v", seed, op, d)
				}
			}
		}
	}
}
