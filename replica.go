package taskbridge

import (
	"context"
	"time"
)

// Several processes ("replicas") may serve one application over one durable
// store, behind a load balancer: a client's create, stream, cancel or action
// may reach any of them. Three optional interfaces make that safe. A store
// shared between processes implements [ControlFeed] and [LeaseStore]; an
// executor that runs tasks inside the process (package runner) implements
// [LocalExecutor]. The in-memory store implements them too, for a single
// process, so every store is tested against the same contract (see the
// storetest package).
//
// Events need nothing extra: [EventStore.Watch] already wakes the watchers of
// every process, so a stream on one replica follows a task that runs on
// another.

// ControlFeed tells every process sharing a store about control changes
// recorded by any of them, so that the process running a task can act on
// them at once. A control change is a first cancel request
// ([TaskRegistry.RequestCancel] returned first=true) or an accepted action
// ([SuspensionStore.AcceptAction] returned ACCEPTED). The feed is pushed
// (pub/sub, LISTEN/NOTIFY), never polled.
//
// Stores shared between processes implement it; [Service] relays its
// notifications to a [LocalExecutor].
type ControlFeed interface {
	// WatchControl registers notify to be called with the task's id after
	// a control change of any task, in every process watching, until stop
	// is called. A change that completes after WatchControl returns is
	// followed by at least one call. Calls may be duplicated or spurious:
	// the watcher re-reads what it needs. When the feed may have missed
	// changes (its connection dropped and came back), notify is called with
	// "": anything may have changed meanwhile. notify must not block, call
	// stop or call back into the store. stop is idempotent, and no call
	// starts after it returns.
	WatchControl(notify func(taskID string)) (stop func())
}

// Lease is a process's claim on running a task. Exactly one holder at a time
// can have an unexpired lease on a task.
type Lease struct {
	// TaskID is the leased task.
	TaskID string
	// Holder identifies the process that holds the lease (a replica id).
	Holder string
	// ExpiresAt is when the lease ends unless renewed. A lease with
	// ExpiresAt <= now may be taken by another holder.
	ExpiresAt time.Time
}

// Expired reports whether the lease has ended at now.
func (l Lease) Expired(now time.Time) bool { return !now.Before(l.ExpiresAt) }

// LeaseStore keeps leases on tasks, so that a task runs in one process at a
// time and a task whose process died can be taken over. Times are the
// callers' clocks (the service clock of each replica): leases assume that
// the replicas' clocks agree to well within a lease's TTL. AcquireLease and
// RenewLease fail with [ErrTaskNotFound] for an unknown task; every method
// fails with [ErrInvalidRequest] for an empty holder, a ttl that is not
// positive or a limit below 1.
//
// A lease ends with its task: once the task is terminal it has no holder
// (RenewLease fails, ExpiredLeases leaves it out), and
// [TaskRegistry.DeleteTerminalTasks] removes whatever the store kept of it.
type LeaseStore interface {
	// AcquireLease gives holder the lease on a non-terminal task until
	// now+ttl, atomically, if no other holder has an unexpired one: when
	// nobody holds it, when the current lease has expired at now, or when
	// holder holds it already (then it is extended). It returns the lease
	// and acquired=true, or the other holder's unexpired lease and
	// acquired=false. It fails with [ErrTaskTerminal] for a terminal task.
	AcquireLease(ctx context.Context, taskID, holder string, now time.Time, ttl time.Duration) (l Lease, acquired bool, err error)

	// RenewLease extends holder's lease to now+ttl. It fails with
	// [ErrLeaseLost] when holder does not hold the lease (another holder
	// took it, it was released, or the task became terminal). A lease that
	// expired but was not taken by anyone is still holder's and is renewed.
	RenewLease(ctx context.Context, taskID, holder string, now time.Time, ttl time.Duration) (Lease, error)

	// ReleaseLease gives up holder's lease, so that the task has no
	// holder (and is not listed by ExpiredLeases). Releasing a lease
	// holder does not hold, or of an unknown or deleted task, does nothing
	// and returns nil.
	ReleaseLease(ctx context.Context, taskID, holder string) error

	// ExpiredLeases returns up to limit leases of non-terminal tasks that
	// have expired at now (ExpiresAt <= now), earliest ExpiresAt first.
	// Released leases are not listed. It reads an index: its cost does not
	// grow with the number of tasks whose leases are live.
	ExpiredLeases(ctx context.Context, now time.Time, limit int) ([]Lease, error)
}

// LocalExecutor is implemented by executors that run tasks inside this
// process, as the runner package does. When the store is a [ControlFeed],
// the [Service] relays every control change recorded by any process to the
// executor of the process that holds the task: [TaskExecutor.Cancel] for a
// cancel request, [Resumer.Resume] for an accepted action whose hand-off is
// still PENDING. Executors that hand work to a cluster-wide system (a job
// queue, a workflow engine) do not implement it: their Cancel and Resume
// already reach the task wherever it runs.
//
// The relay is one goroutine per Service, started by [New] and stopped by
// [Service.Shutdown]. It coalesces bursts of notifications and, on a
// notification for "" (the feed may have missed changes), looks at every
// task in HeldTasks. A Service with a relay also looks at a task once more
// right after submitting it (a cancel may have been recorded by another
// process meanwhile) and leaves the resume of an action it accepted for a
// task it does not hold to the process that holds it. With any
// LocalExecutor, [Service.Reconcile] skips the pending hand-offs of
// non-terminal tasks the executor does not hold.
type LocalExecutor interface {
	TaskExecutor
	// Holds reports whether the task is queued or running in this process.
	Holds(taskID string) bool
	// HeldTasks returns the ids of the tasks queued or running in this
	// process, in no particular order.
	HeldTasks() []string
}
