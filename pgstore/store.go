package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/taskbridge-go/taskbridge"
)

// Config configures a [Store]. A zero field means its default.
type Config struct {
	// Schema is the PostgreSQL schema that holds the store's tables, so
	// that several stores (or tests) can share one database. [Store.Migrate]
	// creates it. Defaults to "taskbridge".
	Schema string

	// MaxEventsPerTask caps each task's retained log: when positive, an
	// append that makes a task's log longer removes its oldest events, and
	// reading from a cursor older than the retained log fails with
	// [taskbridge.ErrEventsExpired]. Events appended with an idempotency
	// key are kept (unread) so that their keys keep deduplicating. Zero
	// keeps every event.
	MaxEventsPerTask int

	// ListenerName is the application_name of the store's LISTEN
	// connection, as pg_stat_activity shows it. Defaults to
	// "taskbridge-listener".
	ListenerName string

	// ReconnectDelay is the first wait before the LISTEN connection is
	// opened again after it failed; it doubles after each failure up to
	// 5s. Defaults to 100ms.
	ReconnectDelay time.Duration

	// Logger receives the listener's connection errors. Defaults to
	// slog.Default().
	Logger *slog.Logger
}

// DefaultSchema is the schema used when [Config].Schema is empty.
const DefaultSchema = "taskbridge"

// Store is a PostgreSQL [taskbridge.Store]. It also implements
// [taskbridge.ReadinessProbe], [taskbridge.ControlFeed] and
// [taskbridge.LeaseStore]. Create it with [New] and create its tables with
// [Store.Migrate]. It is safe for concurrent use.
type Store struct {
	pool      *pgxpool.Pool
	cfg       Config
	schema    string // quoted identifier
	q         [numQueries]string
	eventsCh  string
	controlCh string
	maxEvents int64
	log       *slog.Logger

	closed   atomic.Bool
	lis      *listener
	notifier *notifier
}

// Interface checks.
var (
	_ taskbridge.Store          = (*Store)(nil)
	_ taskbridge.ReadinessProbe = (*Store)(nil)
	_ taskbridge.ControlFeed    = (*Store)(nil)
	_ taskbridge.LeaseStore     = (*Store)(nil)

	_ taskbridge.TaskHeadGetter     = (*Store)(nil)
	_ taskbridge.TerminalTaskPruner = (*Store)(nil)
	_ taskbridge.LiveTaskCreator    = (*Store)(nil)
)

// New returns a store over pool. The store never closes pool: the caller
// owns it. New does not touch the database; call [Store.Migrate] before
// the first use. The LISTEN connection is opened (outside the pool, with
// the pool's connection settings) on the first Watch or WatchControl.
func New(pool *pgxpool.Pool, cfg Config) (*Store, error) {
	if pool == nil {
		return nil, errors.New("pgstore: New needs a pool")
	}
	if cfg.Schema == "" {
		cfg.Schema = DefaultSchema
	}
	if len(cfg.Schema) > 63 || strings.ContainsRune(cfg.Schema, 0) {
		return nil, fmt.Errorf("pgstore: Config.Schema %q is not a valid PostgreSQL name (at most 63 bytes)", cfg.Schema)
	}
	if cfg.MaxEventsPerTask < 0 {
		cfg.MaxEventsPerTask = 0
	}
	if cfg.ListenerName == "" {
		cfg.ListenerName = "taskbridge-listener"
	}
	if cfg.ReconnectDelay <= 0 {
		cfg.ReconnectDelay = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Store{
		pool:      pool,
		cfg:       cfg,
		schema:    pgx.Identifier{cfg.Schema}.Sanitize(),
		eventsCh:  channelName("taskbridge_events", cfg.Schema),
		controlCh: channelName("taskbridge_control", cfg.Schema),
		maxEvents: int64(cfg.MaxEventsPerTask),
		log:       cfg.Logger,
	}
	r := s.replacer()
	for i, text := range queryTexts {
		s.q[i] = r.Replace(text)
	}
	s.lis = newListener(s)
	s.notifier = newNotifier(s)
	return s, nil
}

// replacer fills the placeholders of the SQL texts.
func (s *Store) replacer() *strings.Replacer {
	return strings.NewReplacer(
		"{{schema}}", s.schema,
		"{{schema_literal}}", quoteLiteral(s.cfg.Schema),
		"{{events_channel}}", quoteLiteral(s.eventsCh),
		"{{control_channel}}", quoteLiteral(s.controlCh),
	)
}

// channelName returns the NOTIFY channel of kind for schema: kind:schema,
// or kind: and a hash of schema when that would not fit in a PostgreSQL
// name.
func channelName(kind, schema string) string {
	name := kind + ":" + schema
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(schema))
	return kind + ":" + hex.EncodeToString(sum[:16])
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// Schema returns the schema the store uses.
func (s *Store) Schema() string { return s.cfg.Schema }

// CheckReady implements [taskbridge.ReadinessProbe]: the store is ready
// when the database answers and, once watching started, the LISTEN
// connection is up (without it, waiters would not wake). After
// [Store.Close] it reports [taskbridge.ErrClosed].
func (s *Store) CheckReady(ctx context.Context) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("pgstore: database unreachable: %w", err)
	}
	return s.lis.ready()
}

// Close stops the LISTEN connection and closes the store: every later call
// of a method fails with [taskbridge.ErrClosed], and every watcher is
// called one last time (so that waiters wake up and observe the closed
// store) and released. It does not close the pool. Close is idempotent and
// returns nil.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.notifier.close()
	s.lis.close()
	return nil
}

func (s *Store) check() error {
	if s.closed.Load() {
		return taskbridge.ErrClosed
	}
	return nil
}

// querier is what a pool, a connection and a transaction have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// inTx runs fn in a transaction on the pool.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

func taskNotFound(id string) error {
	return fmt.Errorf("%w: %q", taskbridge.ErrTaskNotFound, id)
}

func invalidRequest(format string, args ...any) error {
	return fmt.Errorf("%w: pgstore: %s", taskbridge.ErrInvalidRequest, fmt.Sprintf(format, args...))
}

// dbError wraps an error of the database for operation op. Context errors
// stay recognisable with errors.Is.
func dbError(op string, err error) error {
	return fmt.Errorf("pgstore: %s: %w", op, err)
}

// isUniqueViolation reports whether err is a unique violation of the named
// constraint (any constraint when name is "").
func isUniqueViolation(err error, name string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && (name == "" || pe.ConstraintName == name)
}
