package pgstore_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/pgstore"
	"github.com/taskbridge-go/taskbridge/pgstore/pgtest"
	"github.com/taskbridge-go/taskbridge/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) taskbridge.Store { return newStore(t, pgstore.Config{}) },
		Trim: func(t *testing.T, s taskbridge.Store, taskID string, keepLast int) {
			require.NoError(t, s.(*pgstore.Store).TrimEvents(t.Context(), taskID, keepLast))
		},
		// Another process: its own pool and LISTEN connection on the
		// same schema.
		Replica: func(t *testing.T, s taskbridge.Store) taskbridge.Store {
			r, err := pgstore.New(pgtest.Pool(t, pgtest.URL(t), 4), pgstore.Config{Schema: s.(*pgstore.Store).Schema()})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, r.Close()) })
			return r
		},
	})
}
