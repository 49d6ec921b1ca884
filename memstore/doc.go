// Package memstore is the in-memory [taskbridge.Store]: tasks, event logs,
// suspensions and action receipts kept in process memory. It is the default
// store for tests, demos and single-process deployments, and the store the
// benchmarks run on. Nothing survives a restart.
//
// The store is safe for concurrent use and built for throughput: every task
// has its own lock, so appends, reads and watches of different tasks never
// contend; a read copies only the events it returns; and watchers are called
// synchronously by the appending goroutine after the task's lock is released,
// with no allocation per notification. An appended event's payload is
// copied into a buffer of its task's (blocks of up to 4 KiB), so appends
// allocate about once per block rather than once per event. Each owner's tasks are indexed by
// creation, so listing an owner's tasks costs the page, not the store
// (O(log n + page)), and adding a task copies at most a small part of the
// index, even when many are created in one millisecond. Terminal tasks,
// receipts, open suspensions with a deadline, accepted suspensions awaiting
// their resume and held leases are kept ordered by time, so the maintenance
// operations (DeleteTerminalTasks, DeleteReceipts, ExpireSuspensions,
// ListPendingResumes, ExpiredLeases) cost the records they handle, not a
// scan of the store.
//
// Everything the store returns is a deep copy, and everything it is given is
// copied before it is kept, so callers may modify their values freely.
//
// Retention is optional: with [Config].MaxEventsPerTask set, each task keeps
// only its newest events, and a cursor older than the retained log fails
// with [taskbridge.ErrEventsExpired]. [Store.TrimEvents] trims one task's log
// on demand.
//
// The store also implements [taskbridge.LeaseStore] and
// [taskbridge.ControlFeed] for the one process that holds it, so that an
// executor with leases (package runner) and the service's control relay run
// the same code over memory as over a store shared by several processes.
// Appends honour [taskbridge.TaskEvent].IdempotencyKey; keys are kept for
// as long as their task, retention notwithstanding.
//
// After [Store.Close] every method fails with [taskbridge.ErrClosed] and the
// store reports itself not ready ([Store.CheckReady]).
//
// The storetest package checks the store against the [taskbridge.Store]
// contract.
package memstore
