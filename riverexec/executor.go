package riverexec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/pgstore"
)

// HandlerFunc runs one task, as [runner.HandlerFunc] does: it reports
// through e, waits for client actions with [Suspend] and ends the task by
// returning (a nil error completes it with result; a
// [*runner.Failure] chooses the TASK_FAILED payload; any other error fails
// it with TASK_EXECUTION_FAILED). It must return soon after ctx is
// cancelled.
//
// A handler may run more than once for one task: after a worker crash, a
// retry, and whenever an accepted action resumes a suspended task, the
// handler runs again from the start. The events it emitted before are not
// appended again (each Emit of a run is keyed by its position in the run),
// and [Suspend] returns at once with an action accepted before. So a handler
// must be deterministic up to each Suspend: the same emits in the same
// order, and work it cannot repeat made idempotent.
type HandlerFunc func(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (result any, err error)

// Config configures an [Executor]. A zero field means its default.
type Config struct {
	// Store is the store of the tasks. Required.
	Store *pgstore.Store

	// Handlers maps task types to their handlers. At least one is required;
	// create requests for other types are rejected with 400
	// INVALID_REQUEST. A server that works no jobs still lists the types it
	// accepts (the handlers are then never called).
	Handlers map[string]HandlerFunc

	// Workers is how many tasks this process works at once. Zero means
	// none: the process only creates, cancels and resumes tasks (a server
	// whose workers run elsewhere).
	Workers int

	// Queue is the River queue of the task jobs. Defaults to "taskbridge".
	Queue string

	// MaxAttempts is how many times one job may start a task's handler
	// when workers crash or an attempt fails for want of the database.
	// After that the task ends with TASK_FAILED {code: EXECUTOR_LOST,
	// retryable: true}. Defaults to 3.
	MaxAttempts int

	// StartedMessage is the message of the TASK_STARTED event. Defaults to
	// "Task started".
	StartedMessage string

	// EmitTimeout bounds each terminal event a worker emits. Defaults to 10s.
	EmitTimeout time.Duration
	// Now is the clock that decides whether a suspension's deadline has
	// passed; it should be the Service's clock. Defaults to time.Now.
	Now func() time.Time

	// River is the base configuration of the River client (Schema,
	// RetryPolicy, JobTimeout, RescueStuckJobsAfter, Logger, ...). The
	// executor sets Workers, and Queues when Workers is positive; those two
	// must be left empty. River's defaults apply to the rest; note that
	// River cancels a job after JobTimeout (1 minute by default) and
	// re-runs jobs that run longer than RescueStuckJobsAfter.
	River river.Config

	// Logger receives handler errors, panics and failed emits. Defaults to
	// slog.Default().
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultQueue          = "taskbridge"
	DefaultMaxAttempts    = 3
	DefaultStartedMessage = "Task started"
	DefaultEmitTimeout    = 10 * time.Second
)

// JobKind is the River kind of task jobs.
const JobKind = "taskbridge_task"

// JobArgs are the arguments of a task's River job.
type JobArgs struct {
	TaskID string `json:"task_id"`
}

// Kind implements river.JobArgs.
func (JobArgs) Kind() string { return JobKind }

// activeStates are the job states in which a task's job is unique: at most
// one job per task waits or runs at a time. Completed jobs do not count, so
// that a new job can resume a task whose job ended while it waits.
var activeStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled,
}

// Executor is a [taskbridge.TaskExecutor] that runs every task as a River
// job, so that the work spreads over every process that runs workers on the
// database, with River's retries and cancellation. It also implements
// [taskbridge.Resumer], [taskbridge.TaskValidator] and
// [taskbridge.ReadinessProbe].
type Executor struct {
	cfg    Config
	store  *pgstore.Store
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
	log    *slog.Logger

	mu      sync.Mutex
	svc     *taskbridge.Service
	started bool
	stopped bool

	// inserted holds the tasks whose job Store().CreateTask inserted, until
	// Submit sees them.
	inserted sync.Map
}

// Interface checks.
var (
	_ taskbridge.TaskExecutor   = (*Executor)(nil)
	_ taskbridge.Resumer        = (*Executor)(nil)
	_ taskbridge.TaskValidator  = (*Executor)(nil)
	_ taskbridge.ReadinessProbe = (*Executor)(nil)
)

// New validates cfg and returns an Executor with its River client over
// pool (which the caller owns). River's tables must exist: run River's
// migrations (rivermigrate) in the schema of cfg.River.Schema first. Call
// [Executor.Start] before use.
func New(pool *pgxpool.Pool, cfg Config) (*Executor, error) {
	switch {
	case pool == nil:
		return nil, errors.New("riverexec: New needs a pool")
	case cfg.Store == nil:
		return nil, errors.New("riverexec: Config.Store is required")
	case len(cfg.Handlers) == 0:
		return nil, errors.New("riverexec: Config.Handlers needs at least one handler")
	case cfg.Workers < 0:
		return nil, errors.New("riverexec: Config.Workers must not be negative")
	case cfg.River.Workers != nil || len(cfg.River.Queues) > 0:
		return nil, errors.New("riverexec: Config.River.Workers and Queues are set by the executor")
	case cfg.EmitTimeout < 0:
		return nil, errors.New("riverexec: Config.EmitTimeout must not be negative")
	}
	handlers := make(map[string]HandlerFunc, len(cfg.Handlers))
	for name, h := range cfg.Handlers {
		if name == "" || h == nil {
			return nil, fmt.Errorf("riverexec: Config.Handlers[%q] is empty", name)
		}
		handlers[name] = h
	}
	cfg.Handlers = handlers
	if cfg.Queue == "" {
		cfg.Queue = DefaultQueue
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.StartedMessage == "" {
		cfg.StartedMessage = DefaultStartedMessage
	}
	if cfg.EmitTimeout == 0 {
		cfg.EmitTimeout = DefaultEmitTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Executor{cfg: cfg, store: cfg.Store, pool: pool, log: cfg.Logger}

	rc := cfg.River
	rc.Workers = river.NewWorkers()
	if err := river.AddWorkerSafely(rc.Workers, &worker{e: e}); err != nil {
		return nil, fmt.Errorf("riverexec: %w", err)
	}
	if cfg.Workers > 0 {
		rc.Queues = map[string]river.QueueConfig{cfg.Queue: {MaxWorkers: cfg.Workers}}
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &rc)
	if err != nil {
		return nil, fmt.Errorf("riverexec: %w", err)
	}
	e.client = client
	return e, nil
}

// Client returns the executor's River client, for the host's own jobs,
// subscriptions and inspection.
func (e *Executor) Client() *river.Client[pgx.Tx] { return e.client }

// Start binds the executor to svc, whose emitters report the tasks'
// events, and starts River's workers when Config.Workers is positive. A
// process that only serves clients calls it too. ctx governs startup only.
func (e *Executor) Start(ctx context.Context, svc *taskbridge.Service) error {
	if svc == nil {
		return errors.New("riverexec: Start needs the service")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.stopped:
		return fmt.Errorf("riverexec: stopped: %w", taskbridge.ErrClosed)
	case e.svc != nil:
		return errors.New("riverexec: already started")
	}
	e.svc = svc
	if e.cfg.Workers > 0 {
		if err := e.client.Start(ctx); err != nil {
			return fmt.Errorf("riverexec: starting River: %w", err)
		}
		e.started = true
	}
	return nil
}

// Stop stops the workers: no new job starts, and running jobs may finish
// until ctx ends; then their contexts are cancelled and River retries them
// later, in any process (their tasks do not fail). Stop waits for the
// handlers to return. It is idempotent.
func (e *Executor) Stop(ctx context.Context) error {
	e.mu.Lock()
	started := e.started
	e.stopped, e.started = true, false
	e.mu.Unlock()
	if !started {
		return nil
	}
	err := e.client.Stop(ctx)
	if err != nil && ctx.Err() != nil {
		cctx, cancel := context.WithTimeout(context.Background(), e.cfg.EmitTimeout)
		defer cancel()
		err = errors.Join(err, e.client.StopAndCancel(cctx))
	}
	return err
}

func (e *Executor) service() (*taskbridge.Service, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.svc == nil {
		return nil, errors.New("riverexec: Start was not called")
	}
	return e.svc, nil
}

// CheckReady implements [taskbridge.ReadinessProbe]: ready once started
// and until stopped.
func (e *Executor) CheckReady(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.stopped:
		return fmt.Errorf("riverexec: stopped: %w", taskbridge.ErrClosed)
	case e.svc == nil:
		return errors.New("riverexec: not started")
	}
	return nil
}

// ValidateTask implements [taskbridge.TaskValidator]: a task type without a
// handler fails with [taskbridge.ErrInvalidRequest].
func (e *Executor) ValidateTask(_ context.Context, req taskbridge.CreateTaskRequest) error {
	if _, ok := e.cfg.Handlers[req.TaskType]; !ok {
		return fmt.Errorf("%w: unknown taskType %q", taskbridge.ErrInvalidRequest, clip(req.TaskType, 64))
	}
	return nil
}

// insertOpts are the options of every task job.
func (e *Executor) insertOpts() *river.InsertOpts {
	return &river.InsertOpts{
		Queue: e.cfg.Queue,
		// One more attempt than handler runs: the last one only ends the
		// task (see worker.Work).
		MaxAttempts: e.cfg.MaxAttempts + 1,
		UniqueOpts:  river.UniqueOpts{ByArgs: true, ByState: activeStates},
	}
}

// InsertTx enqueues task's job inside tx, for hosts that create tasks in
// their own transactions with [pgstore.Store.CreateTaskTx]. If the task
// already has a waiting or running job, nothing is inserted.
func (e *Executor) InsertTx(ctx context.Context, tx pgx.Tx, task taskbridge.Task) error {
	if _, ok := e.cfg.Handlers[task.TaskType]; !ok {
		return fmt.Errorf("riverexec: no handler for task type %q", clip(task.TaskType, 64))
	}
	if _, err := e.client.InsertTx(ctx, tx, JobArgs{TaskID: task.ID}, e.insertOpts()); err != nil {
		return fmt.Errorf("riverexec: inserting job of task %s: %w", task.ID, err)
	}
	return nil
}

// Submit implements [taskbridge.TaskExecutor]. When the task was created
// through [Executor.Store], its job was inserted in the same transaction
// and Submit does nothing. Otherwise it inserts the job now (if the task
// has no waiting or running job yet).
func (e *Executor) Submit(ctx context.Context, task taskbridge.Task, _ taskbridge.Emitter) error {
	if _, ok := e.inserted.LoadAndDelete(task.ID); ok {
		return nil
	}
	if _, ok := e.cfg.Handlers[task.TaskType]; !ok {
		return fmt.Errorf("riverexec: no handler for task type %q", clip(task.TaskType, 64))
	}
	if _, err := e.client.Insert(ctx, JobArgs{TaskID: task.ID}, e.insertOpts()); err != nil {
		return fmt.Errorf("riverexec: inserting job of task %s: %w", task.ID, err)
	}
	return nil
}

// activeJob returns the task's waiting or running job, or nil.
func (e *Executor) activeJob(ctx context.Context, taskID string) (*rivertype.JobRow, error) {
	args, err := json.Marshal(JobArgs{TaskID: taskID})
	if err != nil {
		return nil, err
	}
	res, err := e.client.JobList(ctx, river.NewJobListParams().Kinds(JobKind).States(activeStates...).
		Where("args @> @task_args::jsonb", river.NamedArgs{"task_args": string(args)}).First(1))
	if err != nil {
		return nil, fmt.Errorf("riverexec: finding the job of task %s: %w", taskID, err)
	}
	if len(res.Jobs) == 0 {
		return nil, nil
	}
	return res.Jobs[0], nil
}

// Cancel implements [taskbridge.TaskExecutor]. A running job is cancelled
// through River, which cancels its handler's context in whichever process
// runs it; the worker then ends the task with TASK_CANCELLED. A task whose
// job waits (queued, scheduled, or ended while the task waits for an
// action) has its job cancelled and is ended with TASK_CANCELLED at once.
// The reason is task.CancelReason, or [runner.DefaultCancelReason].
func (e *Executor) Cancel(ctx context.Context, task taskbridge.Task) error {
	svc, err := e.service()
	if err != nil {
		return err
	}
	job, err := e.activeJob(ctx, task.ID)
	if err != nil {
		return err
	}
	if job != nil {
		row, err := e.client.JobCancel(ctx, job.ID)
		if err != nil && !errors.Is(err, rivertype.ErrNotFound) {
			return fmt.Errorf("riverexec: cancelling job %d of task %s: %w", job.ID, task.ID, err)
		}
		if row != nil && row.State == rivertype.JobStateRunning {
			return nil // the worker observes the cancellation and ends the task
		}
	}
	if err := e.emitTerminal(ctx, svc.Emitter(task.ID), task.ID, cancelledPayload(task.CancelReason)); err != nil {
		return err
	}
	return e.cancelLeftovers(ctx, task.ID)
}

// cancelLeftovers cancels the jobs a terminal task still has waiting. A
// handler that parked its job while the task was being cancelled may have
// scheduled its suspension's deadline job after activeJob looked; such a
// job would only find the task terminal, but it should not linger.
func (e *Executor) cancelLeftovers(ctx context.Context, taskID string) error {
	for range 4 {
		job, err := e.activeJob(ctx, taskID)
		if err != nil || job == nil || job.State == rivertype.JobStateRunning {
			return err
		}
		if _, err := e.client.JobCancel(ctx, job.ID); err != nil && !errors.Is(err, rivertype.ErrNotFound) {
			return fmt.Errorf("riverexec: cancelling job %d of task %s: %w", job.ID, taskID, err)
		}
	}
	return nil
}

// Resume implements [taskbridge.Resumer]: it makes a job run the task's
// handler again, which then finds the accepted action in [Suspend]. If the
// task has a job that waits for a later time (a suspension deadline), that
// job runs now; if its job still runs, that run takes the action. Calling
// it again for the same action does no harm.
func (e *Executor) Resume(ctx context.Context, task taskbridge.Task, _ taskbridge.Suspension, _ taskbridge.ActionReceipt) error {
	if task.Status.Terminal() {
		return nil
	}
	res, err := e.client.Insert(ctx, JobArgs{TaskID: task.ID}, e.insertOpts())
	if err != nil {
		return fmt.Errorf("riverexec: inserting resume job of task %s: %w", task.ID, err)
	}
	if res.UniqueSkippedAsDuplicate && res.Job != nil &&
		(res.Job.State == rivertype.JobStateScheduled || res.Job.State == rivertype.JobStateRetryable) {
		if _, err := e.client.JobRetry(ctx, res.Job.ID); err != nil {
			return fmt.Errorf("riverexec: waking job %d of task %s: %w", res.Job.ID, task.ID, err)
		}
	}
	return nil
}

// Store returns a store that is Config.Store, except that CreateTask
// creates the task and inserts its River job in one transaction, so that a
// task never exists without its job or a job without its task. Give it to
// the [taskbridge.Service] (Config.Store) in every process that creates
// tasks.
func (e *Executor) Store() *Store { return &Store{Store: e.store, e: e} }

// Store is the store [Executor.Store] returns.
type Store struct {
	*pgstore.Store
	e *Executor
}

// CreateTask implements [taskbridge.TaskRegistry]: the task and its River
// job are written in one transaction.
func (s *Store) CreateTask(ctx context.Context, t taskbridge.Task) (taskbridge.Task, bool, error) {
	var (
		stored  taskbridge.Task
		created bool
	)
	err := pgx.BeginFunc(ctx, s.e.pool, func(tx pgx.Tx) error {
		var err error
		stored, created, err = s.Store.CreateTaskTx(ctx, tx, t)
		if err != nil || !created {
			return err
		}
		return s.e.InsertTx(ctx, tx, stored)
	})
	if err != nil {
		return taskbridge.Task{}, false, err
	}
	if created {
		s.e.inserted.Store(stored.ID, struct{}{})
	}
	return stored, created, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Migrate runs River's own migrations (rivermigrate, all the way up) in
// schema ("" means the search_path), creating River's tables. It is a
// convenience for hosts and tests; rivermigrate and the river CLI do the
// same. It creates schema if needed.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	if schema != "" {
		if _, err := pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
			return fmt.Errorf("riverexec: creating schema %s: %w", schema, err)
		}
	}
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: schema, Logger: discardLogger})
	if err != nil {
		return fmt.Errorf("riverexec: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("riverexec: migrating River: %w", err)
	}
	return nil
}

var discardLogger = slog.New(slog.DiscardHandler)
