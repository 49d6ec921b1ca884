package memstore

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// An idMap spreads ids over its shards, random ones (UUIDs) and counters
// alike, and finds, replaces and deletes each.
func TestIDMapShards(t *testing.T) {
	for name, id := range map[string]func(i int) string{
		"uuid":    func(int) string { return uuid.NewString() },
		"counter": func(i int) string { return fmt.Sprintf("task-%d", i) },
		"padded":  func(i int) string { return fmt.Sprintf("t-%012d-x", i) },
		"short":   func(i int) string { return fmt.Sprint(i) },
	} {
		t.Run(name, func(t *testing.T) {
			var m idMap[*int]
			m.init()
			const n = 100 * mapShards
			ids := make([]string, n)
			vals := make([]*int, n)
			for i := range ids {
				ids[i], vals[i] = id(i), new(int)
				m.store(ids[i], vals[i])
			}
			for i := range m.shards {
				got := len(m.shards[i].m)
				require.Greater(t, got, n/mapShards/3, "shard %d of %d has %d of %d ids", i, mapShards, got, n)
				require.Less(t, got, 3*n/mapShards, "shard %d of %d has %d of %d ids", i, mapShards, got, n)
			}
			for i, id := range ids {
				v, ok := m.load(id)
				require.True(t, ok, id)
				require.Same(t, vals[i], v, id)
			}
			other := new(int)
			require.Same(t, vals[0], m.loadOrStore(ids[0], other), "loadOrStore keeps what is there")
			m.compareAndDelete(ids[0], other)
			_, ok := m.load(ids[0])
			require.True(t, ok, "compareAndDelete with another value deletes nothing")
			m.compareAndDelete(ids[0], vals[0])
			_, ok = m.load(ids[0])
			require.False(t, ok)
			require.Same(t, other, m.loadOrStore(ids[0], other))
			all, _ := m.all()
			require.Len(t, all, n)
			m.clear()
			all, _ = m.all()
			require.Empty(t, all)
		})
	}
}
