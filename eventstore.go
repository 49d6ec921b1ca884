package taskbridge

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
)

// EventStore is an append-only, per-task ordered event log. Implementations
// must be safe for concurrent use.
//
// The store assigns positions: the first event of a task gets Seq 1, every
// later one Seq = previous+1, under a lock or transaction so that concurrent
// appends never share or skip a number. EventID is always
// [FormatEventID](Seq). "After cursor c" means Seq > c: order is the append
// order, never a string comparison of ids.
type EventStore interface {
	// Append appends ev to the log of ev.TaskID and returns it with Seq and
	// EventID assigned. In the same atomic step it applies [NextStatus] to
	// the task, sets the task's Status, LastSeq and UpdatedAt
	// (= ev.CreatedAt) and, for a terminal event, moves the task's OPEN
	// suspensions to CANCELLED with ClosedAt = ev.CreatedAt.
	//
	// It fails with [ErrTaskNotFound] for an unknown task, [ErrTaskTerminal]
	// or [ErrInvalidTransition] when NextStatus refuses, and
	// [ErrInvalidEvent] when ev carries an EventID or Seq, has a zero
	// CreatedAt, an invalid type, or is TASK_SUSPENDED or
	// TASK_ACTION_ACCEPTED (those are appended by [SuspensionStore]).
	// After a successful append every watcher of the task is notified.
	//
	// When ev.IdempotencyKey is set and the task already has an event
	// appended with the same key, Append appends nothing, notifies nobody
	// and returns that earlier event (with its Seq, EventID and payload),
	// even when the task has become terminal since. Keys are compared byte
	// for byte, per task, and kept as long as the task. This makes a step
	// that may run twice (a retried workflow activity) append once.
	Append(ctx context.Context, ev TaskEvent) (TaskEvent, error)

	// Read returns up to limit (>= 1) events of the task with Seq > after, in
	// Seq order. after == 0 reads from the start of the retained log. It
	// fails with [ErrTaskNotFound] for an unknown task, [ErrInvalidCursor]
	// when after < 0 or after is beyond the task's last event, and
	// [ErrEventsExpired] when after >= 1 and events with Seq > after were
	// removed by retention.
	Read(ctx context.Context, taskID string, after int64, limit int) ([]TaskEvent, error)

	// Watch registers notify to be called after events are appended to
	// taskID, until stop is called. Every append that succeeds after Watch
	// returns is followed by at least one call; calls may be coalesced or
	// spurious, so the watcher re-reads the log, but appends to other tasks
	// do not call it. A task that does not exist yet may be watched.
	// notify must not block, call stop or call back into the store. stop is
	// idempotent, and no call starts after it returns.
	//
	// This is the only way live streams learn of new events: the fan-out
	// watches a task while it has subscribers, and reads the log after
	// every call (it watches first and reads after, so an append in
	// between is not missed). A call may come from any goroutine, including
	// the appender's, and calls for one watcher may overlap. A store shared
	// by several processes must call notify for appends made by any of
	// them (through LISTEN/NOTIFY, pub/sub or polling), or streams served
	// by one process will not see the events appended by another.
	Watch(taskID string, notify func()) (stop func())
}

// InlineReader is an optional [EventStore] extension for a store whose
// Read is served from memory, never blocks on I/O and may be called from
// inside a Watch callback (package memstore's). When the store implements
// it and InlineReads reports true, the fan-out hands a task's only
// subscriber its new events on the appending goroutine, and a transport
// that can write them without blocking (a hijacked SSE stream, a WebSocket)
// does so there, instead of waking the stream's goroutine for every event: the
// appender pays for the write, and a server with thousands of watched
// tasks keeps no queue of woken goroutines between an append and its
// socket. Stores that read over the network must not implement it.
type InlineReader interface {
	// InlineReads reports whether Read may be called from inside the
	// callback passed to Watch.
	InlineReads() bool
}

// EventLender is an optional [EventStore] extension for a store that keeps
// its events in memory (package memstore's): it lends the events Read
// would return instead of copying them, so that the fan-out encodes each
// event straight from the store's memory, without copying its payload or
// allocating the slice Read returns.
type EventLender interface {
	// LendEvents calls fn once with the events Read(ctx, taskID, after,
	// limit) would return, in order, and returns nil; when Read would
	// fail it returns Read's error without calling fn. The events are
	// lent: fn must not modify them, keep the slice or anything of the
	// events that refers to memory (their Payload) after it returns, or
	// call into the store, as it may run while the store holds a lock.
	LendEvents(ctx context.Context, taskID string, after int64, limit int, fn func([]TaskEvent)) error
}

// VettedAppender is an optional [EventStore] extension for a store that
// lends its events ([EventLender]) and vouches for their payloads: every
// payload it lends is empty or valid, compact JSON. The service appends the
// events whose payloads it encoded itself with AppendVetted, which the store
// takes as they are; the store checks those given to Append (and to its
// SuspensionStore methods) itself, refusing invalid JSON with
// [ErrInvalidEvent] and compacting the rest. The fan-out then encodes a lent
// event without checking its payload again: for a task's only subscriber
// that check was a sixth of a delivery. Package memstore's store implements
// it; package storetest checks the promise.
//
// The service relies on it only when VettedStore returns the very store it
// was given. A type that embeds a vouching store gets these methods
// promoted, and the service then treats it as any other store: it calls the
// type's own Append (a wrapper that counts, audits or fails appends is never
// bypassed) and checks what it lends. A wrapper that leaves appends and
// reads to the store it embeds keeps the saving by declaring its own
// VettedStore that returns itself.
type VettedAppender interface {
	// AppendVetted is Append for an event whose Payload is valid, compact
	// JSON (as [EncodePayload] makes it).
	AppendVetted(ctx context.Context, ev TaskEvent) (TaskEvent, error)
	// VettedStore returns the store these methods belong to: the receiver
	// itself.
	VettedStore() EventStore
}

// vettedAppender returns store as a VettedAppender when it is one itself,
// not through a store it embeds (see VettedAppender), and nil otherwise.
func vettedAppender(store EventStore) VettedAppender {
	va, ok := store.(VettedAppender)
	if !ok {
		return nil
	}
	// Interfaces holding one type compare its values, which panics for a
	// type that is not comparable.
	self, t := va.VettedStore(), reflect.TypeOf(store)
	if reflect.TypeOf(self) != t || !t.Comparable() || self != store {
		return nil
	}
	return va
}

// FormatEventID returns the wire event id for position seq.
func FormatEventID(seq int64) string { return strconv.FormatInt(seq, 10) }

// ParseEventID parses a client cursor. "" and "0" mean "from the start". Any
// other value must be an id produced by [FormatEventID]; anything else fails
// with an error wrapping [ErrInvalidCursor].
func ParseEventID(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != s {
		return 0, fmt.Errorf("%w: %q is not an event id", ErrInvalidCursor, truncate(s, 64))
	}
	return n, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
