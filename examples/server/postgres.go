package main

import (
	"context"
	"log/slog"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/examples/internal/pgdemo"
)

// openPostgres opens a migrated PostgreSQL store on its own pool for
// -store postgres, and returns nil for the other stores (memory: the server
// makes its own). release frees what it opened.
func openPostgres(ctx context.Context, o options, log *slog.Logger) (_ taskbridge.Store, release func(), err error) {
	if o.store != "postgres" {
		return nil, func() {}, nil
	}
	return pgdemo.Open(ctx, o.postgresURL, o.postgresSchema, log)
}
