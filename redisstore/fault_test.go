package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/redisstore"
	"github.com/taskbridge-go/taskbridge/storetest"
)

// follow reads a task's events as a stream handler does: it watches the
// task and reads after every wake-up, until it has every event up to last.
// A failed read (Redis is down) is retried at the next wake-up, which the
// store gives when its subscription comes back. seen is called with the
// newest Seq read.
func follow(ctx context.Context, s *redisstore.Store, taskID string, last int64, seen func(int64)) ([]taskbridge.TaskEvent, error) {
	wake := make(chan struct{}, 1)
	stop := s.Watch(taskID, func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	defer stop()
	var got []taskbridge.TaskEvent
	after := int64(0)
	for after < last {
		evs, err := s.Read(ctx, taskID, after, 100)
		if err == nil && len(evs) > 0 {
			got = append(got, evs...)
			after = evs[len(evs)-1].Seq
			seen(after)
			continue
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return got, ctx.Err()
		}
	}
	return got, nil
}

// following runs follow in a goroutine. It returns a channel that is closed
// once the follower has read up to upTo, and one that yields its result.
func following(ctx context.Context, s *redisstore.Store, taskID string, last, upTo int64) (<-chan struct{}, <-chan []taskbridge.TaskEvent, <-chan error) {
	reached := make(chan struct{})
	var once sync.Once
	evs, errs := make(chan []taskbridge.TaskEvent, 1), make(chan error, 1)
	go func() {
		got, err := follow(ctx, s, taskID, last, func(seq int64) {
			if seq >= upTo {
				once.Do(func() { close(reached) })
			}
		})
		evs <- got
		errs <- err
	}()
	return reached, evs, errs
}

// appendMessages appends TASK_MESSAGE events from Seq from to to.
func appendMessages(ctx context.Context, t *testing.T, s *redisstore.Store, taskID string, from, to int64) {
	t.Helper()
	for seq := from; seq <= to; seq++ {
		ev, err := s.Append(ctx, storetest.NewEvent(taskID, taskbridge.MessagePayload{Message: fmt.Sprint(seq)}, storetest.BaseTime))
		require.NoError(t, err)
		require.Equal(t, seq, ev.Seq)
	}
}

func startTask(ctx context.Context, t *testing.T, s *redisstore.Store, taskID string) {
	t.Helper()
	_, _, err := s.CreateTask(ctx, storetest.NewTask(taskID, "alice", taskID, storetest.BaseTime))
	require.NoError(t, err)
	_, err = s.Append(ctx, storetest.NewEvent(taskID, taskbridge.StartedPayload{}, storetest.BaseTime))
	require.NoError(t, err)
}

// requireAll requires evs to be the events 1..last, each once, in order.
func requireAll(t *testing.T, evs []taskbridge.TaskEvent, last int64) {
	t.Helper()
	want := make([]int64, last)
	for i := range want {
		want[i] = int64(i + 1)
	}
	require.Equal(t, want, seqs(evs))
}

func TestSubscriptionConnectionKilled(t *testing.T) {
	t.Parallel()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "tbtest-" + hex.EncodeToString(b[:])
	opts := redisOptions(t)
	opts.ClientName = name
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	s := openStore(t, rdb, redisstore.Config{Prefix: uniquePrefix(t, rdb)})
	ctx, cancel := context.WithTimeout(t.Context(), 2*waitTimeout)
	defer cancel()

	startTask(ctx, t, s, "task-1")
	ctl := newSignal()
	defer s.WatchControl(ctl.notifyID)()
	reached, result, errs := following(ctx, s, "task-1", 40, 20)
	appendMessages(ctx, t, s, "task-1", 2, 20)
	<-reached

	id := subscriptionConn(ctx, t, rdb, name)
	require.NotEmpty(t, id, "the store's subscription connection is in CLIENT LIST")
	require.NoError(t, rdb.ClientKillByFilter(ctx, "ID", id).Err())
	appendMessages(ctx, t, s, "task-1", 21, 40)

	evs := <-result
	require.NoError(t, <-errs, "the follower got every event after the kill")
	requireAll(t, evs, 40)
	require.Equal(t, "", ctl.wait(t, "for the control watcher after the reconnection"),
		"control watchers are told that anything may have changed")
	again := subscriptionConn(ctx, t, rdb, name)
	require.NotEmpty(t, again)
	require.NotEqual(t, id, again, "a new subscription connection")
	require.NoError(t, s.CheckReady(ctx))
}

func TestRedisRestart(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	rdb := srv.client(redis.Options{})
	s := openStore(t, rdb, redisstore.Config{Prefix: "tb"})
	ctx, cancel := context.WithTimeout(t.Context(), 4*waitTimeout)
	defer cancel()

	startTask(ctx, t, s, "task-1")
	reached, result, errs := following(ctx, s, "task-1", 30, 10)
	appendMessages(ctx, t, s, "task-1", 2, 10)
	<-reached
	require.NoError(t, s.CheckReady(ctx))

	srv.stop()
	_, err := s.Append(ctx, storetest.NewEvent("task-1", taskbridge.MessagePayload{Message: "lost"}, storetest.BaseTime))
	require.Error(t, err, "appending while Redis is down fails")
	require.ErrorContains(t, err, "redisstore: append")
	require.NotErrorIs(t, err, taskbridge.ErrTaskNotFound)
	_, err = s.Read(ctx, "task-1", 0, 10)
	require.Error(t, err)
	require.Error(t, s.CheckReady(ctx), "not ready while Redis is down")
	status, code, _ := taskbridge.HTTPError(err)
	require.Equal(t, 500, status)
	require.Equal(t, taskbridge.CodeInternal, code)

	srv.start()
	appendMessages(ctx, t, s, "task-1", 11, 30)
	evs := <-result
	require.NoError(t, <-errs, "the follower got every event after the restart")
	requireAll(t, evs, 30)
	require.NoError(t, s.CheckReady(ctx), "ready again")
}

// TestConnectionsPerProcess checks that the store holds one subscription
// connection however many tasks are watched: with 5,000 watchers and more
// concurrent calls than connections, the server sees at most the pool
// (PoolSize, capped by MaxActiveConns, pipelines included) and the
// subscription connection.
func TestConnectionsPerProcess(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	const pool, n = 4, 5000
	rdb := srv.client(redis.Options{PoolSize: pool, MaxActiveConns: pool, PipelinePoolSize: -1})
	s := openStore(t, rdb, redisstore.Config{Prefix: "tb"})
	ctx := t.Context()

	sigs := make([]*signal, n)
	stops := make([]func(), n)
	var wg sync.WaitGroup
	for g := range 50 {
		wg.Go(func() {
			for i := g; i < n; i += 50 {
				sigs[i] = newSignal()
				stops[i] = s.Watch(fmt.Sprint("task-", i), sigs[i].notify)
			}
		})
	}
	wg.Wait()
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	subscribed, err := rdb.PubSubChannels(ctx, "tb:*").Result()
	require.NoError(t, err)
	require.Len(t, subscribed, n, "one channel per watched task")

	// Work while everyone watches: tasks created and appended to
	// concurrently wake exactly their watchers.
	for i := 0; i < n; i += 250 {
		wg.Go(func() {
			id := fmt.Sprint("task-", i)
			_, _, err := s.CreateTask(ctx, storetest.NewTask(id, "alice", id, storetest.BaseTime))
			if err == nil {
				_, err = s.Append(ctx, storetest.NewEvent(id, taskbridge.StartedPayload{}, storetest.BaseTime))
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := 0; i < n; i += 250 {
		sigs[i].wait(t, fmt.Sprint("for task-", i))
	}
	require.Zero(t, sigs[1].calls.Load(), "a task nobody appended to is not woken")

	// Busy: 40 goroutines read and append while the connections are
	// counted, so the pool is exhausted.
	busy, cancel := context.WithCancel(ctx)
	for g := range 40 {
		wg.Go(func() {
			id := fmt.Sprint("task-", (g%20)*250)
			for busy.Err() == nil {
				if _, err := s.Read(busy, id, 0, 100); err != nil && busy.Err() == nil {
					t.Error(err)
				}
				if _, err := s.Append(busy, storetest.NewEvent(id, taskbridge.MessagePayload{Message: "busy"}, storetest.BaseTime)); err != nil && busy.Err() == nil {
					t.Error(err)
				}
			}
		})
	}
	most := 0
	for range 20 {
		most = max(most, connectedClients(ctx, t, rdb))
	}
	cancel()
	wg.Wait()
	t.Logf("connected_clients with %d watchers, 40 busy goroutines and a pool of %d: at most %d", n, pool, most)
	require.LessOrEqual(t, most, pool+1)
}
