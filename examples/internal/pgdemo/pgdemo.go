// Package pgdemo opens the PostgreSQL store of the example commands.
package pgdemo

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskbridge-go/taskbridge/pgstore"
)

// Open opens a pgstore.Store in schema on a pool of its own and creates or
// upgrades its tables. release closes the store and then the pool.
func Open(ctx context.Context, url, schema string, log *slog.Logger) (_ *pgstore.Store, release func(), err error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, nil, fmt.Errorf("-postgres-url: %w", err)
	}
	store, err := pgstore.New(pool, pgstore.Config{Schema: schema, Logger: log})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	release = func() {
		_ = store.Close()
		pool.Close()
	}
	if _, err := store.Migrate(ctx); err != nil {
		release()
		return nil, nil, fmt.Errorf("creating the PostgreSQL tables: %w", err)
	}
	return store, release, nil
}
