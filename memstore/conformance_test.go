package memstore_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/storetest"
)

// newStore returns a store closed when the test ends.
func newStore(t *testing.T, cfg memstore.Config) *memstore.Store {
	s := memstore.New(cfg)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) taskbridge.Store { return newStore(t, memstore.Config{}) },
		Trim: func(t *testing.T, s taskbridge.Store, taskID string, keepLast int) {
			require.NoError(t, s.(*memstore.Store).TrimEvents(taskID, keepLast))
		},
		// One process: the second "replica" is the store itself, so the
		// multi-replica section runs two Services over one store.
		Replica: func(_ *testing.T, s taskbridge.Store) taskbridge.Store { return s },
	})
}
