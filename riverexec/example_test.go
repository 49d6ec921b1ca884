package riverexec_test

import (
	"context"
	"log"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/pgstore"
	"github.com/taskbridge-go/taskbridge/riverexec"
)

// A worker process: it creates the tables, then works tasks of type
// "approval", which wait for a client's decision without holding a worker.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:5432/app?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, err := pgstore.New(pool, pgstore.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	if err := riverexec.Migrate(ctx, pool, ""); err != nil {
		log.Fatal(err)
	}
	exec, err := riverexec.New(pool, riverexec.Config{
		Store:   store,
		Workers: 10,
		Handlers: map[string]riverexec.HandlerFunc{
			"approval": func(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (any, error) {
				a, err := riverexec.Suspend(ctx, e, taskbridge.SuspendOpts{
					ReasonCode: "APPROVAL_REQUIRED", AllowedActions: []string{"approve", "reject"},
				})
				if err != nil {
					return nil, err
				}
				return map[string]bool{"approved": a.ActionType == "approve"}, nil
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	svc, err := taskbridge.New(taskbridge.Config{Store: exec.Store(), Executor: exec})
	if err != nil {
		log.Fatal(err)
	}
	if err := exec.Start(ctx, svc); err != nil {
		log.Fatal(err)
	}
	defer exec.Stop(ctx)
	// ... serve, or wait for a signal.
}
