// Package pgstore is a PostgreSQL [taskbridge.Store] built on pgx: task
// state next to an application's own data, shared by every replica of the
// application.
//
// # Setup
//
// The store takes a *pgxpool.Pool that the caller owns (the store never
// closes it) and keeps its tables in one schema ([Config].Schema, default
// "taskbridge"). Create or upgrade them with [Store.Migrate]: the SQL is
// embedded and versioned, and concurrent calls from several replicas are
// serialised by an advisory lock.
//
//	store, err := pgstore.New(pool, pgstore.Config{})
//	if _, err := store.Migrate(ctx); err != nil { ... }
//	defer store.Close()
//
// # Consistency
//
// Each append is one statement (a PL/pgSQL function): it locks the task's
// row, answers a repeated idempotency key with the earlier event, applies
// [taskbridge.NextStatus], assigns the next Seq (so Seqs are gapless per
// task) and updates the task. Creates are atomic per (owner,
// clientRequestId) through a unique constraint; actions are accepted in one
// transaction that locks the task and the suspension.
//
// # Transactions of the host
//
// [Store.AppendTx] and [Store.CreateTaskTx] take the application's pgx.Tx,
// so it can write its own rows and a task event in one transaction (the
// outbox pattern). Subscribers are woken when that transaction commits.
//
// # Wake-ups
//
// Appends notify a channel with pg_notify, which PostgreSQL delivers on
// commit. Each Store holds one dedicated LISTEN connection (opened on the
// first Watch, named by [Config].ListenerName in pg_stat_activity) and
// calls the watchers of the notified task; nobody polls. When that
// connection drops, the store reconnects and then calls every watcher, so
// that each re-reads what it may have missed. Control changes (first
// cancel requests, accepted actions) go through a second channel to
// [Store.WatchControl].
//
// # Retention
//
// [taskbridge.Service.Prune] deletes finished tasks through
// [Store.DeleteTerminalTasks], or [Store.PruneTerminalTasks] to discard
// their uploaded files too. The store also implements the other optional
// interfaces: [Store.GetTaskHead] reads a task without its input, and
// [Store.CreateLiveTask] makes [taskbridge.Config].MaxLiveTasksPerOwner
// exact across processes. [Config].MaxEventsPerTask caps each task's
// log and [Store.TrimEvents] trims one task's log; a cursor into removed
// history fails with [taskbridge.ErrEventsExpired] (410 EVENTS_EXPIRED).
//
// Times are stored with microsecond precision.
package pgstore
