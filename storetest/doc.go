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
// actions) and that callers cannot modify stored data through values they
// passed in or got back.
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
