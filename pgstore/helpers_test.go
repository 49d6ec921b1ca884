package pgstore_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge/pgstore"
	"github.com/taskbridge-go/taskbridge/pgstore/pgtest"
)

// db is one test's private schema on the shared database.
type db struct{ *pgtest.DB }

// newDB creates a private schema (not migrated yet), dropped when the test
// ends.
func newDB(t *testing.T) *db {
	t.Helper()
	return &db{pgtest.NewDB(t, "tbtest", 4)}
}

// store opens a migrated store on the schema over pool, closed when the
// test ends. The listener is named after the schema, so tests can find it.
func (d *db) store(t *testing.T, pool *pgxpool.Pool, cfg pgstore.Config) *pgstore.Store {
	t.Helper()
	cfg.Schema = d.Schema
	if cfg.ListenerName == "" {
		cfg.ListenerName = "listener-" + d.Schema
	}
	s, err := pgstore.New(pool, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	_, err = s.Migrate(t.Context())
	require.NoError(t, err)
	return s
}

// newStore returns a migrated store on a new private schema.
func newStore(t *testing.T, cfg pgstore.Config) *pgstore.Store {
	t.Helper()
	d := newDB(t)
	return d.store(t, d.Pool, cfg)
}
