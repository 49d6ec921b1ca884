package pgstore_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/pgstore"
	"github.com/taskbridge-go/taskbridge/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) taskbridge.Store { return newStore(t, pgstore.Config{}) },
		Trim: func(t *testing.T, s taskbridge.Store, taskID string, keepLast int) {
			require.NoError(t, s.(*pgstore.Store).TrimEvents(t.Context(), taskID, keepLast))
		},
	})
}
