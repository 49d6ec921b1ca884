package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/redisstore"
)

// openStore opens the store that the flags name and returns it with the
// function that closes it; a nil store means the server's default, in
// memory. A Redis that does not answer within timeout is an error, so
// that a misconfigured server stops at once.
func openStore(o options, log *slog.Logger, timeout time.Duration) (taskbridge.Store, func() error, error) {
	switch o.store {
	case "redis":
		opt, err := redis.ParseURL(o.redisURL)
		if err != nil {
			return nil, nil, fmt.Errorf("-redis-url: %w", err)
		}
		// The pool, which pipelines share, is every connection the
		// server opens besides the store's subscription connection.
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
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := rdb.Ping(ctx).Err(); err != nil {
			_ = rdb.Close()
			return nil, nil, fmt.Errorf("-store redis: %s does not answer: %w", opt.Addr, err)
		}
		store, err := redisstore.New(rdb, redisstore.Config{Prefix: o.redisPrefix, Logger: log})
		if err != nil {
			_ = rdb.Close()
			return nil, nil, err
		}
		return store, func() error { return errors.Join(store.Close(), rdb.Close()) }, nil
	}
	return nil, nil, nil
}
