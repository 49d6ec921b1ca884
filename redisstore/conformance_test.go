package redisstore_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/redisstore"
	"github.com/taskbridge-go/taskbridge/storetest"
)

func TestConformance(t *testing.T) {
	newClient(t)          // skip early when Redis is not configured
	var prefixes sync.Map // *redisstore.Store → its key prefix
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) taskbridge.Store {
			rdb := newClient(t)
			prefix := uniquePrefix(t, rdb)
			s := openStore(t, rdb, redisstore.Config{Prefix: prefix})
			prefixes.Store(s, prefix)
			return s
		},
		// Another process: its own client (pool and subscription
		// connection) on the same prefix.
		Replica: func(t *testing.T, s taskbridge.Store) taskbridge.Store {
			prefix, ok := prefixes.Load(s)
			require.True(t, ok, "Replica of a store that New did not return")
			r := openStore(t, newClient(t), redisstore.Config{Prefix: prefix.(string)})
			prefixes.Store(r, prefix)
			return r
		},
		Trim: func(t *testing.T, s taskbridge.Store, taskID string, keepLast int) {
			require.NoError(t, s.(*redisstore.Store).TrimEvents(t.Context(), taskID, keepLast))
		},
	})
}
