package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/pgstore"
)

// openPostgres opens a migrated PostgreSQL store on its own pool for
// -store postgres, and returns nil for the other stores (memory: the server
// makes its own). release frees what it opened.
func openPostgres(ctx context.Context, o options, log *slog.Logger) (_ taskbridge.Store, release func(), err error) {
	if o.store != "postgres" {
		return nil, func() {}, nil
	}
	pool, err := pgxpool.New(ctx, o.postgresURL)
	if err != nil {
		return nil, nil, fmt.Errorf("-postgres-url: %w", err)
	}
	store, err := pgstore.New(pool, pgstore.Config{Schema: o.postgresSchema, Logger: log})
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
