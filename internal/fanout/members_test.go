package fanout

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMembers checks the member set against a map over random adds and
// removes (seeded), including the switches between one inline member and
// a map.
func TestMembers(t *testing.T) {
	pool := make([]*Subscription, 5)
	for i := range pool {
		pool[i] = &Subscription{id: uint64(i)}
	}
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		var m members
		want := map[*Subscription]bool{}
		for step := range 200 {
			sub := pool[rng.IntN(len(pool))]
			if want[sub] {
				m.remove(sub)
				delete(want, sub)
			} else if rng.IntN(3) > 0 {
				m.add(sub)
				want[sub] = true
			} else {
				m.remove(sub) // not a member: no change
			}
			var got []*Subscription
			for s := range m.all() {
				got = append(got, s)
			}
			require.Len(t, got, len(want), "seed %d step %d", seed, step)
			require.Equal(t, len(want), m.len(), "seed %d step %d", seed, step)
			for s := range want {
				require.True(t, slices.Contains(got, s), "seed %d step %d", seed, step)
			}
			require.Equal(t, len(want) >= 2, m.many != nil, "a map only for two or more members")
		}
	}
}
