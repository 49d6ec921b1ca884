package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/pgstore/pgtest"
)

// redisURL returns TASKBRIDGE_REDIS_URL. It skips t when it is unset or
// Redis does not answer, and fails t instead under
// TASKBRIDGE_REQUIRE_SERVICES=1.
func redisURL(t *testing.T) string {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("TASKBRIDGE_REQUIRE_SERVICES") == "1" {
		skip = t.Fatalf
	}
	url := os.Getenv("TASKBRIDGE_REDIS_URL")
	if url == "" {
		skip("TASKBRIDGE_REDIS_URL is not set: set it (e.g. redis://127.0.0.1:6379/0) to run the two-replica test")
	}
	opt, err := redis.ParseURL(url)
	require.NoError(t, err, "TASKBRIDGE_REDIS_URL")
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(t.Context()).Err(); err != nil {
		skip("Redis at TASKBRIDGE_REDIS_URL does not answer: %v", err)
	}
	return url
}

// deleteKeys deletes the keys under prefix when t ends.
func deleteKeys(t *testing.T, url, prefix string) {
	opt, err := redis.ParseURL(url)
	require.NoError(t, err)
	t.Cleanup(func() {
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			require.NoError(t, rdb.Unlink(ctx, iter.Val()).Err())
		}
		require.NoError(t, iter.Err())
	})
}

// TestReplicas runs two server processes on one shared store, as two
// replicas behind a load balancer, for each store that several processes
// can share: what a client does on one replica reaches the task wherever
// it runs, and the death of the replica running a task ends it by the
// runner's policy on the other.
func TestReplicas(t *testing.T) {
	t.Parallel()
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		url := redisURL(t)
		var rnd [6]byte
		_, _ = rand.Read(rnd[:])
		prefix := "tbe2e:" + hex.EncodeToString(rnd[:])
		deleteKeys(t, url, prefix)
		testReplicas(t, "-store", "redis", "-redis-url", url, "-redis-prefix", prefix)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		db := pgtest.NewDB(t, "tbserver", 2)
		testReplicas(t, "-store", "postgres", "-postgres-url", db.URL, "-postgres-schema", db.Schema)
	})
}

func testReplicas(t *testing.T, store ...string) {
	common := append([]string{"-addr", "127.0.0.1:0", "-lease-ttl", "2s", "-heartbeat-interval", "1s",
		"-task-grace", "10ms", "-log-level", "warn"}, store...)
	procA := startCommand(t, append(common, "-replica", "a")...)
	procB := startCommand(t, append(common, "-replica", "b")...)
	// Tasks run on the replica that created them: a.
	a, b := remote(procA.url), remote(procB.url)

	t.Run("StreamOnTheOther", func(t *testing.T) {
		id := a.create(t, "alice", "stream", map[string]any{"count": 20, "intervalMs": 20})
		want := concat(types(taskbridge.EventTaskStarted), repeat(taskbridge.EventTaskMessage, 20), types(taskbridge.EventTaskCompleted))
		readers := map[string]reader{}
		for _, tr := range transports {
			readers[tr] = b.follow(t, tr, "alice", id)
		}
		for tr, r := range readers {
			t.Run(tr, func(t *testing.T) { requireLog(t, id, readUntil(t, r, nil), want...) })
		}
	})

	t.Run("CancelOnTheOther", func(t *testing.T) {
		id := a.create(t, "alice", "stream", map[string]any{"count": 1000, "intervalMs": 50})
		r := b.follow(t, "sse", "alice", id)
		readUntil(t, r, isType(taskbridge.EventTaskMessage))
		require.Equal(t, taskbridge.CancelRequested, b.cancel(t, "alice", id, map[string]any{"reason": "from b"}).Status)
		evs := readUntil(t, r, nil)
		end := evs[len(evs)-1]
		require.Equal(t, taskbridge.EventTaskCancelled, end.Type, "the runner on a stopped the task")
		require.Equal(t, "from b", end.fields["reason"])
	})

	t.Run("ApprovalOnTheOther", func(t *testing.T) {
		id := a.create(t, "alice", "approval", nil)
		r := b.follow(t, "ws", "alice", id)
		evs := readUntil(t, r, isType(taskbridge.EventTaskSuspended))
		suspendID, _ := evs[len(evs)-1].fields["suspendId"].(string)
		require.NotEmpty(t, suspendID)
		require.Equal(t, taskbridge.ActionAccepted, b.act(t, "alice", id, suspendID, "approve").Status)
		evs = append(evs, readUntil(t, r, nil)...)
		requireLog(t, id, evs, taskbridge.EventTaskStarted, taskbridge.EventTaskSuspended,
			taskbridge.EventTaskActionAccepted, taskbridge.EventTaskCompleted)
		require.Equal(t, map[string]any{"approved": true}, evs[3].fields["result"], "the handler on a got the action")
	})

	t.Run("RunnerDies", func(t *testing.T) {
		id := a.create(t, "alice", "stream", map[string]any{"count": 1000, "intervalMs": 50})
		r := b.follow(t, "sse", "alice", id)
		readUntil(t, r, isType(taskbridge.EventTaskMessage))
		require.NoError(t, procA.cmd.Process.Kill())
		procA.wait(t)
		// b takes the task over once a's lease expires; the demo's task
		// types are not rerun, so it fails as lost.
		evs := readUntil(t, r, nil)
		end := evs[len(evs)-1]
		require.Equal(t, taskbridge.EventTaskFailed, end.Type)
		require.Equal(t, "EXECUTOR_LOST", end.fields["code"])
		require.Equal(t, true, end.fields["retryable"])
		got := requestJSON[taskbridge.TaskSnapshot](t, b, "GET", "/api/v1/tasks/"+id, "alice", nil, 200)
		require.Equal(t, taskbridge.StatusFailed, got.Status)
	})
}
