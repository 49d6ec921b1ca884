package pgstore

import (
	"context"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one versioned step of the schema.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order. File names
// are NNNN_name.sql.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("pgstore: bad migration file name %q", e.Name())
		}
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("pgstore: migration versions are not 1..n: found %d at position %d", m.version, i+1)
		}
	}
	return out, nil
}

// LatestVersion is the schema version this package's migrations create.
func LatestVersion() int {
	ms, err := migrations()
	if err != nil {
		panic(err)
	}
	return len(ms)
}

// Migrate creates the store's schema and tables, or brings them up to date,
// and returns the schema version it left (see [LatestVersion]). It applies
// the embedded migrations that the schema's taskbridge_migrations table
// does not list yet, all in one transaction. It is idempotent, and safe
// when several processes call it at once: a transaction-level advisory
// lock keyed by the schema name serialises them, and the later calls find
// nothing left to do. Migrate fails when the schema was migrated by a newer
// version of this package.
func (s *Store) Migrate(ctx context.Context) (version int, err error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	ms, err := migrations()
	if err != nil {
		return 0, err
	}
	r := s.replacer()
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockKey(s.cfg.Schema)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, r.Replace(`
			CREATE SCHEMA IF NOT EXISTS {{schema}};
			CREATE TABLE IF NOT EXISTS {{schema}}.taskbridge_migrations (
				version    integer     PRIMARY KEY,
				name       text        NOT NULL,
				applied_at timestamptz NOT NULL DEFAULT now()
			)`)); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, r.Replace(
			"SELECT coalesce(max(version), 0) FROM {{schema}}.taskbridge_migrations")).Scan(&version); err != nil {
			return err
		}
		if version > len(ms) {
			return fmt.Errorf("schema %s is at version %d, newer than this package's %d", s.cfg.Schema, version, len(ms))
		}
		for _, m := range ms[version:] {
			if _, err := tx.Exec(ctx, r.Replace(m.sql)); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
			}
			if _, err := tx.Exec(ctx, r.Replace(
				"INSERT INTO {{schema}}.taskbridge_migrations (version, name) VALUES ($1, $2)"), m.version, m.name); err != nil {
				return err
			}
			version = m.version
		}
		return nil
	})
	if err != nil {
		return 0, dbError("migrate", err)
	}
	return version, nil
}

// migrationLockKey is the advisory lock key of schema's migrations.
func migrationLockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("taskbridge pgstore migrate\x00" + schema))
	return int64(h.Sum64())
}
