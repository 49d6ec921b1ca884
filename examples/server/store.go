package main

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/redisstore"
)

// openRedis opens a Redis store on its own client for -store redis, and
// returns nil for the other stores. A Redis that does not answer is an
// error, so that a misconfigured server stops at once. release frees what
// it opened.
func openRedis(ctx context.Context, o options, log *slog.Logger) (_ taskbridge.Store, release func(), err error) {
	if o.store != "redis" {
		return nil, func() {}, nil
	}
	opt, err := redis.ParseURL(o.redisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("-redis-url: %w", err)
	}
	// The pool, which pipelines share, is every connection the server
	// opens besides the store's one subscription connection.
	if opt.PoolSize == 0 {
		opt.PoolSize = 10 * runtime.GOMAXPROCS(0)
	}
	if opt.MaxActiveConns == 0 {
		opt.MaxActiveConns = opt.PoolSize
	}
	if opt.PipelinePoolSize == 0 {
		opt.PipelinePoolSize = -1
	}
	rdb := redis.NewClient(opt)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, nil, fmt.Errorf("-store redis: %s does not answer: %w", opt.Addr, err)
	}
	store, err := redisstore.New(rdb, redisstore.Config{Prefix: o.redisPrefix, Logger: log})
	if err != nil {
		_ = rdb.Close()
		return nil, nil, err
	}
	return store, func() {
		_ = store.Close()
		_ = rdb.Close()
	}, nil
}
