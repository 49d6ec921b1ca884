package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/taskbridge-go/taskbridge"
)

// HandlerFunc runs one task. It reports progress through e (TASK_PROGRESS,
// TASK_MESSAGE, and suspensions through [Suspend]) and ends the task by
// returning: a nil error completes it with result, an error fails it (see
// [Failure]). It must return soon after ctx is cancelled. task is the
// handler's own copy.
type HandlerFunc func(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (result any, err error)

// Config configures a [Runner]. A zero field means its default.
type Config struct {
	// Handlers maps task types to their handlers. At least one is
	// required; create requests for other types are rejected with 400
	// INVALID_REQUEST.
	Handlers map[string]HandlerFunc
	// Concurrency is the most handlers at work at once (each holds a
	// "slot"). A handler waiting in [Suspend] gives its slot up while it
	// waits (see MaxSuspended). Defaults to 64.
	Concurrency int
	// QueueSize is how many more tasks may wait for a slot: at most
	// Concurrency+QueueSize tasks are running or waiting for a slot (tasks
	// waiting in Suspend do not count). Beyond that creates are refused
	// with 503 TASK_SUBMISSION_ERROR ([ErrQueueFull]). Negative means no
	// queue. Defaults to 1024.
	QueueSize int
	// MaxRunningPerOwner is the most handlers of one owner at work at
	// once; slots are handed out round-robin by owner, so one owner's
	// backlog does not delay others. Defaults to Concurrency/4 (16 with
	// the default Concurrency), at least 1; negative means Concurrency.
	MaxRunningPerOwner int
	// MaxQueuedPerOwner is how many more tasks one owner may have waiting
	// for a slot: an owner may have MaxRunningPerOwner+MaxQueuedPerOwner
	// tasks running or waiting for a slot, and further creates are refused
	// with 429 TOO_MANY_TASKS ([taskbridge.ErrTooManyTasks]) until one of
	// them ends. Defaults to QueueSize/16 (64 with the default QueueSize),
	// at least 1 when there is a queue; negative means QueueSize.
	MaxQueuedPerOwner int
	// MaxSuspended is the most handlers waiting in [Suspend] without a
	// slot; beyond it a handler that suspends keeps its slot while it
	// waits. Negative means that every handler keeps its slot. Defaults to
	// 4096.
	MaxSuspended int
	// MaxSuspendedPerOwner is the most handlers of one owner waiting in
	// [Suspend] without a slot. Once an owner has that many, its creates
	// are refused with 429 TOO_MANY_TASKS and its handlers that suspend
	// keep their slots. Defaults to MaxSuspended/16 (256 with the default
	// MaxSuspended), at least 1; negative means MaxSuspended.
	MaxSuspendedPerOwner int
	// NotReadyWhenFull makes [Runner.CheckReady] fail while the runner is
	// full (Concurrency+QueueSize tasks running or waiting for a slot), so
	// that a load balancer sends new requests to other processes. Leave it
	// off with a single process: readiness gates every route, and a full
	// runner still serves streams, polls, cancels and actions.
	NotReadyWhenFull bool
	// StartedMessage is the message of the TASK_STARTED event the runner
	// emits before calling a handler. Defaults to "Task started".
	StartedMessage string
	// EmitTimeout bounds each terminal event the runner emits; those emits
	// are not cancelled with the task. Defaults to 10s.
	EmitTimeout time.Duration
	// Now is the clock that schedules suspension deadlines and dates
	// leases; it should be the Service's clock. Defaults to time.Now.
	Now func() time.Time
	// Logger receives handler errors, panics and failed emits. Defaults to
	// slog.Default().
	Logger *slog.Logger

	// Leases, when set, makes the runner hold a lease on every task it
	// queues or runs, so that several processes can share one store (see
	// the package documentation): pass the store, when it is a
	// [taskbridge.LeaseStore]. Nil means this process is the store's only
	// executor.
	Leases taskbridge.LeaseStore
	// Replica identifies this process as a lease holder; every process
	// sharing the store needs its own. Defaults to a random UUID.
	Replica string
	// LeaseTTL is how long a lease lasts unless renewed. The runner renews
	// its leases every LeaseTTL/3 and stops a task whose lease it could not
	// renew within LeaseTTL*4/5; other processes take a task over once its
	// lease has expired. Defaults to 30s.
	LeaseTTL time.Duration
	// RerunTypes lists the task types whose handlers are idempotent: when
	// the process running such a task dies, the process that takes the
	// task over runs its handler again from the start (see the package
	// documentation). Tasks of other types end with TASK_FAILED {code:
	// EXECUTOR_LOST, retryable: true}. Every type needs a handler; the
	// list needs Leases.
	RerunTypes []string
}

// Default configuration values.
const (
	DefaultConcurrency    = 64
	DefaultQueueSize      = 1024
	DefaultMaxSuspended   = 4096
	DefaultStartedMessage = "Task started"
	DefaultEmitTimeout    = 10 * time.Second
	DefaultLeaseTTL       = 30 * time.Second
)

// Stats is a snapshot of a runner's load, or of one owner's share of it
// ([Runner.OwnerStats]).
type Stats struct {
	// Running is the number of handlers holding a slot.
	Running int
	// Queued is the number of tasks waiting for a slot: tasks not started
	// yet and handlers back from [Suspend].
	Queued int
	// Suspended is the number of handlers waiting in [Suspend] without a
	// slot.
	Suspended int
}

// Runner is an in-process [taskbridge.TaskExecutor]: it runs each task's
// handler on its own goroutine, at most Config.Concurrency at work at once,
// and serves the tasks waiting for a slot round-robin by owner. It also
// implements [taskbridge.TaskAdmitter], [taskbridge.LocalExecutor],
// [taskbridge.Resumer], [taskbridge.TaskValidator] and
// [taskbridge.ReadinessProbe]. It is safe for concurrent use.
type Runner struct {
	cfg   Config
	log   *slog.Logger
	base  context.Context
	stop  context.CancelCauseFunc
	rerun map[string]bool // Config.RerunTypes

	// ownerBudget is MaxRunningPerOwner+MaxQueuedPerOwner; budget is
	// Concurrency+QueueSize.
	ownerBudget, budget int

	mu        sync.Mutex
	jobs      map[string]*job // every job held, by task id
	owners    map[string]*owner
	turn      []*owner // owners with jobs waiting for a slot, in turn order
	running   int      // slots held
	waiting   int      // jobs waiting for a slot
	reserved  int      // room kept by AdmitTask
	suspended int      // handlers in Suspend without a slot
	live      int      // job goroutines
	closed    bool
	drained   chan struct{}   // closed once closed and live == 0
	renewing  bool            // the lease renewal goroutine runs
	inRound   map[string]bool // tasks of the renewal round in progress
	wg        sync.WaitGroup

	// renewWake wakes the renewal goroutine when the runner lets go of
	// its last task, so that it ends at once. Capacity 1.
	renewWake chan struct{}
}

// Interface checks.
var (
	_ taskbridge.TaskExecutor   = (*Runner)(nil)
	_ taskbridge.TaskAdmitter   = (*Runner)(nil)
	_ taskbridge.LocalExecutor  = (*Runner)(nil)
	_ taskbridge.Resumer        = (*Runner)(nil)
	_ taskbridge.TaskValidator  = (*Runner)(nil)
	_ taskbridge.ReadinessProbe = (*Runner)(nil)
)

// Causes of a job's context cancellation.
var (
	errUserCancel = errors.New("runner: task cancelled by client")
	errShutdown   = errors.New("runner: executor shut down")
)

// New validates cfg, fills in defaults and returns a Runner. Workers are
// started on demand, so an idle runner owns no goroutines.
func New(cfg Config) (*Runner, error) {
	if len(cfg.Handlers) == 0 {
		return nil, errors.New("runner: Config.Handlers needs at least one handler")
	}
	handlers := make(map[string]HandlerFunc, len(cfg.Handlers))
	for name, h := range cfg.Handlers {
		if name == "" {
			return nil, errors.New("runner: Config.Handlers has an empty task type")
		}
		if h == nil {
			return nil, fmt.Errorf("runner: Config.Handlers[%q] is nil", name)
		}
		handlers[name] = h
	}
	cfg.Handlers = handlers
	switch {
	case cfg.Concurrency < 0:
		return nil, errors.New("runner: Config.Concurrency must not be negative")
	case cfg.Concurrency == 0:
		cfg.Concurrency = DefaultConcurrency
	}
	cfg.QueueSize = sizeOrDefault(cfg.QueueSize, DefaultQueueSize)
	cfg.MaxSuspended = sizeOrDefault(cfg.MaxSuspended, DefaultMaxSuspended)
	cfg.MaxRunningPerOwner = ownerLimit(cfg.MaxRunningPerOwner, cfg.Concurrency, 4)
	cfg.MaxQueuedPerOwner = ownerLimit(cfg.MaxQueuedPerOwner, cfg.QueueSize, 16)
	cfg.MaxSuspendedPerOwner = ownerLimit(cfg.MaxSuspendedPerOwner, cfg.MaxSuspended, 16)
	if cfg.StartedMessage == "" {
		cfg.StartedMessage = DefaultStartedMessage
	}
	switch {
	case cfg.EmitTimeout < 0:
		return nil, errors.New("runner: Config.EmitTimeout must not be negative")
	case cfg.EmitTimeout == 0:
		cfg.EmitTimeout = DefaultEmitTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.LeaseTTL < 0:
		return nil, errors.New("runner: Config.LeaseTTL must not be negative")
	case cfg.LeaseTTL == 0:
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.Replica == "" {
		cfg.Replica = uuid.NewString()
	}
	rerun := make(map[string]bool, len(cfg.RerunTypes))
	for _, tt := range cfg.RerunTypes {
		if _, ok := handlers[tt]; !ok {
			return nil, fmt.Errorf("runner: Config.RerunTypes lists %q, which has no handler", tt)
		}
		rerun[tt] = true
	}
	if len(rerun) > 0 && cfg.Leases == nil {
		return nil, errors.New("runner: Config.RerunTypes needs Config.Leases")
	}
	cfg.RerunTypes = slices.Clone(cfg.RerunTypes)
	base, stop := context.WithCancelCause(context.Background())
	return &Runner{
		cfg:         cfg,
		log:         cfg.Logger,
		base:        base,
		stop:        stop,
		rerun:       rerun,
		jobs:        map[string]*job{},
		owners:      map[string]*owner{},
		budget:      cfg.Concurrency + cfg.QueueSize,
		ownerBudget: cfg.MaxRunningPerOwner + cfg.MaxQueuedPerOwner,
		drained:     make(chan struct{}),
		renewWake:   make(chan struct{}, 1),
	}, nil
}

// sizeOrDefault fills in a size: def for zero, none for a negative value.
func sizeOrDefault(v, def int) int {
	switch {
	case v < 0:
		return 0
	case v == 0:
		return def
	}
	return v
}

// ownerLimit fills in a per-owner limit: v when it is in 1..total, total
// for a negative v or one above total, and total/div (at least 1, unless
// total is 0) for zero.
func ownerLimit(v, total, div int) int {
	switch {
	case v < 0 || v > total:
		return total
	case v > 0:
		return v
	case total == 0:
		return 0
	}
	return max(1, total/div)
}

// Replica returns the runner's lease holder id (Config.Replica or the
// UUID it defaulted to).
func (r *Runner) Replica() string { return r.cfg.Replica }

// ValidateTask implements [taskbridge.TaskValidator]: a task type without a
// handler is an error wrapping [taskbridge.ErrInvalidRequest], so the
// create request fails with 400 INVALID_REQUEST before the task exists.
func (r *Runner) ValidateTask(_ context.Context, req taskbridge.CreateTaskRequest) error {
	if _, ok := r.cfg.Handlers[req.TaskType]; !ok {
		return fmt.Errorf("%w: unknown taskType %q", taskbridge.ErrInvalidRequest, clip(req.TaskType, 64))
	}
	return nil
}

// Submit implements [taskbridge.TaskExecutor]. It only enqueues: the task
// starts at once when a slot is free for its owner, else waits for its
// owner's turn. A task for whose create [Runner.AdmitTask] kept room takes
// it; any other is checked against the limits AdmitTask applies and
// refused with an error wrapping [taskbridge.ErrTooManyTasks] or with
// [ErrQueueFull]. Submit fails with an error wrapping [taskbridge.ErrClosed]
// after [Runner.Shutdown] and with [ErrUnknownTaskType] for a type without
// a handler. A task submitted with CancelRequested set is cancelled without
// running. With Config.Leases, Submit first acquires the task's lease; it
// fails with an error wrapping [taskbridge.ErrLeaseLost] when another
// process holds it.
func (r *Runner) Submit(ctx context.Context, task taskbridge.Task, emit taskbridge.Emitter) error {
	h, ok := r.cfg.Handlers[task.TaskType]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownTaskType, clip(task.TaskType, 64))
	}
	if emit == nil {
		return errors.New("runner: Submit needs an emitter")
	}
	r.mu.Lock()
	err := r.admissible(task, false)
	r.mu.Unlock()
	if err != nil {
		return err
	}
	j := r.newJob(ctx, task, h, emit)
	if r.cfg.Leases != nil {
		acquired, err := r.acquire(ctx, j)
		if err != nil {
			return err
		}
		if !acquired {
			return fmt.Errorf("runner: task %s is held by another process: %w", task.ID, taskbridge.ErrLeaseLost)
		}
	}
	if task.CancelRequested {
		j.requestCancel(task.CancelReason)
	}
	if err := r.enqueue(j, false); err != nil {
		j.finish()
		r.release(ctx, j)
		return err
	}
	return nil
}

// admissible reports why a task could not be queued now, or nil. A task
// taken over from a dead process is only bound by the runner's total, not
// by its owner's limits. r.mu must be held.
func (r *Runner) admissible(task taskbridge.Task, takeover bool) error {
	if r.closed {
		return fmt.Errorf("runner: not accepting tasks: %w", taskbridge.ErrClosed)
	}
	if _, dup := r.jobs[task.ID]; dup {
		return fmt.Errorf("runner: task %s was already submitted", task.ID)
	}
	o := r.owners[task.OwnerID]
	switch {
	case takeover && r.active() >= r.budget:
		return ErrQueueFull
	case takeover || r.reservation(o, task) != nil:
		return nil
	}
	return r.fits(o)
}

// enqueue queues j for a slot; it starts at once if its owner gets one.
func (r *Runner) enqueue(j *job, takeover bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.admissible(j.task, takeover); err != nil {
		return err
	}
	o := r.ownerFor(j.task.OwnerID)
	if res := r.reservation(o, j.task); res != nil && !takeover {
		r.take(res)
	}
	r.jobs[j.task.ID] = j
	if j.lease != nil {
		r.startRenewing()
	}
	r.schedule(j, o)
	return nil
}

// Cancel implements [taskbridge.TaskExecutor]. A queued task is removed from
// the queue and ends with TASK_CANCELLED at once, without running. A
// running task's handler context is cancelled; when the handler returns,
// the task ends with TASK_CANCELLED whatever the handler returned
// (cancellation wins over a late result). The reason is task.CancelReason,
// or [DefaultCancelReason]. Cancel of a task this runner does not hold
// (already finished, or never submitted here) does nothing.
func (r *Runner) Cancel(ctx context.Context, task taskbridge.Task) error {
	r.mu.Lock()
	j := r.jobs[task.ID]
	queued := j != nil && r.unqueue(j)
	r.mu.Unlock()
	switch {
	case j == nil:
		return nil
	case queued:
		j.finish()
		return r.end(ctx, j, cancelledPayload(task.CancelReason))
	}
	j.requestCancel(task.CancelReason)
	return nil
}

// Resume implements [taskbridge.Resumer]: it hands the accepted action to
// the handler waiting in [Suspend] on s. Handing over the same action again
// succeeds. It fails with [ErrNotWaiting] when no handler of this runner
// waits on s (the hand-off then stays PENDING for reconciliation); for a
// terminal task it returns nil, since nobody can take the action any more.
func (r *Runner) Resume(_ context.Context, task taskbridge.Task, s taskbridge.Suspension, rec taskbridge.ActionReceipt) error {
	if task.Status.Terminal() {
		return nil
	}
	r.mu.Lock()
	j := r.jobs[task.ID]
	r.mu.Unlock()
	if j == nil {
		return fmt.Errorf("%w: task %s is not running here", ErrNotWaiting, task.ID)
	}
	return j.deliver(s.SuspendID, ActionFromReceipt(rec))
}

// Holds implements [taskbridge.LocalExecutor]: it reports whether the task
// is queued or running here (including a handler that lost its lease and
// has not returned yet).
func (r *Runner) Holds(taskID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.jobs[taskID]
	return ok
}

// HeldTasks implements [taskbridge.LocalExecutor].
func (r *Runner) HeldTasks() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, 0, len(r.jobs))
	for id := range r.jobs {
		ids = append(ids, id)
	}
	return ids
}

// CheckReady implements [taskbridge.ReadinessProbe]: the runner is ready
// until [Runner.Shutdown] is called. By default a full runner stays ready:
// readiness also routes streams, polls, cancels and actions, which a busy
// runner still serves, and taking a single process out of a load
// balancer's rotation would refuse those too; creates are refused with
// 429 or 503, which clients retry. With Config.NotReadyWhenFull it is not
// ready while Concurrency+QueueSize tasks are running or waiting for a
// slot, so that new requests go to other processes sharing the store.
// One owner at its limits never makes the runner unready. Watch
// [Runner.Stats] for saturation.
func (r *Runner) CheckReady(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("runner: shut down: %w", taskbridge.ErrClosed)
	}
	if r.cfg.NotReadyWhenFull && r.active() >= r.budget {
		return fmt.Errorf("runner: full: %d tasks running or waiting for a slot", r.active())
	}
	return nil
}

// Stats returns the runner's load: handlers holding a slot, tasks waiting
// for one and handlers waiting in [Suspend] without one.
func (r *Runner) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{Running: r.running, Queued: r.waiting, Suspended: r.suspended}
}

// Shutdown stops the runner gracefully. Submit fails with
// [taskbridge.ErrClosed] from now on; the tasks already submitted, running
// and queued, go on, and Shutdown waits for them. If ctx ends first, every
// handler's context is cancelled and queued tasks are not started: they all
// end with TASK_FAILED {code: EXECUTOR_SHUTDOWN, retryable: true} (or the
// handler's result if it still completes), Shutdown waits for the handlers
// to return and reports ctx's error. Handlers must honour ctx for this to
// end. Safe to call twice.
func (r *Runner) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		if r.live == 0 {
			close(r.drained)
		}
	}
	r.mu.Unlock()
	var err error
	select {
	case <-r.drained:
	case <-ctx.Done():
		err = fmt.Errorf("runner: shutdown cut short, running tasks cancelled: %w", ctx.Err())
		r.stop(errShutdown)
		<-r.drained
	}
	r.wg.Wait()
	r.stop(errShutdown)
	return err
}

// work is the goroutine of job j, from its first slot to its end.
func (r *Runner) work(j *job) {
	defer r.wg.Done()
	returned := false
	defer func() {
		if !returned {
			// run did not return: the handler called runtime.Goexit (say
			// t.FailNow). End its task.
			r.log.LogAttrs(j.ctx, slog.LevelError, "runner: task handler called runtime.Goexit", j.attrs()...)
			userCancel, reason := j.finish()
			_ = r.end(j.ctx, j, r.decide(j, outcome{ran: true, panicked: true}, userCancel, reason))
		}
		r.done(j)
	}()
	r.run(j)
	returned = true
}

// retire forgets j; r.mu must be held. The renewal goroutine is woken when
// the last task goes, so that it ends.
func (r *Runner) retire(j *job) {
	if r.jobs[j.task.ID] == j {
		delete(r.jobs, j.task.ID)
	}
	if len(r.jobs) == 0 && r.renewing {
		select {
		case r.renewWake <- struct{}{}:
		default:
		}
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
