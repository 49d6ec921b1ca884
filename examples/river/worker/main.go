// Command worker is the working side of the River example: it runs the
// demo tasks as River jobs. Start as many as you like, on any machine that
// reaches the database; they share the work.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/riverqueue/river"
	"github.com/taskbridge-go/taskbridge/examples/internal/cmdmain"
	"github.com/taskbridge-go/taskbridge/examples/river/internal/demo"
)

func main() { cmdmain.Main("worker", run) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	url := fs.String("postgres-url", os.Getenv("TASKBRIDGE_POSTGRES_URL"), "PostgreSQL `URL` (default $TASKBRIDGE_POSTGRES_URL)")
	schema := fs.String("schema", "taskbridge", "PostgreSQL `schema` of the tables")
	workers := fs.Int("workers", 10, "how many tasks this process runs at once")
	jobTimeout := fs.Duration("job-timeout", time.Minute, "River: how long one run of a task may take")
	rescueAfter := fs.Duration("rescue-after", time.Hour, "River: after how long a job whose worker died runs again (more than -job-timeout)")
	if err := cmdmain.Parse(fs, args, stderr); err != nil {
		return err
	}
	if *workers < 1 {
		return errors.New("-workers must be at least 1")
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	app, err := demo.Open(ctx, demo.Config{
		PostgresURL: *url, Schema: *schema, Workers: *workers, Logger: log,
		River: river.Config{JobTimeout: *jobTimeout, RescueStuckJobsAfter: *rescueAfter},
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "worker started")
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return app.Close(sctx)
}
