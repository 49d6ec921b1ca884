package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/redisstore"
)

// requireServices reports whether a missing dependency fails the test
// instead of skipping it (CI sets TASKBRIDGE_REQUIRE_SERVICES=1).
func requireServices() bool { return os.Getenv("TASKBRIDGE_REQUIRE_SERVICES") == "1" }

// missing skips t, or fails it when services are required.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if requireServices() {
		t.Fatalf(format+" (TASKBRIDGE_REQUIRE_SERVICES=1)", args...)
	}
	t.Skipf(format, args...)
}

// redisOptions returns the options of TASKBRIDGE_REDIS_URL, skipping t when
// it is unset.
func redisOptions(t testing.TB) *redis.Options {
	t.Helper()
	url := os.Getenv("TASKBRIDGE_REDIS_URL")
	if url == "" {
		missing(t, "TASKBRIDGE_REDIS_URL is not set: set it (e.g. redis://127.0.0.1:6379/0) to run the Redis store tests")
	}
	opt, err := redis.ParseURL(url)
	require.NoError(t, err, "TASKBRIDGE_REDIS_URL")
	return opt
}

// newClient returns a client of TASKBRIDGE_REDIS_URL closed when t ends.
func newClient(t testing.TB) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(redisOptions(t))
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		missing(t, "Redis at TASKBRIDGE_REDIS_URL does not answer: %v", err)
	}
	return rdb
}

// uniquePrefix returns a key prefix no other test uses, and deletes its
// keys when t ends.
func uniquePrefix(t testing.TB, rdb redis.UniversalClient) string {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	prefix := "tbtest:" + hex.EncodeToString(b[:])
	t.Cleanup(func() { deletePrefix(t, rdb, prefix) })
	return prefix
}

// deletePrefix deletes every key that starts with prefix+":".
func deletePrefix(t testing.TB, rdb redis.UniversalClient, prefix string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			require.NoError(t, rdb.Unlink(ctx, batch...).Err())
			batch = batch[:0]
		}
	}
	require.NoError(t, iter.Err())
	if len(batch) > 0 {
		require.NoError(t, rdb.Unlink(ctx, batch...).Err())
	}
}

// openStore opens a store on rdb, closed when t ends.
func openStore(t testing.TB, rdb redis.UniversalClient, cfg redisstore.Config) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(rdb, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// newStore opens a store with a unique prefix on a new client of
// TASKBRIDGE_REDIS_URL.
func newStore(t testing.TB, cfg redisstore.Config) *redisstore.Store {
	t.Helper()
	rdb := newClient(t)
	if cfg.Prefix == "" {
		cfg.Prefix = uniquePrefix(t, rdb)
	}
	return openStore(t, rdb, cfg)
}
