// Package storetest is the conformance suite for [taskbridge.Store]
// implementations, in the spirit of testing/slogtest: every store (the
// memstore package, and Redis or PostgreSQL stores in their own modules)
// calls [Run] from its own tests and must pass it.
//
// [Run] checks every rule of the TaskRegistry, EventStore and
// SuspensionStore doc comments: create idempotency, newest-first listing and
// paging, cancellation requests, sequence assignment and the task state
// machine, strictly-after reads and cursor errors, expired cursors, watch
// notifications, suspensions and the action decision table, the maintenance
// operations, concurrency (racing creates, appends, terminal events and
// actions), idempotent appends (IdempotencyKey) and that callers cannot
// modify stored data through values they passed in or got back. Listing is
// checked with 10,000 tasks across 25 owners, created concurrently. Stores
// that implement [taskbridge.LeaseStore] and [taskbridge.ControlFeed] are
// checked against those contracts too, and so are the optional interfaces
// (taskbridge.EventLender, VettedAppender, TaskHeadGetter,
// TerminalTaskPruner, LiveTaskCreator); their subtests are skipped for
// stores that lack them.
//
// Stores shared by several processes set [Harness].Replica, which opens a
// second handle on the same backend. The multi-replica section then checks
// that the two handles behave as one store (create and accept races,
// idempotent appends, watches, control notifications and lease takeovers
// across them) and runs two [taskbridge.Service]s with leased runners
// (package runner) over them: a task created on one replica streams on the
// other, a cancel or an action received by one reaches the handler running
// on the other through the control feed, a replica cut off from the store
// has its task taken over by the other with exactly one terminal event (or
// run again, for re-runnable types), and a client resumes by cursor after
// every replica restarted.
//
// The stress section runs seeded randomized scenarios: eight workers spread
// over the handles create tasks under shared client request ids, append
// events of every kind (some under shared idempotency keys), open
// suspensions (some soon to expire) and submit actions to them, read from
// random cursors, request cancellations, take, renew and release leases
// (some short enough to expire and pass between holders) and delete tasks
// that ended a while ago, all at once, while a watcher per task on another
// handle follows its log. Afterwards it checks what no interleaving may
// break (one task per request id at a time, deleted tasks finished and
// gone everywhere, gapless logs equal through every handle, the task state
// machine, every successful write in the log as it was returned and
// nothing else, one accepted action per suspension, one lease holder at a
// time, every watcher at the end of its log, every control change on
// every handle's control feed). It runs 3 seeds; set
// TASKBRIDGE_STRESS_SEEDS (say, to 300) for a long run and
// TASKBRIDGE_STRESS_SEED to run one seed again.
//
// A store wires it up in a test:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Harness{
//			New: func(t *testing.T) taskbridge.Store {
//				s := mystore.New(...)
//				t.Cleanup(func() { s.Close() })
//				return s
//			},
//			Trim: func(t *testing.T, s taskbridge.Store, taskID string, keepLast int) {
//				require.NoError(t, s.(*mystore.Store).TrimEvents(taskID, keepLast))
//			},
//			Replica: func(t *testing.T, s taskbridge.Store) taskbridge.Store {
//				other := mystore.New(...) // new connections, same database and prefix as s
//				t.Cleanup(func() { other.Close() })
//				return other
//			},
//		})
//	}
//
// Timestamps in the suite are built from [BaseTime] and are whole
// microseconds in UTC; comparisons ignore time zones and the formatting of
// JSON values, so stores that round-trip through a database pass as long as
// they keep instants and JSON content.
//
// The constructors [NewTask], [NewEvent], [NewSuspension] and [NewAttempt]
// build valid inputs, for the suite and for a store's own tests.
package storetest
