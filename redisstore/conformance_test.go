package redisstore_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/redisstore"
	"github.com/taskbridge-go/taskbridge/storetest"
)

func TestConformance(t *testing.T) {
	newClient(t) // skip early when Redis is not configured
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) taskbridge.Store { return newStore(t, redisstore.Config{}) },
		Trim: func(t *testing.T, s taskbridge.Store, taskID string, keepLast int) {
			require.NoError(t, s.(*redisstore.Store).TrimEvents(t.Context(), taskID, keepLast))
		},
	})
}
