// Package demo is what the server and the worker of the River example
// share: the task handlers and the setup of the store, the executor and
// the service over one PostgreSQL database.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/pgstore"
	"github.com/taskbridge-go/taskbridge/riverexec"
)

// Handlers are the demo task types:
//
//   - greet {name, steps, stepDelayMs}: TASK_PROGRESS per step, then
//     TASK_COMPLETED {greeting}.
//   - approval {ttlMs}: TASK_SUSPENDED (actions approve, reject), then
//     TASK_COMPLETED {approved}; TASK_FAILED SUSPENSION_EXPIRED when nobody
//     answers in time.
//   - count {count, intervalMs}: count TASK_MESSAGE events, one per
//     interval, then TASK_COMPLETED {count}; long runs show cancellation.
var Handlers = map[string]riverexec.HandlerFunc{
	"greet":    greet,
	"approval": approval,
	"count":    count,
}

type input struct {
	Name        string `json:"name"`
	Steps       int    `json:"steps"`
	StepDelayMs int    `json:"stepDelayMs"`
	TTLMs       int    `json:"ttlMs"`
	Count       int    `json:"count"`
	IntervalMs  int    `json:"intervalMs"`
}

func decode(task *taskbridge.Task) input {
	in := input{Name: "World", Steps: 3, StepDelayMs: 200, TTLMs: 60_000, Count: 10, IntervalMs: 100}
	if len(task.Input) > 0 {
		_ = json.Unmarshal(task.Input, &in)
	}
	in.Steps = min(max(in.Steps, 1), 100)
	in.Count = min(max(in.Count, 1), 10_000)
	return in
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func greet(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (any, error) {
	in := decode(task)
	for i := 1; i <= in.Steps; i++ {
		if err := sleep(ctx, time.Duration(in.StepDelayMs)*time.Millisecond); err != nil {
			return nil, err
		}
		if _, err := e.Emit(ctx, taskbridge.ProgressPayload{Progress: float64(100 * i / in.Steps), Stage: fmt.Sprintf("step %d", i)}); err != nil {
			return nil, err
		}
	}
	return map[string]string{"greeting": "Hello, " + in.Name + "!"}, nil
}

func approval(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (any, error) {
	in := decode(task)
	a, err := riverexec.Suspend(ctx, e, taskbridge.SuspendOpts{
		ReasonCode:     "approval_required",
		AllowedActions: []string{"approve", "reject"},
		TTL:            time.Duration(in.TTLMs) * time.Millisecond,
		UIHints:        map[string]any{"title": "Do you approve this request?"},
	})
	if err != nil {
		return nil, err
	}
	return map[string]bool{"approved": a.ActionType == "approve"}, nil
}

func count(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (any, error) {
	in := decode(task)
	for i := 1; i <= in.Count; i++ {
		if i > 1 {
			if err := sleep(ctx, time.Duration(in.IntervalMs)*time.Millisecond); err != nil {
				return nil, err
			}
		}
		if _, err := e.Emit(ctx, taskbridge.MessagePayload{Message: fmt.Sprintf("message %d of %d", i, in.Count)}); err != nil {
			return nil, err
		}
	}
	return map[string]int{"count": in.Count}, nil
}

// Config says how to open an [App].
type Config struct {
	// PostgresURL is the database. Required.
	PostgresURL string
	// Schema holds taskbridge's and River's tables. Defaults to
	// "taskbridge".
	Schema string
	// Workers is how many tasks this process works at once; 0 for a
	// server that only serves clients.
	Workers int
	// River is the base River configuration (timeouts, rescue).
	River river.Config
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// App is one process's store, executor and service.
type App struct {
	Pool    *pgxpool.Pool
	Store   *pgstore.Store
	Exec    *riverexec.Executor
	Service *taskbridge.Service
}

// Open connects, creates or upgrades the tables (taskbridge's and River's;
// safe when several processes start at once) and starts the executor.
func Open(ctx context.Context, cfg Config) (*App, error) {
	if cfg.PostgresURL == "" {
		return nil, errors.New("a PostgreSQL URL is required (-postgres-url or TASKBRIDGE_POSTGRES_URL)")
	}
	if cfg.Schema == "" {
		cfg.Schema = pgstore.DefaultSchema
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	pool, err := pgxpool.New(ctx, cfg.PostgresURL)
	if err != nil {
		return nil, err
	}
	app := &App{Pool: pool}
	if err := app.open(ctx, cfg); err != nil {
		pool.Close()
		if app.Store != nil {
			_ = app.Store.Close()
		}
		return nil, err
	}
	return app, nil
}

func (a *App) open(ctx context.Context, cfg Config) error {
	var err error
	if a.Store, err = pgstore.New(a.Pool, pgstore.Config{Schema: cfg.Schema, Logger: cfg.Logger}); err != nil {
		return err
	}
	if _, err := a.Store.Migrate(ctx); err != nil {
		return err
	}
	// River's migrations are serialised by the same kind of lock as ours.
	if err := withLock(ctx, a.Pool, "river migrate "+cfg.Schema, func() error {
		return riverexec.Migrate(ctx, a.Pool, cfg.Schema)
	}); err != nil {
		return err
	}
	rc := cfg.River
	rc.Schema = cfg.Schema
	if rc.Logger == nil {
		rc.Logger = cfg.Logger
	}
	if a.Exec, err = riverexec.New(a.Pool, riverexec.Config{
		Store: a.Store, Handlers: Handlers, Workers: cfg.Workers, River: rc, Logger: cfg.Logger,
	}); err != nil {
		return err
	}
	if a.Service, err = taskbridge.New(taskbridge.Config{Store: a.Exec.Store(), Executor: a.Exec, Logger: cfg.Logger}); err != nil {
		return err
	}
	return a.Exec.Start(ctx, a.Service)
}

// withLock runs fn holding a session advisory lock named name.
func withLock(ctx context.Context, pool *pgxpool.Pool, name string, fn func() error) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", name); err != nil {
		return err
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtext($1))", name)
	}()
	return fn()
}

// Close stops the workers (running tasks go back to River, which runs them
// again elsewhere), the service and the store, and closes the pool.
func (a *App) Close(ctx context.Context) error {
	err := errors.Join(a.Exec.Stop(ctx), a.Service.Shutdown(ctx), a.Store.Close())
	a.Pool.Close()
	return err
}
