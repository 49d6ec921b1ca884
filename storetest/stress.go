package storetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
)

// Environment variables that size the stress section (see testStress).
const (
	// StressSeedsEnv is how many randomized scenarios the stress section
	// runs (seeds 1..n, default 3): set it high for a long run, for
	// example TASKBRIDGE_STRESS_SEEDS=300.
	StressSeedsEnv = "TASKBRIDGE_STRESS_SEEDS"
	// StressSeedEnv runs the scenario of this one seed instead, to repeat
	// a failure. A seed fixes the workers' random draws; how their
	// operations interleave (and so which tasks exist when a worker picks
	// one) is up to the scheduler and the store, so run a failing seed
	// several times (go test -count).
	StressSeedEnv = "TASKBRIDGE_STRESS_SEED"
)

const (
	defaultStressSeeds = 3
	stressWorkers      = 8
	stressOps          = 100 // per worker
	stressKeys         = 8   // client request ids per owner
	stressEventKeys    = 3   // idempotency keys per task
	stressLeaseTTL     = time.Hour
	// stressShortTTL is the lease time of tasks whose leases expire during
	// the scenario: about 80 operations of all workers, about as long as
	// one task waits between two lease operations.
	stressShortTTL = 80 * time.Millisecond
)

var stressOwners = [...]string{"alice", "bob"}

// stressSeeds returns the seeds to run, from the environment.
func stressSeeds(t *testing.T) []uint64 {
	t.Helper()
	if v := os.Getenv(StressSeedEnv); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "storetest: %s=%q", StressSeedEnv, v)
		return []uint64{seed}
	}
	n := defaultStressSeeds
	if v := os.Getenv(StressSeedsEnv); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err, "storetest: %s=%q", StressSeedsEnv, v)
		require.Positive(t, n, "storetest: %s", StressSeedsEnv)
	}
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = uint64(i + 1)
	}
	return seeds
}

// testStress runs randomized scenarios in which several workers, spread
// over the store's handles (both replicas when Harness.Replica is set),
// create tasks under a few shared client request ids, append events of
// every kind (some under shared idempotency keys), open suspensions and
// act on them, read from random cursors, request cancellations, take,
// renew and release leases (long ones, released, on half of the tasks;
// short ones that expire and pass between holders on the others) and
// delete tasks that ended a while ago (retention, which frees their
// request ids), all at once, while a watcher per task on another handle
// follows its log. It then checks what no interleaving may break: one task
// per request id at a time, deleted tasks ended before a deletion's bound
// and gone everywhere, logs numbered without gaps or duplicates and equal
// through every handle, the task state machine (one start, at most one
// terminal event and nothing after it), every successful append in the
// log exactly as it was returned and nothing else there, one append per
// idempotency key, one first cancellation, one accepted action per
// suspension and none after it expired, one lease holder at a time (no
// overlapping grants of short leases to different holders), every watcher
// reaching the end of its log, and every handle's control feed (when the
// store has one) reporting every task with a first cancellation or an
// accepted action.
func testStress(t *testing.T, h Harness) {
	for _, seed := range stressSeeds(t) {
		t.Run(fmt.Sprint("seed-", seed), func(t *testing.T) {
			f := setup(t, h)
			stores := []taskbridge.Store{f.s}
			if h.Replica != nil {
				stores = append(stores, h.Replica(t, f.s))
			}
			r := &stressRun{
				t: t, f: f, seed: seed, stores: stores,
				byKey:   map[string]*stressCreate{},
				tasks:   map[string]*stressTask{},
				watches: map[string]*stressWatch{},
				held:    map[string]string{},
			}
			// A control watcher on every handle that has a feed, from
			// before the first change.
			for _, s := range stores {
				if cf, ok := s.(taskbridge.ControlFeed); ok {
					c := newControlSignal()
					t.Cleanup(cf.WatchControl(c.notify))
					r.controls = append(r.controls, c)
				}
			}
			r.run()
			r.check()
		})
	}
}

// stressRun is one scenario.
type stressRun struct {
	t      *testing.T
	f      *fixture
	seed   uint64
	stores []taskbridge.Store
	// controls are the control watchers of the handles with a feed.
	controls []*controlSignal
	clock    atomic.Int64 // milliseconds after BaseTime
	// pruned is the latest bound DeleteTerminalTasks was called with
	// (milliseconds after BaseTime).
	pruned atomic.Int64

	mu      sync.Mutex
	held    map[string]string        // task → the worker holding its lease at the end
	byKey   map[string]*stressCreate // owner/request id → creates
	ids     []string                 // created tasks, in creation order
	picks   []string                 // created tasks no operation found missing
	tasks   map[string]*stressTask
	watches map[string]*stressWatch
}

// stressCreate records the creates under one client request id.
type stressCreate struct {
	owner   string
	results []stressCreated
}

// stressCreated is what one create returned.
type stressCreated struct {
	id      string
	created bool
}

// stressTask records what the workers did to one task.
type stressTask struct {
	appended []taskbridge.TaskEvent // successful appends, as returned
	keyed    map[string][]string    // idempotency key → payloads tried with it
	failed   []stressFailure
	firsts   []string // reasons of cancellation requests that were first
	inside   atomic.Int32
	maxSeq   atomic.Int64 // highest Seq an append returned
	leaseErr []string     // holders whose renewal found the lease lost
	// gone lists the operations that found the task missing: it must
	// have been deleted as a finished task.
	gone []string
	// short is set for a task whose leases expire during the scenario
	// (and are never released); grants records their acquisitions and
	// renewals.
	short  bool
	grants []stressGrant
	// suspends lists the suspensions opened; actions what AcceptAction
	// returned for each of them.
	suspends []string
	actions  map[string][]stressAction
}

// stressGrant is a successful AcquireLease or RenewLease of a short lease.
type stressGrant struct {
	holder string
	at     time.Time
}

// stressAction is one AcceptAction that returned no error.
type stressAction struct {
	actionID string
	now      time.Time
	res      taskbridge.AcceptResult
}

// unexplainedExpiry returns what is wrong with the actions on sp that were
// rejected as expired, or "". One whose clock was at or after the
// suspension's deadline is explained by it. One whose clock was before it
// is explained only by another that was not, which expired the suspension
// first: an EXPIRED suspension rejects every action, whatever its clock
// (the ExpiredByDeadline case), and the workers' clocks are not in the
// order their operations reach the store, so a later-clocked action can
// expire a suspension before an earlier-clocked one arrives.
func unexplainedExpiry(sp taskbridge.Suspension, acts []stressAction) string {
	expiredBy := ""
	for _, a := range acts {
		if a.res.Status == taskbridge.ActionRejectedExpired && sp.ExpiredAt(a.now) {
			expiredBy = a.actionID
			break
		}
	}
	for _, a := range acts {
		if a.res.Status == taskbridge.ActionRejectedExpired && !sp.ExpiredAt(a.now) && expiredBy == "" {
			return fmt.Sprintf("action %s rejected as expired at %v, before the deadline %v, and no action at or after it expired the suspension",
				a.actionID, a.now, sp.ExpiresAt)
		}
	}
	return ""
}

type stressFailure struct {
	typ taskbridge.EventType
	err error
}

// stressWatch follows one task's log through Watch and Read.
type stressWatch struct {
	seen atomic.Int64
	gone atomic.Bool // a read found the task missing
	stop func()
	quit chan struct{}
	done chan struct{}
}

// now returns a new instant, later than every earlier one.
func (r *stressRun) now() time.Time {
	return BaseTime.Add(time.Duration(r.clock.Add(1)) * time.Millisecond)
}

// failf reports a broken rule from any goroutine, with how to repeat it.
func (r *stressRun) failf(format string, args ...any) {
	r.t.Errorf("storetest: stress seed %d (%s=%d runs it again): %s",
		r.seed, StressSeedEnv, r.seed, fmt.Sprintf(format, args...))
}

func (r *stressRun) run() { race(stressWorkers, r.worker) }

// worker runs one worker's operations on its handle.
func (r *stressRun) worker(w int) {
	rng := rand.New(rand.NewPCG(r.seed, uint64(w)))
	s := r.stores[w%len(r.stores)]
	holder := fmt.Sprint("worker-", w)
	held := map[string]bool{} // tasks whose lease this worker holds
	defer func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for id := range held {
			r.held[id] = holder
		}
	}()
	for op := range stressOps {
		id, task := r.pick(rng)
		switch n := rng.IntN(100); {
		case n < 15 || id == "":
			r.create(s, rng, w, op)
		case n < 55:
			r.append(s, rng, task, id, w, op)
		case n < 60:
			r.suspend(s, rng, task, id, w, op)
		case n < 68:
			r.act(s, rng, task, id)
		case n < 75:
			r.read(s, rng, task, id)
		case n < 80:
			r.cancel(s, task, id, w, op)
		case n < 83:
			r.prune(s, rng)
		default:
			r.lease(s, rng, task, id, holder, held)
		}
	}
}

// pick returns a random created task, or "" when there is none yet.
func (r *stressRun) pick(rng *rand.Rand) (string, *stressTask) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.picks) == 0 {
		return "", nil
	}
	id := r.picks[rng.IntN(len(r.picks))]
	return id, r.tasks[id]
}

func (r *stressRun) create(s taskbridge.Store, rng *rand.Rand, w, op int) {
	owner := stressOwners[rng.IntN(len(stressOwners))]
	req := fmt.Sprint("req-", rng.IntN(stressKeys))
	short := rng.IntN(2) == 0
	got, created, err := s.CreateTask(r.f.ctx, NewTask(fmt.Sprintf("t-%d-%d", w, op), owner, req, r.now()))
	if err != nil {
		r.failf("CreateTask(%s, %s): %v", owner, req, err)
		return
	}
	r.mu.Lock()
	key := owner + "/" + req
	c := r.byKey[key]
	if c == nil {
		c = &stressCreate{owner: owner}
		r.byKey[key] = c
	}
	c.results = append(c.results, stressCreated{got.ID, created})
	if !created {
		r.mu.Unlock()
		return
	}
	r.ids = append(r.ids, got.ID)
	r.picks = append(r.picks, got.ID)
	r.tasks[got.ID] = &stressTask{keyed: map[string][]string{}, actions: map[string][]stressAction{}, short: short}
	r.mu.Unlock()
	// The watcher uses another handle than the creator's, when there is
	// one: notifications must cross replicas.
	r.watch(r.stores[(w+1)%len(r.stores)], got.ID)
}

// stressEvent returns a random event for taskID whose payload is unique
// to worker w's operation op.
func stressEvent(rng *rand.Rand, taskID string, w, op int, at time.Time) taskbridge.TaskEvent {
	tag := fmt.Sprintf("w%d-op%d", w, op)
	var p taskbridge.Payload
	switch n := rng.IntN(100); {
	case n < 20:
		p = taskbridge.StartedPayload{Message: tag}
	case n < 55:
		p = taskbridge.ProgressPayload{Progress: float64(rng.IntN(101)), Stage: tag}
	case n < 96:
		p = taskbridge.MessagePayload{Message: tag}
	case n < 98:
		p = taskbridge.CompletedPayload{Result: map[string]any{"by": tag}}
	case n < 99:
		p = taskbridge.FailedPayload{Code: "E_STRESS", Message: tag}
	default:
		p = taskbridge.CancelledPayload{Reason: tag}
	}
	return NewEvent(taskID, p, at)
}

func (r *stressRun) append(s taskbridge.Store, rng *rand.Rand, task *stressTask, id string, w, op int) {
	ev := stressEvent(rng, id, w, op, r.now())
	if rng.IntN(100) < 30 {
		ev.IdempotencyKey = fmt.Sprint("key-", rng.IntN(stressEventKeys))
		r.mu.Lock()
		task.keyed[ev.IdempotencyKey] = append(task.keyed[ev.IdempotencyKey], string(normJSON(ev.Payload)))
		r.mu.Unlock()
	}
	got, err := s.Append(r.f.ctx, ev)
	if r.missing(task, err, "Append(%s)", ev.Type) {
		return
	}
	if err != nil {
		if !errors.Is(err, taskbridge.ErrTaskTerminal) && !errors.Is(err, taskbridge.ErrInvalidTransition) {
			r.failf("Append(%s, %s): %v", id, ev.Type, err)
		}
		r.mu.Lock()
		task.failed = append(task.failed, stressFailure{ev.Type, err})
		r.mu.Unlock()
		return
	}
	if got.Seq < 1 || got.EventID != taskbridge.FormatEventID(got.Seq) || got.TaskID != id {
		r.failf("Append(%s, %s) returned Seq %d, EventID %q, TaskID %q", id, ev.Type, got.Seq, got.EventID, got.TaskID)
	}
	if got.IdempotencyKey != ev.IdempotencyKey {
		r.failf("Append(%s, %s) with key %q returned key %q", id, ev.Type, ev.IdempotencyKey, got.IdempotencyKey)
	}
	if ev.IdempotencyKey == "" && !eventsMatch(ev, got) {
		r.failf("Append(%s) returned %+v for %+v", id, got, ev)
	}
	r.mu.Lock()
	task.appended = append(task.appended, got)
	r.mu.Unlock()
	raise(&task.maxSeq, got.Seq)
}

// suspend opens a suspension, which expires soon in a third of the cases
// (the clock advances a millisecond per operation of any worker).
func (r *stressRun) suspend(s taskbridge.Store, rng *rand.Rand, task *stressTask, id string, w, op int) {
	now := r.now()
	var expires *time.Time
	if rng.IntN(3) == 0 {
		at := now.Add(time.Duration(1+rng.IntN(40)) * time.Millisecond)
		expires = &at
	}
	suspendID := fmt.Sprintf("s-%d-%d", w, op)
	in, ev := NewSuspension(id, suspendID, expires, now)
	got, gotEv, err := s.OpenSuspension(r.f.ctx, in, ev)
	if r.missing(task, err, "OpenSuspension(%s)", suspendID) {
		return
	}
	if err != nil {
		if !errors.Is(err, taskbridge.ErrTaskTerminal) && !errors.Is(err, taskbridge.ErrInvalidTransition) {
			r.failf("OpenSuspension(%s, %s): %v", id, suspendID, err)
		}
		r.mu.Lock()
		task.failed = append(task.failed, stressFailure{ev.Type, err})
		r.mu.Unlock()
		return
	}
	if got.Status != taskbridge.SuspensionOpen || got.EventSeq != gotEv.Seq || !eventsMatch(ev, gotEv) {
		r.failf("OpenSuspension(%s, %s) returned status %s, EventSeq %d and event %+v", id, suspendID, got.Status, got.EventSeq, gotEv)
	}
	r.mu.Lock()
	task.appended = append(task.appended, gotEv)
	task.suspends = append(task.suspends, suspendID)
	r.mu.Unlock()
	raise(&task.maxSeq, gotEv.Seq)
}

// act submits an action, from a small pool of client action ids per task,
// to one of the task's suspensions.
func (r *stressRun) act(s taskbridge.Store, rng *rand.Rand, task *stressTask, id string) {
	r.mu.Lock()
	n := len(task.suspends)
	var suspendID string
	if n > 0 {
		suspendID = task.suspends[rng.IntN(n)]
	}
	r.mu.Unlock()
	if n == 0 {
		return
	}
	actionID := fmt.Sprint("a-", rng.IntN(4))
	// The fingerprint names the suspension: the same id sent to another
	// suspension is a conflict.
	a := NewAttempt(id, suspendID, actionID, "fp-"+suspendID+"-"+actionID, r.now())
	res, err := s.AcceptAction(r.f.ctx, a)
	if r.missing(task, err, "AcceptAction(%s, %s)", suspendID, actionID) {
		return
	}
	if err != nil {
		if !errors.Is(err, taskbridge.ErrIdempotencyConflict) {
			r.failf("AcceptAction(%s, %s, %s): %v", id, suspendID, actionID, err)
		}
		return
	}
	switch res.Status {
	case taskbridge.ActionAccepted:
		if res.Suspension.Status != taskbridge.SuspensionResolved || res.Suspension.ResolvedActionID != actionID ||
			res.Receipt.EventSeq != res.Event.Seq || !eventsMatch(a.Event, res.Event) {
			r.failf("AcceptAction(%s, %s, %s) accepted with suspension %+v, receipt EventSeq %d, event %+v",
				id, suspendID, actionID, res.Suspension, res.Receipt.EventSeq, res.Event)
		}
		r.mu.Lock()
		task.appended = append(task.appended, res.Event)
		r.mu.Unlock()
		raise(&task.maxSeq, res.Event.Seq)
	case taskbridge.ActionDeduplicated, taskbridge.ActionRejectedExpired, taskbridge.ActionRejectedAlreadyResolved:
	default:
		r.failf("AcceptAction(%s, %s, %s) returned status %q", id, suspendID, actionID, res.Status)
	}
	r.mu.Lock()
	task.actions[suspendID] = append(task.actions[suspendID], stressAction{actionID, a.Now, res})
	r.mu.Unlock()
}

// raise sets a to v if v is larger.
func raise(a *atomic.Int64, v int64) {
	for cur := a.Load(); v > cur && !a.CompareAndSwap(cur, v); cur = a.Load() {
	}
}

// missing reports whether err says the task is unknown, and records it:
// a finished task may be deleted by another worker's prune. Workers pick
// the task no more.
func (r *stressRun) missing(task *stressTask, err error, op string, args ...any) bool {
	if !errors.Is(err, taskbridge.ErrTaskNotFound) {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	task.gone = append(task.gone, fmt.Sprintf(op, args...))
	r.picks = slices.DeleteFunc(r.picks, func(id string) bool { return r.tasks[id] == task })
	return true
}

// prune deletes a few tasks that ended a while ago (retention).
func (r *stressRun) prune(s taskbridge.Store, rng *rand.Rand) {
	ms := r.clock.Add(1) - 40
	raise(&r.pruned, ms)
	limit := 1 + rng.IntN(3)
	n, err := s.DeleteTerminalTasks(r.f.ctx, BaseTime.Add(time.Duration(ms)*time.Millisecond), limit)
	if err != nil || n < 0 || n > limit {
		r.failf("DeleteTerminalTasks(limit %d) = %d, %v", limit, n, err)
	}
}

// eventsMatch reports whether got is the event appended as want: same type,
// payload (as JSON values) and creation time.
func eventsMatch(want, got taskbridge.TaskEvent) bool {
	return want.Type == got.Type && string(normJSON(want.Payload)) == string(normJSON(got.Payload)) &&
		normTime(want.CreatedAt).Equal(normTime(got.CreatedAt))
}

// read reads from a random cursor no later than an event known to be
// appended, which must succeed and return the events right after it.
func (r *stressRun) read(s taskbridge.Store, rng *rand.Rand, task *stressTask, id string) {
	maxSeq := task.maxSeq.Load()
	after := rng.Int64N(maxSeq + 1)
	limit := 1 + rng.IntN(5)
	evs, err := s.Read(r.f.ctx, id, after, limit)
	if r.missing(task, err, "Read(%d, %d)", after, limit) {
		return
	}
	if err != nil {
		r.failf("Read(%s, %d, %d) with Seq %d appended: %v", id, after, limit, maxSeq, err)
		return
	}
	if len(evs) > limit || (after < maxSeq && len(evs) == 0) {
		r.failf("Read(%s, %d, %d) with Seq %d appended returned %d events", id, after, limit, maxSeq, len(evs))
	}
	for i, ev := range evs {
		if want := after + 1 + int64(i); ev.Seq != want || ev.EventID != taskbridge.FormatEventID(want) || ev.TaskID != id {
			r.failf("Read(%s, %d, %d): event %d has Seq %d, EventID %q, TaskID %q, want Seq %d",
				id, after, limit, i, ev.Seq, ev.EventID, ev.TaskID, want)
			return
		}
	}
}

func (r *stressRun) cancel(s taskbridge.Store, task *stressTask, id string, w, op int) {
	reason := fmt.Sprintf("w%d-op%d", w, op)
	got, first, err := s.RequestCancel(r.f.ctx, id, reason, r.now())
	if r.missing(task, err, "RequestCancel") {
		return
	}
	if err != nil {
		r.failf("RequestCancel(%s): %v", id, err)
		return
	}
	if got.ID != id || (first && (!got.CancelRequested || got.CancelReason != reason)) {
		r.failf("RequestCancel(%s, %s) returned id %s, first %v, CancelRequested %v, CancelReason %q",
			id, reason, got.ID, first, got.CancelRequested, got.CancelReason)
	}
	if first {
		r.mu.Lock()
		task.firsts = append(task.firsts, reason)
		r.mu.Unlock()
	}
}

// lease takes, renews or releases a lease, checking that no two workers
// ever hold one task's lease. Leases last longer than the scenario, so a
// worker holds the lease exactly from an acquisition until it releases it
// or the task ends; inside counts the workers between those points (a
// worker leaves before it releases, and enters after it acquired).
func (r *stressRun) lease(s taskbridge.Store, rng *rand.Rand, task *stressTask, id, holder string, held map[string]bool) {
	ls, ok := s.(taskbridge.LeaseStore)
	if !ok {
		return
	}
	if task.short {
		r.shortLease(ls, rng, task, id, holder)
		return
	}
	if held[id] {
		if rng.IntN(2) == 0 {
			delete(held, id)
			r.release(s, task, id, holder)
			return
		}
		if _, err := ls.RenewLease(r.f.ctx, id, holder, r.now(), stressLeaseTTL); err != nil {
			if !errors.Is(err, taskbridge.ErrLeaseLost) && !r.missing(task, err, "RenewLease") {
				r.failf("RenewLease(%s, %s): %v", id, holder, err)
			}
			// Lost: only a terminal event may take it away (checked at
			// the end).
			delete(held, id)
			task.inside.Add(-1)
			r.mu.Lock()
			task.leaseErr = append(task.leaseErr, holder)
			r.mu.Unlock()
		}
		return
	}
	now := r.now()
	l, acquired, err := ls.AcquireLease(r.f.ctx, id, holder, now, stressLeaseTTL)
	switch {
	case errors.Is(err, taskbridge.ErrTaskTerminal), r.missing(task, err, "AcquireLease"):
	case err != nil:
		r.failf("AcquireLease(%s, %s): %v", id, holder, err)
	case acquired:
		held[id] = true
		if n := task.inside.Add(1); n != 1 {
			r.failf("AcquireLease(%s, %s) succeeded while %d other workers held the lease", id, holder, n-1)
		}
		if l.Holder != holder || l.TaskID != id {
			r.failf("AcquireLease(%s, %s) acquired %+v", id, holder, l)
		}
	case l.Holder == holder || l.Holder == "" || !l.ExpiresAt.After(now):
		r.failf("AcquireLease(%s, %s) refused with lease %+v at %v", id, holder, l, now)
	}
}

// shortLease takes or renews a lease that expires during the scenario, so
// that holders take over from each other. Each grant gives its holder the
// lease from its now for stressShortTTL; what no interleaving may produce is
// two grants to different holders whose spans overlap (checked at the end).
func (r *stressRun) shortLease(ls taskbridge.LeaseStore, rng *rand.Rand, task *stressTask, id, holder string) {
	now := r.now()
	var (
		l       taskbridge.Lease
		granted bool
		ended   bool // the task ended, or was deleted
		err     error
		op      = "RenewLease"
	)
	if rng.IntN(2) == 0 {
		l, err = ls.RenewLease(r.f.ctx, id, holder, now, stressShortTTL)
		granted = err == nil
		if errors.Is(err, taskbridge.ErrLeaseLost) || r.missing(task, err, "RenewLease") {
			err = nil
		}
	} else {
		op = "AcquireLease"
		l, granted, err = ls.AcquireLease(r.f.ctx, id, holder, now, stressShortTTL)
		if ended = errors.Is(err, taskbridge.ErrTaskTerminal) || r.missing(task, err, "AcquireLease"); ended {
			err = nil
		}
	}
	switch {
	case err != nil:
		r.failf("%s(%s, %s): %v", op, id, holder, err)
	case granted:
		if l.Holder != holder || l.TaskID != id || !l.ExpiresAt.Equal(now.Add(stressShortTTL)) {
			r.failf("%s(%s, %s) at %v granted %+v", op, id, holder, now, l)
		}
		r.mu.Lock()
		task.grants = append(task.grants, stressGrant{holder, now})
		r.mu.Unlock()
	case op == "AcquireLease" && !ended && (l.Holder == holder || l.Holder == "" || !l.ExpiresAt.After(now)):
		r.failf("AcquireLease(%s, %s) refused with lease %+v at %v", id, holder, l, now)
	}
}

func (r *stressRun) release(s taskbridge.Store, task *stressTask, id, holder string) {
	if !task.short {
		task.inside.Add(-1)
	}
	if err := s.(taskbridge.LeaseStore).ReleaseLease(r.f.ctx, id, holder); err != nil {
		r.failf("ReleaseLease(%s, %s): %v", id, holder, err)
	}
}

// watch starts following the log of taskID through s.
func (r *stressRun) watch(s taskbridge.Store, taskID string) {
	w := &stressWatch{quit: make(chan struct{}), done: make(chan struct{})}
	sig := newSignal()
	w.stop = s.Watch(taskID, sig.notify)
	r.mu.Lock()
	r.watches[taskID] = w
	r.mu.Unlock()
	go func() {
		defer close(w.done)
		after := int64(0)
		for {
			for {
				evs, err := s.Read(r.f.ctx, taskID, after, 16)
				if errors.Is(err, taskbridge.ErrTaskNotFound) {
					w.gone.Store(true) // deleted: checked at the end
					return
				}
				if err != nil {
					r.failf("watcher Read(%s, %d): %v", taskID, after, err)
					return
				}
				if len(evs) == 0 {
					break
				}
				for i, ev := range evs {
					if ev.Seq != after+1+int64(i) {
						r.failf("watcher Read(%s, %d): event %d has Seq %d", taskID, after, i, ev.Seq)
						return
					}
				}
				after = evs[len(evs)-1].Seq
				w.seen.Store(after)
			}
			select {
			case <-sig.ch:
			case <-w.quit:
				return
			}
		}
	}()
}

// check checks the rules on what the workers did and left.
func (r *stressRun) check() {
	t := r.t
	defer r.stopWatches()
	exists := map[string]bool{}
	for _, id := range r.ids {
		_, err := r.f.s.GetTask(r.f.ctx, id)
		if errors.Is(err, taskbridge.ErrTaskNotFound) {
			r.checkDeleted(id, r.tasks[id])
			continue
		}
		require.NoError(t, err)
		exists[id] = true
	}
	// One task per client request id at a time: a create either made a
	// new task or returned the one the id had, and only deleting that
	// task frees the id.
	owned := map[string][]string{}
	for key, c := range r.byKey {
		made := map[string]int{}
		for _, res := range c.results {
			if res.created {
				made[res.id]++
			}
		}
		for _, res := range c.results {
			require.Equal(t, 1, made[res.id], "seed %d: creates under %s that created task %s", r.seed, key, res.id)
		}
		var live []string
		for id := range made {
			if exists[id] {
				live = append(live, id)
			}
		}
		require.LessOrEqual(t, len(live), 1, "seed %d: tasks under %s", r.seed, key)
		owned[c.owner] = append(owned[c.owner], live...)
		// Another create returns the live task, or makes one when
		// deletes freed the id.
		req := key[len(c.owner)+1:]
		got, created, err := r.f.s.CreateTask(r.f.ctx, NewTask("t-last-"+c.owner+"-"+req, c.owner, req, r.now()))
		require.NoError(t, err)
		if len(live) == 1 {
			require.False(t, created, "seed %d: a create under %s with task %s there", r.seed, key, live[0])
			require.Equal(t, live[0], got.ID, "seed %d: a create under %s", r.seed, key)
		} else {
			require.True(t, created, "seed %d: a create under %s, whose tasks were all deleted, returned %s", r.seed, key, got.ID)
			owned[c.owner] = append(owned[c.owner], got.ID)
		}
	}
	for _, owner := range stressOwners {
		for _, s := range r.stores {
			list, err := s.ListTasks(r.f.ctx, taskbridge.TaskQuery{OwnerID: owner, Limit: 100})
			require.NoError(t, err)
			require.ElementsMatch(t, owned[owner], ids(list), "seed %d: the tasks of %s", r.seed, owner)
		}
	}
	live := map[string]bool{} // tasks without a terminal event
	for _, id := range r.ids {
		if !exists[id] {
			continue
		}
		task := r.tasks[id]
		require.Empty(t, task.gone, "seed %d: task %s: operations found it missing, but it exists", r.seed, id)
		require.False(t, r.watches[id].gone.Load(), "seed %d: task %s: its watcher found it missing, but it exists", r.seed, id)
		log := r.checkLog(id, task)
		live[id] = len(log) == 0 || !log[len(log)-1].Terminal()
		require.LessOrEqual(t, len(task.firsts), 1, "seed %d: task %s: cancellation requests that were first", r.seed, id)
		got := r.f.get(id)
		if len(task.firsts) == 1 {
			require.True(t, got.CancelRequested, "seed %d: task %s: CancelRequested", r.seed, id)
			require.Equal(t, task.firsts[0], got.CancelReason, "seed %d: task %s: the first request's reason", r.seed, id)
		}
	}
	r.checkLeases(live)
	r.waitWatchers(exists)
	r.checkControls()
}

// checkControls checks that every handle's control feed reported every
// task with a control change: a first cancellation request or an accepted
// action.
func (r *stressRun) checkControls() {
	for _, id := range r.ids {
		task := r.tasks[id]
		changed := len(task.firsts) > 0
		for _, acts := range task.actions {
			for _, a := range acts {
				changed = changed || a.res.Status == taskbridge.ActionAccepted
			}
		}
		if !changed {
			continue
		}
		for _, c := range r.controls {
			c.wait(r.t, id, fmt.Sprintf("(stress seed %d: it had a first cancellation or an accepted action)", r.seed))
		}
	}
}

// checkDeleted checks that a task that is gone ended before a prune's
// bound and is gone through every handle.
func (r *stressRun) checkDeleted(id string, task *stressTask) {
	t := r.t
	bound := BaseTime.Add(time.Duration(r.pruned.Load()) * time.Millisecond)
	i := slices.IndexFunc(task.appended, taskbridge.TaskEvent.Terminal)
	require.NotEqual(t, -1, i, "seed %d: task %s is gone, but never ended", r.seed, id)
	require.True(t, task.appended[i].CreatedAt.Before(bound),
		"seed %d: task %s is gone, but it ended at %v, not before %v", r.seed, id, task.appended[i].CreatedAt, bound)
	for _, s := range r.stores {
		_, err := s.GetTask(r.f.ctx, id)
		requireErrorIs(t, err, taskbridge.ErrTaskNotFound, "seed %d: task %s: GetTask of a deleted task", r.seed, id)
		_, err = s.Read(r.f.ctx, id, 0, 1)
		requireErrorIs(t, err, taskbridge.ErrTaskNotFound, "seed %d: task %s: Read of a deleted task", r.seed, id)
	}
}

// checkGrants checks that no two grants of the short leases of a task to
// different holders overlap, and returns the holder of the last one ("" if
// there was none).
func (r *stressRun) checkGrants(id string, task *stressTask) (last string) {
	grants := slices.SortedFunc(slices.Values(task.grants), func(a, b stressGrant) int { return a.at.Compare(b.at) })
	for i, g := range grants {
		for _, h := range grants[i+1:] {
			if !h.at.Before(g.at.Add(stressShortTTL)) {
				break
			}
			if h.holder != g.holder {
				r.t.Errorf("seed %d: task %s: %s got the lease at %v, while %s had it from %v for %v",
					r.seed, id, h.holder, h.at, g.holder, g.at, stressShortTTL)
			}
		}
		last = g.holder
	}
	return last
}

// checkLeases checks that the leases the workers kept are the ones that
// expire (those of live tasks), through every handle, and that releasing
// them leaves none.
func (r *stressRun) checkLeases(live map[string]bool) {
	t := r.t
	if _, ok := r.f.s.(taskbridge.LeaseStore); !ok {
		return
	}
	want := []taskbridge.Lease{}
	for id, holder := range r.held {
		if live[id] {
			want = append(want, taskbridge.Lease{TaskID: id, Holder: holder})
		}
	}
	for id, task := range r.tasks {
		if last := r.checkGrants(id, task); live[id] && last != "" {
			want = append(want, taskbridge.Lease{TaskID: id, Holder: last})
			r.held[id] = last // released below with the rest
		}
	}
	later := BaseTime.Add(2 * stressLeaseTTL)
	expired := func(s taskbridge.Store) []taskbridge.Lease {
		got, err := s.(taskbridge.LeaseStore).ExpiredLeases(r.f.ctx, later, 100)
		require.NoError(t, err)
		for i := range got {
			got[i].ExpiresAt = time.Time{}
		}
		return got
	}
	for _, s := range r.stores {
		require.ElementsMatch(t, want, expired(s), "seed %d: the leases still held, expired later", r.seed)
	}
	for id, holder := range r.held {
		r.release(r.f.s, r.tasks[id], id, holder)
	}
	for id, task := range r.tasks {
		require.Zero(t, task.inside.Load(), "seed %d: task %s: workers that still count as holding its lease", r.seed, id)
	}
	for _, s := range r.stores {
		require.Empty(t, expired(s), "seed %d: leases left after every holder released its own", r.seed)
	}
}

// checkLog checks the log of task id, read through every handle, against
// the state machine and the appends that succeeded, and returns it.
func (r *stressRun) checkLog(id string, task *stressTask) []taskbridge.TaskEvent {
	t := r.t
	f := *r.f
	var log []taskbridge.TaskEvent
	for i, s := range r.stores {
		f.s = s
		evs := f.readAll(id)
		if i == 0 {
			log = evs
			continue
		}
		requireEvents(t, log, evs, "seed %d: task %s read through handle %d and handle 0", r.seed, id, i)
	}
	n := int64(len(log))
	requireSeqs(t, log, seqRange(1, n)...)
	for _, s := range r.stores {
		head, err := s.GetTask(r.f.ctx, id)
		require.NoError(t, err)
		require.Equal(t, n, head.LastSeq, "seed %d: task %s: LastSeq", r.seed, id)
		require.Equal(t, stressStatus(log), head.Status, "seed %d: task %s: status after %v", r.seed, id, eventTypes(log))
	}
	// The state machine: a start first if at all, events between only
	// after it, at most one terminal event and nothing after it.
	started, terminal := false, false
	for i, ev := range log {
		require.False(t, terminal, "seed %d: task %s: %s after the terminal event", r.seed, id, ev.Type)
		switch {
		case ev.Terminal():
			terminal = true
		case ev.Type == taskbridge.EventTaskStarted:
			require.Zero(t, i, "seed %d: task %s: TASK_STARTED at Seq %d", r.seed, id, ev.Seq)
			started = true
		default:
			require.True(t, started, "seed %d: task %s: %s before TASK_STARTED", r.seed, id, ev.Type)
		}
	}
	// Every successful append is in the log as returned, and nothing else.
	claimed := make([]int, n)
	for _, got := range task.appended {
		require.LessOrEqual(t, got.Seq, n, "seed %d: task %s: an append returned Seq %d", r.seed, id, got.Seq)
		stored := log[got.Seq-1]
		requireEvents(t, []taskbridge.TaskEvent{stored}, []taskbridge.TaskEvent{got},
			"seed %d: task %s: the append that returned Seq %d", r.seed, id, got.Seq)
		claimed[got.Seq-1]++
		if got.IdempotencyKey == "" {
			require.Equal(t, 1, claimed[got.Seq-1], "seed %d: task %s: appends that returned Seq %d", r.seed, id, got.Seq)
		}
	}
	keys := map[string]int64{}
	for i, ev := range log {
		require.NotZero(t, claimed[i], "seed %d: task %s: Seq %d (%s) is in the log but no append returned it", r.seed, id, ev.Seq, ev.Type)
		if ev.IdempotencyKey == "" {
			continue
		}
		prev, dup := keys[ev.IdempotencyKey]
		require.False(t, dup, "seed %d: task %s: key %s at Seq %d and %d", r.seed, id, ev.IdempotencyKey, prev, ev.Seq)
		keys[ev.IdempotencyKey] = ev.Seq
		require.Contains(t, task.keyed[ev.IdempotencyKey], string(normJSON(ev.Payload)),
			"seed %d: task %s: the payload under key %s is one appended with it", r.seed, id, ev.IdempotencyKey)
	}
	for _, fail := range task.failed {
		if errors.Is(fail.err, taskbridge.ErrTaskTerminal) {
			require.True(t, terminal, "seed %d: task %s: an append failed with %v, but the task never ended", r.seed, id, fail.err)
		}
		if fail.typ == taskbridge.EventTaskStarted && errors.Is(fail.err, taskbridge.ErrInvalidTransition) {
			require.True(t, started, "seed %d: task %s: TASK_STARTED failed with %v, but the task never started", r.seed, id, fail.err)
		}
	}
	if len(task.leaseErr) > 0 {
		require.True(t, terminal, "seed %d: task %s: %v lost the lease of a task that never ended", r.seed, id, task.leaseErr)
	}
	r.checkSuspensions(id, task, log, terminal)
	return log
}

// checkSuspensions checks the task's suspensions and receipts against the
// actions' outcomes and the log: one accepted action per suspension, whose
// event follows the suspension's, and a final status that the outcomes
// and the task's end explain.
func (r *stressRun) checkSuspensions(id string, task *stressTask, log []taskbridge.TaskEvent, terminal bool) {
	t := r.t
	list, err := r.f.s.ListSuspensions(r.f.ctx, id)
	require.NoError(t, err)
	opened := map[string]taskbridge.Suspension{}
	for _, sp := range list {
		opened[sp.SuspendID] = sp
	}
	require.Len(t, opened, len(task.suspends), "seed %d: task %s: suspensions listed", r.seed, id)
	receipts := map[string]taskbridge.ActionReceipt{} // client action id → the accepted action's receipt
	for _, suspendID := range task.suspends {
		sp, ok := opened[suspendID]
		require.True(t, ok, "seed %d: task %s: suspension %s is not listed", r.seed, id, suspendID)
		msg := fmt.Sprintf("seed %d: task %s: suspension %s (%s)", r.seed, id, suspendID, sp.Status)
		require.Equal(t, taskbridge.EventTaskSuspended, log[sp.EventSeq-1].Type, msg)
		var accepted []stressAction
		expired := false
		for _, a := range task.actions[suspendID] {
			switch a.res.Status {
			case taskbridge.ActionAccepted:
				accepted = append(accepted, a)
				require.False(t, sp.ExpiredAt(a.now), "%s: action %s accepted at %v", msg, a.actionID, a.now)
			case taskbridge.ActionRejectedExpired:
				expired = true
			}
		}
		require.Empty(t, unexplainedExpiry(sp, task.actions[suspendID]), msg)
		require.LessOrEqual(t, len(accepted), 1, "%s: actions accepted", msg)
		switch sp.Status {
		case taskbridge.SuspensionResolved:
			require.Len(t, accepted, 1, "%s: actions accepted", msg)
			a := accepted[0]
			require.Equal(t, a.actionID, sp.ResolvedActionID, msg)
			ev := log[a.res.Event.Seq-1]
			require.Equal(t, taskbridge.EventTaskActionAccepted, ev.Type, msg)
			require.Greater(t, ev.Seq, sp.EventSeq, "%s: its action's event follows it", msg)
			rc, err := r.f.s.GetReceipt(r.f.ctx, id, a.actionID)
			require.NoError(t, err, msg)
			require.Equal(t, ev.Seq, rc.EventSeq, "%s: receipt of %s", msg, a.actionID)
			require.Equal(t, suspendID, rc.SuspendID, "%s: receipt of %s", msg, a.actionID)
			_, dup := receipts[a.actionID]
			require.False(t, dup, "%s: action %s accepted on two suspensions", msg, a.actionID)
			receipts[a.actionID] = rc
		case taskbridge.SuspensionOpen:
			require.Empty(t, accepted, msg)
			require.False(t, terminal, "%s: still open after the task ended", msg)
		case taskbridge.SuspensionExpired:
			require.Empty(t, accepted, msg)
			require.True(t, expired, "%s: expired, but no action was rejected as expired", msg)
		case taskbridge.SuspensionCancelled:
			require.Empty(t, accepted, msg)
			require.True(t, terminal, "%s: cancelled, but the task did not end", msg)
		default:
			t.Fatalf("%s: unknown status", msg)
		}
	}
	for suspendID, acts := range task.actions {
		for _, a := range acts {
			if a.res.Status != taskbridge.ActionDeduplicated {
				continue
			}
			rc, ok := receipts[a.actionID]
			require.True(t, ok, "seed %d: task %s: action %s on %s deduplicated, but never accepted", r.seed, id, a.actionID, suspendID)
			require.Equal(t, rc.EventSeq, a.res.Receipt.EventSeq, "seed %d: task %s: the receipt a duplicate of %s returned", r.seed, id, a.actionID)
		}
	}
}

// stressStatus is the status a task must have after log.
func stressStatus(log []taskbridge.TaskEvent) taskbridge.TaskStatus {
	switch {
	case len(log) == 0:
		return taskbridge.StatusAccepted
	case log[len(log)-1].Terminal():
		return log[len(log)-1].Type.TerminalStatus()
	}
	return taskbridge.StatusRunning
}

// waitWatchers waits until the watcher of every task that exists has read
// its whole log.
func (r *stressRun) waitWatchers(exists map[string]bool) {
	deadline := time.Now().Add(waitTimeout)
	for _, id := range r.ids {
		if !exists[id] {
			continue
		}
		want := r.f.get(id).LastSeq
		w := r.watches[id]
		for w.seen.Load() < want {
			if time.Now().After(deadline) {
				r.t.Fatalf("seed %d: task %s: its watcher read up to Seq %d of %d within %v: a notification was lost",
					r.seed, id, w.seen.Load(), want, waitTimeout)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

func (r *stressRun) stopWatches() {
	for _, w := range r.watches {
		w.stop()
		close(w.quit)
	}
	for _, w := range r.watches {
		<-w.done
	}
}
