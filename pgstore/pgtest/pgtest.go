// Package pgtest gives tests a PostgreSQL database: the URL from the
// environment (with the project's skip-or-require rule), pools that are
// closed when the test ends, and private schemas that are dropped.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// URLEnv names the environment variable that holds the database URL, for
// example postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
const URLEnv = "TASKBRIDGE_POSTGRES_URL"

// RequireEnv names the environment variable that, set to 1, turns a
// missing database into a test failure instead of a skip (CI sets it).
const RequireEnv = "TASKBRIDGE_REQUIRE_SERVICES"

// URL returns the database URL from [URLEnv]. When it is unset the test is
// skipped, or fails if [RequireEnv] is 1.
func URL(t testing.TB) string {
	t.Helper()
	url := os.Getenv(URLEnv)
	if url == "" {
		Unavailable(t, URLEnv+" is not set")
	}
	return url
}

// Unavailable skips t because a dependency is missing, or fails it when
// [RequireEnv] is 1.
func Unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("pgtest: %s, and %s=1 requires it", why, RequireEnv)
	}
	t.Skipf("pgtest: %s; skipping PostgreSQL tests", why)
}

// Pool opens a pool on url with at most maxConns connections (4 when
// maxConns < 1) and closes it when the test ends.
func Pool(t testing.TB, url string, maxConns int) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("pgtest: parsing %s: %v", URLEnv, err)
	}
	if maxConns < 1 {
		maxConns = 4
	}
	cfg.MaxConns = int32(maxConns)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgtest: connecting: %v", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		t.Fatalf("pgtest: PostgreSQL at %s does not answer: %v", URLEnv, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// SchemaName returns a new random schema name starting with prefix.
func SchemaName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

// DropSchema drops schema (and everything in it) through pool when the test
// ends. Register it before the pool's own cleanup runs, that is after
// [Pool]: cleanups run last-registered first.
func DropSchema(t testing.TB, pool *pgxpool.Pool, schema string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("pgtest: dropping schema %s: %v", schema, err)
		}
	})
}

// DB is a test's private schema on the database of [URLEnv].
type DB struct {
	// URL is the database URL, for more pools.
	URL string
	// Pool is a pool of up to maxConns connections, closed when the test
	// ends.
	Pool *pgxpool.Pool
	// Schema is the private schema's name; it does not exist until
	// something creates it, and is dropped when the test ends.
	Schema string
}

// NewDB returns a new schema name starting with prefix and a pool, with the
// skip-or-require rule of [URL].
func NewDB(t testing.TB, prefix string, maxConns int) *DB {
	t.Helper()
	url := URL(t)
	pool := Pool(t, url, maxConns)
	schema := SchemaName(prefix)
	DropSchema(t, pool, schema)
	return &DB{URL: url, Pool: pool, Schema: schema}
}
