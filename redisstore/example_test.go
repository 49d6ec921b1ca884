package redisstore_test

import (
	"context"
	"log"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/redisstore"
)

// exampleExecutor stands in for the host's executor (the runner package, a
// job queue).
type exampleExecutor struct{}

func (exampleExecutor) Submit(context.Context, taskbridge.Task, taskbridge.Emitter) error { return nil }
func (exampleExecutor) Cancel(context.Context, taskbridge.Task) error                     { return nil }

// The store is shared by every replica that opens it with the same client
// settings and prefix. It does not close the client.
func Example() {
	// PoolSize, capped by MaxActiveConns and shared with pipelines, is
	// every connection the store uses besides its subscription connection.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", PoolSize: 20, MaxActiveConns: 20, PipelinePoolSize: -1})
	defer rdb.Close()

	store, err := redisstore.New(rdb, redisstore.Config{
		Prefix:      "myapp",
		MaxLen:      10_000,         // keep about the newest 10,000 events per task
		FinishedTTL: 24 * time.Hour, // delete finished tasks a day after they ended
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	// The service's readiness (GET /ready) includes the store's: PING, and
	// the subscription connection that wakes streams is up.
	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: exampleExecutor{}})
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Shutdown(context.Background())
}
