package memstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/taskbridge-go/taskbridge"
)

// Config configures a [Store]. The zero value is ready to use.
type Config struct {
	// MaxEventsPerTask caps each task's retained log: when positive, only
	// the newest MaxEventsPerTask events of a task are kept, and reading
	// from a cursor older than that fails with
	// [taskbridge.ErrEventsExpired]. Zero or negative keeps every event.
	MaxEventsPerTask int
}

// Store is an in-memory [taskbridge.Store]. It also implements
// [taskbridge.ReadinessProbe]. Create it with [New]; it is safe for
// concurrent use.
//
// Its methods never block on I/O, so they ignore their context.
type Store struct {
	maxEvents int
	closed    atomic.Bool

	// tasks maps a task id to its state. Read-mostly: entries are added
	// by CreateTask and removed by DeleteTerminalTasks.
	tasks idMap[*taskState]

	// keyMu guards keys and serialises task creation and deletion. Lock
	// order: keyMu, then ownersMu, then taskState.mu.
	keyMu sync.Mutex
	keys  map[taskKey]string // (owner, clientRequestId) → task id

	// ownersMu guards owners, the per-owner index that listing uses.
	ownersMu sync.RWMutex
	owners   map[string]*ownerTasks

	// watches maps a task id to its watchers. It is independent of tasks,
	// so a task can be watched before it exists.
	watches idMap[*watchSet]

	// control holds the watchers of control changes.
	control controlSet

	// dueMu guards the records waiting for maintenance (see dueItem):
	// the terminal tasks not yet pruned, the receipts not yet deleted, the
	// open suspensions with a deadline, the resolved ones whose resume is
	// pending, and the held leases. Lock order: taskState.mu, then dueMu.
	dueMu    sync.Mutex
	ended    dueHeap
	receipts dueHeap
	expiring dueHeap
	resumes  dueHeap
	leases   dueHeap
}

var (
	_ taskbridge.Store              = (*Store)(nil)
	_ taskbridge.ReadinessProbe     = (*Store)(nil)
	_ taskbridge.LeaseStore         = (*Store)(nil)
	_ taskbridge.ControlFeed        = (*Store)(nil)
	_ taskbridge.TaskHeadGetter     = (*Store)(nil)
	_ taskbridge.InlineReader       = (*Store)(nil)
	_ taskbridge.EventLender        = (*Store)(nil)
	_ taskbridge.TerminalTaskPruner = (*Store)(nil)
	_ taskbridge.LiveTaskCreator    = (*Store)(nil)
)

// New returns an empty store configured by cfg.
func New(cfg Config) *Store {
	s := &Store{
		maxEvents: max(cfg.MaxEventsPerTask, 0),
		keys:      make(map[taskKey]string),
		owners:    make(map[string]*ownerTasks),
		// Terminal tasks leave their heap only by being pruned; the
		// others leave when their record moves on (see dueHeap).
		receipts: dueHeap{keyed: true},
		expiring: dueHeap{keyed: true},
		resumes:  dueHeap{keyed: true},
		leases:   dueHeap{keyed: true},
	}
	s.tasks.init()
	s.watches.init()
	return s
}

// CheckReady implements [taskbridge.ReadinessProbe]: the store is ready
// until it is closed.
func (s *Store) CheckReady(context.Context) error {
	return s.check()
}

// Close closes the store: every later call of a method fails with
// [taskbridge.ErrClosed], and every watcher is called one last time (so
// that waiters wake up and observe the closed store) and then released.
// Control watchers ([Store.WatchControl]) are released without a call.
// Close is idempotent and always returns nil.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.control.close()
	ids, sets := s.watches.all()
	for i, ws := range sets {
		ws.mu.Lock()
		for _, w := range ws.list {
			w.idx = -1
			w.fn()
		}
		ws.list = nil
		ws.dead = true
		s.watches.compareAndDelete(ids[i], ws)
		ws.mu.Unlock()
	}
	// Release the data; in-flight calls keep what they already hold.
	s.keyMu.Lock()
	s.keys = make(map[taskKey]string)
	s.tasks.clear()
	s.ownersMu.Lock()
	s.owners = make(map[string]*ownerTasks)
	s.ownersMu.Unlock()
	s.keyMu.Unlock()
	s.dueMu.Lock()
	for _, h := range []*dueHeap{&s.ended, &s.receipts, &s.expiring, &s.resumes, &s.leases} {
		h.reset()
	}
	s.dueMu.Unlock()
	return nil
}

func (s *Store) check() error {
	if s.closed.Load() {
		return taskbridge.ErrClosed
	}
	return nil
}

// taskKey is the create-idempotency key of a task.
type taskKey struct{ owner, clientRequestID string }

// taskState is one task with everything that belongs to it. mu guards all
// fields. Stored byte slices and maps are never modified after they are
// stored, so copies of their headers may be used after mu is released.
type taskState struct {
	mu      sync.RWMutex
	deleted bool
	// watched caches the task's entry of Store.watches for notify, so that
	// an append does not look it up again; it may be stale (a dead set, or
	// nil although watchers exist), which notify detects. See
	// Store.notifyTask.
	watched atomic.Pointer[watchSet]
	task    taskbridge.Task
	// events[off:] is the retained log: events[off+i].Seq == first+i.
	// events[:off] are cleared slots awaiting compaction.
	events []taskbridge.TaskEvent
	off    int
	// first is the Seq of the oldest retained event, LastSeq+1 if none is
	// retained.
	first int64
	// owner is the owner's index entry, set before the task is published.
	owner *ownerTasks
	// susps are the task's suspensions in the order they were opened;
	// suspIdx maps a suspendId to its index.
	susps   []*taskbridge.Suspension
	suspIdx map[string]int
	// receipts maps a clientActionId to its receipt.
	receipts map[string]*taskbridge.ActionReceipt
	// keys maps the IdempotencyKey of an appended event to the event, for
	// as long as the task lives (retention may drop it from events).
	keys map[string]taskbridge.TaskEvent
	// lease is the task's lease; Holder is empty when nobody holds it.
	lease taskbridge.Lease
	// buf is the tail of the buffer event payloads are copied into (see
	// keepPayload).
	buf []byte
	// ids holds the ids of the task's next events, once it has 100 (see
	// eventID).
	ids *idBlock
}

// release marks a deleted task and drops its data; mu must be held.
func (ts *taskState) release() {
	ts.deleted = true
	ts.task = taskbridge.Task{}
	ts.events, ts.off = nil, 0
	ts.buf, ts.ids = nil, nil
	ts.susps = nil
	ts.suspIdx = nil
	ts.receipts = nil
	ts.keys = nil
	ts.lease = taskbridge.Lease{}
}

func taskNotFound(id string) error {
	return fmt.Errorf("%w: %q", taskbridge.ErrTaskNotFound, id)
}

func isNotFound(err error) bool { return errors.Is(err, taskbridge.ErrTaskNotFound) }

func taskTerminal(id string) error {
	return fmt.Errorf("%w: task %q", taskbridge.ErrTaskTerminal, id)
}

func leaseLost(id, holder string) error {
	return fmt.Errorf("%w: %q does not hold the lease of task %q", taskbridge.ErrLeaseLost, holder, id)
}

func invalidRequest(format string, args ...any) error {
	return fmt.Errorf("%w: memstore: %s", taskbridge.ErrInvalidRequest, fmt.Sprintf(format, args...))
}

// lookup returns the state of task id; the caller must lock it and check
// deleted.
func (s *Store) lookup(id string) (*taskState, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	ts, ok := s.tasks.load(id)
	if !ok {
		return nil, taskNotFound(id)
	}
	return ts, nil
}

// update runs fn with task id write-locked.
func (s *Store) update(id string, fn func(ts *taskState) error) error {
	ts, err := s.lookup(id)
	if err != nil {
		return err
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.deleted {
		return taskNotFound(id)
	}
	return fn(ts)
}

// view runs fn with task id read-locked.
func (s *Store) view(id string, fn func(ts *taskState) error) error {
	ts, err := s.lookup(id)
	if err != nil {
		return err
	}
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	if ts.deleted {
		return taskNotFound(id)
	}
	return fn(ts)
}
